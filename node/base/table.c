#include "node/base/table.h"

#include "node/base/alloc.h"
#include "node/base/assert.h"

#define MIN_BUCKETS 16

void rt_table_init(rt_table_t *t)
{
    t->buckets = NULL;
    t->nbuckets = 0;
    t->count = 0;
}

void rt_table_cleanup(rt_table_t *t)
{
    rt_free(t->buckets);
    rt_table_init(t);
}

static void rehash(rt_table_t *t, size_t nbuckets)
{
    rt_table_node_t **nb = rt_calloc(nbuckets, sizeof(*nb));

    for (size_t i = 0; i < t->nbuckets; i++) {
        rt_table_node_t *n = t->buckets[i];
        while (n != NULL) {
            rt_table_node_t *next = n->next;
            size_t j = n->hash & (nbuckets - 1);
            n->next = nb[j];
            nb[j] = n;
            n = next;
        }
    }
    rt_free(t->buckets);
    t->buckets = nb;
    t->nbuckets = nbuckets;
}

rt_table_node_t *rt_table_find(const rt_table_t *t, rt_str_t key)
{
    if (t->count == 0)
        return NULL;
    unsigned long h = rt_str_hash(key);
    for (rt_table_node_t *n = t->buckets[h & (t->nbuckets - 1)]; n != NULL; n = n->next) {
        if (n->hash == h && rt_str_eq(n->key, key))
            return n;
    }
    return NULL;
}

void rt_table_insert(rt_table_t *t, rt_table_node_t *n)
{
    RT_DASSERT(rt_table_find(t, n->key) == NULL);
    /* Load factor at most 1: chains stay short without tuning. */
    if (t->count + 1 > t->nbuckets)
        rehash(t, t->nbuckets ? t->nbuckets * 2 : MIN_BUCKETS);
    n->hash = rt_str_hash(n->key);
    size_t i = n->hash & (t->nbuckets - 1);
    n->next = t->buckets[i];
    t->buckets[i] = n;
    t->count++;
}

void rt_table_remove(rt_table_t *t, rt_table_node_t *n)
{
    RT_ASSERT(t->count > 0);
    rt_table_node_t **pp = &t->buckets[n->hash & (t->nbuckets - 1)];
    while (*pp != n) {
        RT_ASSERT(*pp != NULL);
        pp = &(*pp)->next;
    }
    *pp = n->next;
    n->next = NULL;
    t->count--;
}

void rt_table_shrink(rt_table_t *t)
{
    if (t->count == 0) {
        rt_table_cleanup(t);
        return;
    }
    size_t nb = t->nbuckets;
    /* Hysteresis: shrink only below a quarter, so insert/remove at a boundary never
     * rehashes back and forth. */
    while (nb > MIN_BUCKETS && t->count < nb / 4)
        nb /= 2;
    if (nb != t->nbuckets)
        rehash(t, nb);
}

void rt_table_iter_init(rt_table_iter_t *it, const rt_table_t *t)
{
    it->t = t;
    it->bucket = 0;
    it->next = NULL;
}

rt_table_node_t *rt_table_iter_next(rt_table_iter_t *it)
{
    while (it->next == NULL) {
        if (it->bucket >= it->t->nbuckets)
            return NULL;
        it->next = it->t->buckets[it->bucket++];
    }
    rt_table_node_t *n = it->next;
    it->next = n->next;
    return n;
}
