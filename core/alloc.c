/*
 * core/alloc.c - the allocator hook, strings and a growable buffer.
 *
 * All esfold memory goes through es__malloc/es__free so that tests can make
 * any allocation fail (in the spirit of jansson's test_chaos.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

static void *(*alloc_fn)(size_t) = malloc;
static void (*free_fn)(void *) = free;

/* Allocations that failed in this thread: jansson does not say reliably
 * that a parse failed for want of memory (json_error_code is often 0), and
 * a record rejected for our own lack of memory would be a lie. */
static _Thread_local unsigned long alloc_failures;

static void *json_alloc(size_t n)
{
    void *p = alloc_fn(n);
    if (p == NULL)
        alloc_failures++;
    return p;
}

static void json_free(void *p)
{
    free_fn(p);
}

void es_set_allocator(void *(*m)(size_t), void (*f)(void *))
{
    alloc_fn = m ? m : malloc;
    free_fn = f ? f : free;
    json_set_alloc_funcs(json_alloc, json_free);
}

json_t *es__json_loadb(const char *buf, size_t len, int *oom)
{
    unsigned long before;
    json_error_t jerr;
    json_t *j;
    json_malloc_t m = NULL;
    json_free_t f = NULL;
    /* Count jansson's failures also when no allocator was set (jansson's
     * defaults are malloc and free; a user's own stay untouched). */
    json_get_alloc_funcs(&m, &f);
    if (m == malloc && f == free)
        json_set_alloc_funcs(json_alloc, json_free);
    before = alloc_failures;
    j = json_loadb(buf, len, 0, &jerr);
    *oom = j == NULL && (alloc_failures != before ||
                         json_error_code(&jerr) == json_error_out_of_memory);
    return j;
}

void *es__malloc(size_t n)
{
    return alloc_fn(n ? n : 1);
}

void *es__calloc(size_t n, size_t size)
{
    void *p;
    if (size && n > SIZE_MAX / size)
        return NULL;
    p = es__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

int es__grow(void **p, size_t old_size, size_t new_size)
{
    void *q;
    if (new_size <= old_size)
        return 0;
    q = es__malloc(new_size);
    if (q == NULL)
        return ES_ENOMEM;
    if (*p && old_size)
        memcpy(q, *p, old_size);
    es__free(*p);
    *p = q;
    return 0;
}

void es__free(void *p)
{
    if (p)
        free_fn(p);
}

void es_free(void *p)
{
    es__free(p);
}

char *es__strndup(const char *s, size_t n)
{
    char *d;
    if (s == NULL)
        return NULL;
    d = es__malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *es__strdup(const char *s)
{
    return s ? es__strndup(s, strlen(s)) : NULL;
}

char *es__sprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    s = es__malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void es__buf_add(es__buf *b, const void *data, size_t len)
{
    if (b->oom)
        return;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len + 1)
            cap *= 2;
        if (es__grow((void **)&b->data, b->len, cap) != 0) {
            b->oom = 1;
            return;
        }
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void es__buf_adds(es__buf *b, const char *s)
{
    es__buf_add(b, s, strlen(s));
}

void es__buf_printf(es__buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        es__buf_add(b, small, (size_t)n);
        return;
    }
    {
        char *big = es__malloc((size_t)n + 1);
        if (big == NULL) {
            b->oom = 1;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        es__buf_add(b, big, (size_t)n);
        es__free(big);
    }
}

void es__buf_free(es__buf *b)
{
    es__free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

int es__parse_i64(int64_t *out, const char *s)
{
    char *end;
    long long v;
    if (s == NULL || *s == '\0')
        return ES_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return ES_EINVAL;
    *out = (int64_t)v;
    return 0;
}
