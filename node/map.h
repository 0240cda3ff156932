/* Small hash maps owned by one thread: string keys (borrowed from the stored value, which
 * must outlive its entry) and 64-bit id keys. Chained buckets, power-of-two sizes, grown
 * at load factor 1. */
#ifndef RT_NODE_MAP_H
#define RT_NODE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "node/base/str.h"

typedef struct node_map_entry node_map_entry_t;
struct node_map_entry {
    node_map_entry_t *next;
    uint64_t hash;
    rt_str_t key; /* borrowed: usually points into val */
    uint64_t id;  /* id maps */
    void *val;    /* borrowed */
};

typedef struct node_map {
    node_map_entry_t **buckets; /* owned */
    size_t nbuckets;            /* power of two, or 0 before first insert */
    size_t count;
} node_map_t;

void node_map_init(node_map_t *m);
/* Frees the map's own memory; values are the caller's. */
void node_map_cleanup(node_map_t *m);

void *node_map_get(const node_map_t *m, rt_str_t key);
/* Inserts, or replaces the value of an existing entry (keeping its original key); a new
 * key must stay valid while the entry exists. */
void node_map_put(node_map_t *m, rt_str_t key, void *val);
/* Removes and returns the value, or NULL. */
void *node_map_del(node_map_t *m, rt_str_t key);

void *node_map_get_id(const node_map_t *m, uint64_t id);
void node_map_put_id(node_map_t *m, uint64_t id, void *val);
void *node_map_del_id(node_map_t *m, uint64_t id);

/* Iteration: for (node_map_iter_t it = node_map_iter(m); node_map_next(&it);) it.entry->val
 * The map must not change during iteration. */
typedef struct node_map_iter {
    const node_map_t *m;
    size_t bucket;
    node_map_entry_t *entry;
} node_map_iter_t;
node_map_iter_t node_map_iter(const node_map_t *m);
int node_map_next(node_map_iter_t *it);

#endif
