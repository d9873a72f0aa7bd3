/*
 * core/uuid.c - UUID version 7 event ids (RFC 9562), and the name-based
 * version 5 ids of idempotent commands (SHA-1, RFC 9562 section 5.5).
 *
 * 48 bits of Unix milliseconds, then 74 random bits from getrandom(2). Within
 * one millisecond the 12-bit rand_a field is a counter (RFC 9562 method 1),
 * so the ids one process makes sort in the order they were made.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;
static uint32_t counter; /* 12 bits used */

/* Random bytes are drawn from the OS a pool at a time: one getrandom(2) per
 * id was a measurable part of an append. A forked child must not reuse its
 * parent's pool (the two would make the same ids), so fork empties it. */
static unsigned char pool[4096];
static size_t pool_left;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
    pool_left = 0;
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

static int fill_random(unsigned char *b, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(b, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return ES_EIO;
        }
        b += got;
        n -= (size_t)got;
    }
    return 0;
}

static void format_uuid(char out[ES_UUID_BUFSZ], const unsigned char b[16])
{
    snprintf(out, ES_UUID_BUFSZ,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}

int es_uuid_v7(char out[ES_UUID_BUFSZ])
{
    unsigned char b[16];
    struct timespec ts;
    uint64_t ms;
    uint32_t seq;
    int rc;

    pthread_once(&atfork_once, register_atfork);
    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;

    pthread_mutex_lock(&lock);
    if (pool_left < sizeof b) {
        if ((rc = fill_random(pool, sizeof pool)) != 0) {
            pthread_mutex_unlock(&lock);
            return rc;
        }
        pool_left = sizeof pool;
    }
    memcpy(b, pool + sizeof pool - pool_left, sizeof b);
    memset(pool + sizeof pool - pool_left, 0, sizeof b);
    pool_left -= sizeof b;
    if (ms > last_ms) {
        last_ms = ms;
        counter = ((uint32_t)b[6] << 8 | b[7]) & 0x7ff; /* leave headroom */
    } else {
        ms = last_ms; /* the clock stood still or went back */
        if (++counter > 0xfff) {
            counter = 0;
            last_ms = ++ms; /* borrow the next millisecond */
        }
    }
    seq = counter;
    pthread_mutex_unlock(&lock);

    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (seq >> 8));
    b[7] = (unsigned char)(seq & 0xff);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    format_uuid(out, b);
    return 0;
}

/* ---- SHA-1 (FIPS 180-4), for name-based UUIDs only ------------------------ */

typedef struct sha1 {
    uint32_t h[5];
    unsigned char block[64];
    size_t used;
    uint64_t bytes;
} sha1;

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(sha1 *c, const unsigned char *p)
{
    uint32_t w[80], a, b, d, e, f, k, t, cc;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4];
    for (int i = 0; i < 80; i++) {
        if (i < 20)
            f = (b & cc) | (~b & d), k = 0x5a827999;
        else if (i < 40)
            f = b ^ cc ^ d, k = 0x6ed9eba1;
        else if (i < 60)
            f = (b & cc) | (b & d) | (cc & d), k = 0x8f1bbcdc;
        else
            f = b ^ cc ^ d, k = 0xca62c1d6;
        t = rol(a, 5) + f + e + k + w[i];
        e = d, d = cc, cc = rol(b, 30), b = a, a = t;
    }
    c->h[0] += a, c->h[1] += b, c->h[2] += cc, c->h[3] += d, c->h[4] += e;
}

static void sha1_add(sha1 *c, const void *data, size_t n)
{
    const unsigned char *p = data;
    c->bytes += n;
    while (n > 0) {
        size_t k = 64 - c->used < n ? 64 - c->used : n;
        memcpy(c->block + c->used, p, k);
        c->used += k, p += k, n -= k;
        if (c->used == 64) {
            sha1_block(c, c->block);
            c->used = 0;
        }
    }
}

static void sha1_end(sha1 *c, unsigned char out[20])
{
    uint64_t bits = c->bytes * 8;
    unsigned char len[8];
    sha1_add(c, "\x80", 1);
    while (c->used != 56)
        sha1_add(c, "", 1);
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha1_add(c, len, 8);
    for (int i = 0; i < 20; i++)
        out[i] = (unsigned char)(c->h[i / 4] >> (24 - 8 * (i % 4)));
}

/* The namespace of esfold's command event ids (a UUIDv4 drawn once). */
static const unsigned char command_ns[16] = {
    0x3c, 0x6e, 0x1f, 0x0a, 0x94, 0x5b, 0x4d, 0x2e,
    0x8f, 0x17, 0x62, 0xc0, 0xd5, 0x3a, 0x9b, 0x41,
};

int es_command_event_id(char out[ES_UUID_BUFSZ], const char *aggregate_type,
                        const char *stream_id, const char *command_id,
                        size_t index)
{
    sha1 c = {{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0},
              {0}, 0, 0};
    unsigned char d[20];
    char idx[24];
    if (out == NULL || aggregate_type == NULL || stream_id == NULL ||
        command_id == NULL || *command_id == '\0')
        return ES_EINVAL;
    snprintf(idx, sizeof idx, "%zu", index);
    sha1_add(&c, command_ns, sizeof command_ns);
    sha1_add(&c, aggregate_type, strlen(aggregate_type) + 1);
    sha1_add(&c, stream_id, strlen(stream_id) + 1);
    sha1_add(&c, command_id, strlen(command_id) + 1);
    sha1_add(&c, idx, strlen(idx));
    sha1_end(&c, d);
    d[6] = (unsigned char)(0x50 | (d[6] & 0x0f));
    d[8] = (unsigned char)(0x80 | (d[8] & 0x3f));
    format_uuid(out, d);
    return 0;
}
