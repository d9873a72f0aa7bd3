/*
 * tests/test_map.c - core/map.c, the one internal hash map: get, put,
 * replace, remove (the backward shift keeps every other key findable),
 * iteration, growth, and a failed growth leaving the map as it was.
 * Checked against a plain array of the same keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "core/map.h"

#define N 3000

static char keys[N][24];
static int present[N];
static int values[N];

/* Every key findable exactly when present, with its value. */
static void check_all(const es__map *m)
{
    size_t count = 0, it = 0;
    const char *k;
    void *v;
    for (int i = 0; i < N; i++) {
        void *got = es__map_get(m, keys[i]);
        if (present[i]) {
            assert_ptr_equal(got, &values[i]);
            count++;
        } else {
            assert_null(got);
        }
    }
    assert_int_equal(m->len, count);
    count = 0;
    while (es__map_next(m, &it, &k, &v)) {
        int i = (int)((int *)v - values);
        assert_true(i >= 0 && i < N && present[i]);
        assert_string_equal(k, keys[i]);
        count++;
    }
    assert_int_equal(m->len, count);
}

static void test_put_get_remove(void **state)
{
    es__map m = ES__MAP_INIT;
    unsigned seed = 12345;
    (void)state;
    assert_null(es__map_get(&m, "nothing"));
    assert_null(es__map_remove(&m, "nothing"));
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "acct-%d", i);
        present[i] = 0;
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(es__map_put(&m, keys[i], &values[i]), 0);
        present[i] = 1;
    }
    check_all(&m);
    assert_true(m.cap >= 4 * m.len / 3);
    /* replacing a value keeps one entry */
    assert_int_equal(es__map_put(&m, keys[7], &values[8]), 0);
    assert_ptr_equal(es__map_get(&m, keys[7]), &values[8]);
    assert_int_equal(es__map_put(&m, keys[7], &values[7]), 0);
    check_all(&m);
    /* removals in a pseudo-random order, with re-insertions: after each
     * batch every other key is still found (the probe runs stay whole) */
    for (int round = 0; round < 20; round++) {
        for (int j = 0; j < 200; j++) {
            int i;
            seed = seed * 1103515245u + 12345u;
            i = (int)((seed >> 8) % N);
            if (present[i]) {
                assert_ptr_equal(es__map_remove(&m, keys[i]), &values[i]);
                present[i] = 0;
                assert_null(es__map_remove(&m, keys[i]));
            } else {
                assert_int_equal(es__map_put(&m, keys[i], &values[i]), 0);
                present[i] = 1;
            }
        }
        check_all(&m);
    }
    for (int i = 0; i < N; i++)
        if (present[i]) {
            assert_ptr_equal(es__map_remove(&m, keys[i]), &values[i]);
            present[i] = 0;
        }
    check_all(&m);
    assert_int_equal(m.len, 0);
    es__map_free(&m);
    assert_int_equal(m.cap, 0);
    es__map_free(&m); /* twice is fine */
}

static long allocs, fail_at;

static void *failing_malloc(size_t n)
{
    return ++allocs == fail_at ? NULL : malloc(n);
}

static void test_failed_growth(void **state)
{
    es__map m = ES__MAP_INIT;
    (void)state;
    for (int i = 0; i < 48; i++) { /* 64 slots hold 48 */
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        present[i] = 1;
        assert_int_equal(es__map_put(&m, keys[i], &values[i]), 0);
    }
    for (int i = 48; i < N; i++)
        present[i] = 0;
    snprintf(keys[48], sizeof keys[48], "k48");
    allocs = 0;
    fail_at = 1;
    es_set_allocator(failing_malloc, free);
    assert_int_equal(es__map_put(&m, keys[48], &values[48]), ES_ENOMEM);
    es_set_allocator(NULL, NULL);
    check_all(&m);
    assert_int_equal(m.cap, 64);
    assert_int_equal(es__map_put(&m, keys[48], &values[48]), 0);
    present[48] = 1;
    check_all(&m);
    es__map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_remove),
        cmocka_unit_test(test_failed_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
