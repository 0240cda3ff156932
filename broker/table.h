/* A small intrusive hash table keyed by byte strings, for per-channel state of the memory
 * broker and memory presence. Single-threaded: the owner's loop only.
 *
 * Entries embed a broker_table_node_t; the table never allocates or frees entries, only
 * its bucket array. The key slice must stay valid (usually it points into the entry) while
 * the node is in the table. */
#ifndef RT_BROKER_TABLE_H
#define RT_BROKER_TABLE_H

#include <stddef.h>

#include "node/base/str.h"

typedef struct broker_table_node broker_table_node_t;
struct broker_table_node {
    broker_table_node_t *next; /* bucket chain; managed by the table */
    unsigned long hash;        /* rt_str_hash(key); set by broker_table_insert */
    rt_str_t key;              /* borrowed from the entry; set by the caller before insert */
};

typedef struct broker_table {
    broker_table_node_t **buckets; /* owned array of nbuckets chains; NULL while empty */
    size_t nbuckets;               /* 0 or a power of two */
    size_t count;                  /* nodes in the table */
} broker_table_t;

/* Iteration cursor. The node last returned may be removed (and freed) before the next
 * call; no insertions or broker_table_shrink() while iterating. */
typedef struct broker_table_iter {
    const broker_table_t *t;   /* borrowed */
    size_t bucket;             /* next bucket to scan */
    broker_table_node_t *next; /* next node of the current chain, borrowed */
} broker_table_iter_t;

#define BROKER_TABLE_ENTRY(nodeptr, type, member)                                                  \
    ((type *)(void *)((char *)(nodeptr)-offsetof(type, member)))

void broker_table_init(broker_table_t *t);
/* Frees the bucket array. The entries still in the table belong to the caller. */
void broker_table_cleanup(broker_table_t *t);
/* Returns the node with key, or NULL. */
broker_table_node_t *broker_table_find(const broker_table_t *t, rt_str_t key);
/* Inserts n (n->key set, no node with that key present). The table keeps the pointer
 * until broker_table_remove(). */
void broker_table_insert(broker_table_t *t, broker_table_node_t *n);
/* Removes n, which must be in t. Never resizes, so it is safe while iterating. */
void broker_table_remove(broker_table_t *t, broker_table_node_t *n);
/* Halves the bucket array while it is much larger than the count (after mass removal). */
void broker_table_shrink(broker_table_t *t);

void broker_table_iter_init(broker_table_iter_t *it, const broker_table_t *t);
/* Returns the next node, or NULL at the end. */
broker_table_node_t *broker_table_iter_next(broker_table_iter_t *it);

#endif
