/*
 * core/map.c - the string-keyed hash map (core/map.h).
 */
#include <string.h>

#include "internal.h"
#include "map.h"

uint64_t es__map_hash(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211u;
    }
    return h;
}

/* The slot of key, or the empty slot where it would go (cap > 0). */
static size_t find(const es__map_slot *slots, size_t cap, const char *key)
{
    size_t i = es__map_hash(key) & (cap - 1);
    while (slots[i].key && strcmp(slots[i].key, key) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

void *es__map_get(const es__map *m, const char *key)
{
    size_t i;
    if (m->cap == 0)
        return NULL;
    i = find(m->slots, m->cap, key);
    return m->slots[i].key ? m->slots[i].value : NULL;
}

int es__map_put(es__map *m, const char *key, void *value)
{
    size_t i;
    if (m->cap) {
        i = find(m->slots, m->cap, key);
        if (m->slots[i].key) {
            m->slots[i].key = key;
            m->slots[i].value = value;
            return 0;
        }
    }
    if ((m->len + 1) * 4 > m->cap * 3) { /* at most 3/4 full */
        size_t ncap = m->cap ? m->cap * 2 : 64;
        es__map_slot *ns = es__calloc(ncap, sizeof *ns);
        if (ns == NULL)
            return ES_ENOMEM;
        for (size_t j = 0; j < m->cap; j++)
            if (m->slots[j].key)
                ns[find(ns, ncap, m->slots[j].key)] = m->slots[j];
        es__free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    i = find(m->slots, m->cap, key);
    m->slots[i].key = key;
    m->slots[i].value = value;
    m->len++;
    return 0;
}

void *es__map_add_entry(es__map *m, const char *key, size_t size,
                        size_t key_member)
{
    char *e = es__calloc(1, size), *copy = es__strdup(key);
    if (e == NULL || copy == NULL || es__map_put(m, copy, e) != 0) {
        es__free(e);
        es__free(copy);
        return NULL;
    }
    memcpy(e + key_member, &copy, sizeof copy);
    return e;
}

void *es__map_remove(es__map *m, const char *key)
{
    size_t i, j, mask = m->cap - 1;
    void *value;
    if (m->cap == 0)
        return NULL;
    i = find(m->slots, m->cap, key);
    if (m->slots[i].key == NULL)
        return NULL;
    value = m->slots[i].value;
    m->slots[i].key = NULL;
    m->len--;
    /* Backward-shift deletion: move up the entries of the probe run that
     * the hole would hide from their home slot. */
    for (j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = es__map_hash(m->slots[j].key) & mask;
        /* Leave it when its home lies cyclically in (i, j]. */
        if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
            continue;
        m->slots[i] = m->slots[j];
        m->slots[j].key = NULL;
        i = j;
    }
    return value;
}

int es__map_next(const es__map *m, size_t *iter, const char **key, void **value)
{
    for (; *iter < m->cap; (*iter)++)
        if (m->slots[*iter].key) {
            if (key)
                *key = m->slots[*iter].key;
            if (value)
                *value = m->slots[*iter].value;
            (*iter)++;
            return 1;
        }
    return 0;
}

void es__map_free(es__map *m)
{
    es__free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}
