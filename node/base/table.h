/* A small intrusive hash table keyed by byte strings (per-channel state of the memory
 * broker and memory presence, for instance). Not thread-safe: one thread uses a table.
 *
 * Entries embed an rt_table_node_t; the table never allocates or frees entries, only
 * its bucket array. The key slice must stay valid (usually it points into the entry) while
 * the node is in the table. */
#ifndef RT_BASE_TABLE_H
#define RT_BASE_TABLE_H

#include <stddef.h>

#include "node/base/str.h"

typedef struct rt_table_node rt_table_node_t;
struct rt_table_node {
    rt_table_node_t *next; /* bucket chain; managed by the table */
    unsigned long hash;    /* rt_str_hash(key); set by rt_table_insert */
    rt_str_t key;          /* borrowed from the entry; set by the caller before insert */
};

typedef struct rt_table {
    rt_table_node_t **buckets; /* owned array of nbuckets chains; NULL while empty */
    size_t nbuckets;           /* 0 or a power of two */
    size_t count;              /* nodes in the table */
} rt_table_t;

/* Iteration cursor. The node last returned may be removed (and freed) before the next
 * call; no insertions or rt_table_shrink() while iterating. */
typedef struct rt_table_iter {
    const rt_table_t *t;   /* borrowed */
    size_t bucket;         /* next bucket to scan */
    rt_table_node_t *next; /* next node of the current chain, borrowed */
} rt_table_iter_t;

#define RT_TABLE_ENTRY(nodeptr, type, member)                                                      \
    ((type *)(void *)((char *)(nodeptr)-offsetof(type, member)))

void rt_table_init(rt_table_t *t);
/* Frees the bucket array. The entries still in the table belong to the caller. */
void rt_table_cleanup(rt_table_t *t);
/* Returns the node with key, or NULL. */
rt_table_node_t *rt_table_find(const rt_table_t *t, rt_str_t key);
/* Inserts n (n->key set, no node with that key present). The table keeps the pointer
 * until rt_table_remove(). */
void rt_table_insert(rt_table_t *t, rt_table_node_t *n);
/* Removes n, which must be in t. Never resizes, so it is safe while iterating. */
void rt_table_remove(rt_table_t *t, rt_table_node_t *n);
/* Halves the bucket array while it is much larger than the count (after mass removal). */
void rt_table_shrink(rt_table_t *t);

void rt_table_iter_init(rt_table_iter_t *it, const rt_table_t *t);
/* Returns the next node, or NULL at the end. */
rt_table_node_t *rt_table_iter_next(rt_table_iter_t *it);

#endif
