/*
 * core/uuid.c - UUID version 7 event ids (RFC 9562).
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
    snprintf(out, ES_UUID_BUFSZ,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
    return 0;
}
