/*
 * core/map.h - the one string-keyed hash map of esfold's own code (open
 * addressing, linear probing, FNV-1a): the acceptor's streams and ids, the
 * processor's hot aggregates, the Kafka snapshot store's index, and the
 * CLI's tables (verify, snapshot). Internal: not installed, not API.
 *
 * Keys are borrowed: a key must stay valid and unchanged while it is in
 * the map (keep it in the value: hot->stream_id). Values are the caller's;
 * the map never frees them.
 */
#ifndef ESFOLD_CORE_MAP_H
#define ESFOLD_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct es__map_slot {
    const char *key; /* NULL: empty */
    void *value;
} es__map_slot;

typedef struct es__map {
    es__map_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t len;
} es__map;

#define ES__MAP_INIT {NULL, 0, 0}

/* FNV-1a of s: the map's hash, for callers that need a string hash. */
uint64_t es__map_hash(const char *s);

/* The value under key, or NULL. */
void *es__map_get(const es__map *m, const char *key);

/* Sets key's value (inserting key when absent; the key pointer kept is
 * the newest one given). 0 or ES_ENOMEM (m unchanged). */
int es__map_put(es__map *m, const char *key, void *value);

/*
 * The common entry: a zeroed struct of `size` bytes whose `char *` member
 * at offset key_member (offsetof) is a copy of key, put under that copy.
 * Returns it, or NULL when out of memory (nothing left behind). Free the
 * key member and the struct when taking it out.
 */
void *es__map_add_entry(es__map *m, const char *key, size_t size,
                        size_t key_member);

/* Removes key and returns its value (NULL when absent). */
void *es__map_remove(es__map *m, const char *key);

/* Iteration: for (size_t i = 0; es__map_next(m, &i, &key, &value);) ...
 * visits every entry once, in no order; m must not change meanwhile. */
int es__map_next(const es__map *m, size_t *iter, const char **key,
                 void **value);

/* Frees the table (not the keys or values) and empties m. */
void es__map_free(es__map *m);

#endif
