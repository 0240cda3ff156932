#include "node/map.h"

#include "node/base/alloc.h"

void node_map_init(node_map_t *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

void node_map_cleanup(node_map_t *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        node_map_entry_t *e = m->buckets[i];
        while (e) {
            node_map_entry_t *next = e->next;
            rt_free(e);
            e = next;
        }
    }
    rt_free(m->buckets);
    node_map_init(m);
}

static uint64_t hash_id(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static void grow(node_map_t *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    node_map_entry_t **b = rt_calloc(n, sizeof(*b));
    for (size_t i = 0; i < m->nbuckets; i++) {
        node_map_entry_t *e = m->buckets[i];
        while (e) {
            node_map_entry_t *next = e->next;
            size_t j = e->hash & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    rt_free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

static node_map_entry_t **find_str(const node_map_t *m, rt_str_t key, uint64_t h)
{
    if (m->nbuckets == 0)
        return NULL;
    node_map_entry_t **pe = &m->buckets[h & (m->nbuckets - 1)];
    while (*pe) {
        if ((*pe)->hash == h && rt_str_eq((*pe)->key, key))
            return pe;
        pe = &(*pe)->next;
    }
    return pe;
}

static node_map_entry_t **find_id(const node_map_t *m, uint64_t id, uint64_t h)
{
    if (m->nbuckets == 0)
        return NULL;
    node_map_entry_t **pe = &m->buckets[h & (m->nbuckets - 1)];
    while (*pe) {
        if ((*pe)->id == id)
            return pe;
        pe = &(*pe)->next;
    }
    return pe;
}

static void insert(node_map_t *m, uint64_t h, rt_str_t key, uint64_t id, void *val)
{
    if (m->count >= m->nbuckets)
        grow(m);
    node_map_entry_t *e = rt_malloc(sizeof(*e));
    e->hash = h;
    e->key = key;
    e->id = id;
    e->val = val;
    size_t j = h & (m->nbuckets - 1);
    e->next = m->buckets[j];
    m->buckets[j] = e;
    m->count++;
}

static void *unlink_entry(node_map_t *m, node_map_entry_t **pe)
{
    if (pe == NULL || *pe == NULL)
        return NULL;
    node_map_entry_t *e = *pe;
    void *val = e->val;
    *pe = e->next;
    rt_free(e);
    m->count--;
    return val;
}

void *node_map_get(const node_map_t *m, rt_str_t key)
{
    node_map_entry_t **pe = find_str(m, key, rt_str_hash(key));
    return pe && *pe ? (*pe)->val : NULL;
}

void node_map_put(node_map_t *m, rt_str_t key, void *val)
{
    uint64_t h = rt_str_hash(key);
    node_map_entry_t **pe = find_str(m, key, h);
    if (pe && *pe) {
        /* The stored key stays: the caller's slice may be shorter-lived than the first. */
        (*pe)->val = val;
        return;
    }
    insert(m, h, key, 0, val);
}

void *node_map_del(node_map_t *m, rt_str_t key)
{
    return unlink_entry(m, find_str(m, key, rt_str_hash(key)));
}

void *node_map_get_id(const node_map_t *m, uint64_t id)
{
    node_map_entry_t **pe = find_id(m, id, hash_id(id));
    return pe && *pe ? (*pe)->val : NULL;
}

void node_map_put_id(node_map_t *m, uint64_t id, void *val)
{
    uint64_t h = hash_id(id);
    node_map_entry_t **pe = find_id(m, id, h);
    if (pe && *pe) {
        (*pe)->val = val;
        return;
    }
    insert(m, h, RT_STR_NULL, id, val);
}

void *node_map_del_id(node_map_t *m, uint64_t id)
{
    return unlink_entry(m, find_id(m, id, hash_id(id)));
}

node_map_iter_t node_map_iter(const node_map_t *m)
{
    return (node_map_iter_t){m, 0, NULL};
}

int node_map_next(node_map_iter_t *it)
{
    if (it->entry && it->entry->next) {
        it->entry = it->entry->next;
        return 1;
    }
    size_t start = it->entry ? it->bucket + 1 : 0;
    for (size_t i = start; i < it->m->nbuckets; i++) {
        if (it->m->buckets[i]) {
            it->bucket = i;
            it->entry = it->m->buckets[i];
            return 1;
        }
    }
    it->entry = NULL;
    it->bucket = it->m->nbuckets;
    return 0;
}
