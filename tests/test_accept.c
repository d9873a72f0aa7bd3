/*
 * tests/test_accept.c - the acceptance rule (esfold/accept.h): which events
 * of a partition count, decided the same way by every reader.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static int64_t next_offset;

/* A heap event of stream s, version v, in commit c of size k (c NULL: no
 * commit header), at the next offset. */
static es_event *ev(const char *s, int64_t v, const char *c, int32_t k)
{
    es_event *e = NULL;
    char id[64];
    json_t *p = json_object();
    assert_int_equal(es_event_new(&e, "T", p), 0);
    json_decref(p);
    snprintf(id, sizeof id, "%s-v%lld-%s-@%lld", s, (long long)v, c ? c : "-",
             (long long)next_offset);
    assert_int_equal(es_event_set_str(e, &e->stream_id, s), 0);
    assert_int_equal(es_event_set_str(e, &e->id, id), 0);
    if (c)
        assert_int_equal(es_event_set_str(e, &e->commit_id, c), 0);
    e->commit_size = k;
    e->version = v;
    e->position.offset = next_offset++;
    return e;
}

/* Drains acc into a string "offset:verdict " ... */
static const char *drain(es_acceptor *acc)
{
    static char buf[2048];
    const es_event *e;
    es_verdict v;
    const char *why;
    size_t n = 0;
    buf[0] = '\0';
    while (es_acceptor_next(acc, &e, &v, &why)) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%lld:%s ",
                              (long long)e->position.offset, es_verdict_name(v));
        if (v == ES_VERDICT_ACCEPTED)
            assert_string_equal(why, "");
        else
            assert_true(strlen(why) > 0);
    }
    return buf;
}

static es_acceptor *fresh(unsigned flags)
{
    es_acceptor *acc = NULL;
    next_offset = 0;
    assert_int_equal(es_acceptor_new(&acc, flags), 0);
    return acc;
}

static void test_single_events_in_order(void **state)
{
    es_acceptor *acc = fresh(0);
    (void)state;
    assert_int_equal(es_acceptor_feed_new(acc, ev("a", 1, NULL, 0)), 0);
    assert_int_equal(es_acceptor_feed_new(acc, ev("b", 1, NULL, 0)), 0);
    assert_int_equal(es_acceptor_feed_new(acc, ev("a", 2, "c1", 1)), 0);
    assert_string_equal(drain(acc), "0:accepted 1:accepted 2:accepted ");
    assert_int_equal(es_acceptor_version(acc, "a"), 2);
    assert_int_equal(es_acceptor_version(acc, "b"), 1);
    assert_int_equal(es_acceptor_version(acc, "zzz"), 0);
    es_acceptor_free(acc);
}

static void test_racing_writer_and_zombie(void **state)
{
    es_acceptor *acc = fresh(0);
    es_acceptor_stats st;
    (void)state;
    es_acceptor_feed_new(acc, ev("a", 1, NULL, 0));
    es_acceptor_feed_new(acc, ev("a", 2, "w1", 1)); /* wins */
    es_acceptor_feed_new(acc, ev("a", 2, "w2", 1)); /* lost the race */
    es_acceptor_feed_new(acc, ev("a", 1, "z", 1));  /* zombie from stale state */
    es_acceptor_feed_new(acc, ev("a", 5, "g", 1));  /* skipped versions */
    es_acceptor_feed_new(acc, ev("a", 3, "w2b", 1)); /* the loser retried */
    assert_string_equal(drain(acc),
                        "0:accepted 1:accepted 2:stale 3:stale 4:gap 5:accepted ");
    es_acceptor_get_stats(acc, &st);
    assert_int_equal(st.accepted, 3);
    assert_int_equal(st.rejected, 3);
    assert_int_equal(st.pending, 0);
    es_acceptor_free(acc);
}

static void test_commit_is_held_until_whole(void **state)
{
    es_acceptor *acc = fresh(0);
    es_acceptor_stats st;
    (void)state;
    es_acceptor_feed_new(acc, ev("a", 1, "c1", 3));
    es_acceptor_feed_new(acc, ev("b", 1, NULL, 0)); /* other streams may interleave */
    es_acceptor_feed_new(acc, ev("a", 2, "c1", 3));
    /* b's event is decided but waits behind a's open commit */
    assert_string_equal(drain(acc), "");
    es_acceptor_get_stats(acc, &st);
    assert_int_equal(st.pending, 2);
    assert_int_equal(es_acceptor_version(acc, "a"), 0);
    es_acceptor_feed_new(acc, ev("a", 3, "c1", 3));
    assert_string_equal(drain(acc), "0:accepted 1:accepted 2:accepted 3:accepted ");
    assert_int_equal(es_acceptor_version(acc, "a"), 3);
    es_acceptor_free(acc);
}

static void test_interleaved_commits(void **state)
{
    es_acceptor *acc = fresh(0);
    (void)state;
    /* Two writers at version 0, commits of 2, interleaved: each commit is
     * broken by an event of the other before it is whole, so nothing of
     * either counts, and the second events come after a version nobody
     * has: gaps. The stream is still at 0 for the next writer. */
    es_acceptor_feed_new(acc, ev("a", 1, "c1", 2));
    es_acceptor_feed_new(acc, ev("a", 1, "c2", 2));
    es_acceptor_feed_new(acc, ev("a", 2, "c1", 2));
    es_acceptor_feed_new(acc, ev("a", 2, "c2", 2));
    es_acceptor_feed_new(acc, ev("a", 1, "c3", 1));
    assert_string_equal(drain(acc),
                        "0:interleaved 1:interleaved 2:gap 3:gap 4:accepted ");
    es_acceptor_free(acc);
}

static void test_retry_duplicate_and_torn_commit(void **state)
{
    es_acceptor *acc = fresh(0);
    (void)state;
    es_acceptor_feed_new(acc, ev("a", 1, "c1", 2));
    es_acceptor_feed_new(acc, ev("a", 2, "c1", 2));
    /* a producer retry wrote the commit again */
    es_acceptor_feed_new(acc, ev("a", 1, "c1", 2));
    es_acceptor_feed_new(acc, ev("a", 2, "c1", 2));
    /* a torn (aborted, visible) commit, then the stream goes on */
    es_acceptor_feed_new(acc, ev("a", 3, "t", 3));
    es_acceptor_feed_new(acc, ev("a", 4, "t", 3));
    es_acceptor_feed_new(acc, ev("a", 3, "c2", 1));
    assert_string_equal(drain(acc), "0:accepted 1:accepted 2:stale 3:stale "
                                    "4:interleaved 5:interleaved 6:accepted ");
    assert_int_equal(es_acceptor_version(acc, "a"), 3);
    es_acceptor_free(acc);
}

static void test_finish_rejects_open_commits(void **state)
{
    es_acceptor *acc = fresh(0);
    (void)state;
    es_acceptor_feed_new(acc, ev("a", 1, NULL, 0));
    es_acceptor_feed_new(acc, ev("a", 2, "c", 2));
    es_acceptor_feed_new(acc, ev("b", 1, NULL, 0));
    assert_string_equal(drain(acc), "0:accepted ");
    assert_int_equal(es_acceptor_finish(acc), 0);
    assert_string_equal(drain(acc), "1:incomplete 2:accepted ");
    es_acceptor_free(acc);
}

static void test_malformed_keeps_its_place(void **state)
{
    es_acceptor *acc = fresh(0);
    es_event *bad = NULL;
    json_t *p = json_object();
    (void)state;
    es_acceptor_feed_new(acc, ev("a", 1, "c", 2));
    assert_int_equal(es_event_new(&bad, NULL, p), 0);
    json_decref(p);
    bad->position.offset = next_offset++;
    assert_int_equal(es_acceptor_feed_malformed_new(acc, bad, "no es-version header"), 0);
    es_acceptor_feed_new(acc, ev("a", 2, "c", 2));
    assert_string_equal(drain(acc), "0:accepted 1:malformed 2:accepted ");
    es_acceptor_free(acc);
}

static void test_seed(void **state)
{
    es_acceptor *acc = fresh(0);
    (void)state;
    /* A snapshot at version 4 on a commit boundary. */
    assert_int_equal(es_acceptor_seed(acc, "a", 4, NULL), 0);
    /* A snapshot at version 7, in the middle of commit m (6..8). */
    {
        es_event *at = ev("b", 7, "m", 3);
        at->commit_index = 1;
        assert_int_equal(es_acceptor_seed(acc, "b", 7, at), 0);
        es_event_free(at);
        next_offset = 0;
    }
    es_acceptor_feed_new(acc, ev("a", 4, "x", 1));
    es_acceptor_feed_new(acc, ev("a", 5, "y", 1));
    es_acceptor_feed_new(acc, ev("b", 8, "m", 3));
    es_acceptor_feed_new(acc, ev("b", 9, "n", 1));
    assert_string_equal(drain(acc), "0:stale 1:accepted 2:accepted 3:accepted ");
    assert_int_equal(es_acceptor_version(acc, "b"), 9);
    /* seeding a stream that was fed already is refused */
    assert_int_equal(es_acceptor_seed(acc, "a", 1, NULL), ES_EINVAL);
    es_acceptor_free(acc);
}

static void test_state_only_with_ids(void **state)
{
    es_acceptor *acc = fresh(ES_ACCEPTOR_STATE_ONLY | ES_ACCEPTOR_TRACK_IDS);
    es_accepted_id where;
    const es_event *e;
    (void)state;
    es_acceptor_feed_new(acc, ev("a", 1, "c", 2));
    es_acceptor_feed_new(acc, ev("a", 2, "c", 2));
    es_acceptor_feed_new(acc, ev("a", 2, "d", 1));
    assert_int_equal(es_acceptor_next(acc, &e, NULL, NULL), 0);
    assert_int_equal(es_acceptor_version(acc, "a"), 2);
    assert_int_equal(es_acceptor_find_id(acc, "a-v2-c-@1", &where), 1);
    assert_string_equal(where.stream_id, "a");
    assert_int_equal(where.version, 2);
    assert_int_equal(where.position.offset, 1);
    assert_int_equal(where.commit_size, 2);
    assert_int_equal(where.commit_index, 1);
    assert_int_equal(es_acceptor_find_id(acc, "a-v2-d-@2", NULL), 0);
    es_acceptor_free(acc);
}

static void test_many_streams_and_growth(void **state)
{
    es_acceptor *acc = fresh(0);
    char s[32];
    int i, n = 0;
    const es_event *e;
    es_verdict v;
    (void)state;
    /* one commit held open while 5000 events of other streams pile up */
    es_acceptor_feed_new(acc, ev("held", 1, "h", 2));
    for (i = 0; i < 5000; i++) {
        snprintf(s, sizeof s, "s%d", i % 700);
        es_acceptor_feed_new(acc, ev(s, i / 700 + 1, NULL, 0));
    }
    assert_int_equal(es_acceptor_next(acc, &e, &v, NULL), 0);
    es_acceptor_feed_new(acc, ev("held", 2, "h", 2));
    while (es_acceptor_next(acc, &e, &v, NULL)) {
        assert_int_equal(e->position.offset, n);
        assert_int_equal(v, ES_VERDICT_ACCEPTED);
        n++;
    }
    assert_int_equal(n, 5002);
    assert_int_equal(es_acceptor_version(acc, "s699"), 7);
    es_acceptor_free(acc);
    es_acceptor_free(NULL);
}

static void test_commit_size_mismatch_breaks_the_commit(void **state)
{
    es_acceptor *acc = fresh(0);
    (void)state;
    /* The events of commit c disagree on its size: the first says 2, the
     * second 3. Taking the first's word would accept v1..v2 and leave v3
     * (of the same commit) to a new open commit, while a reader seeded
     * inside c (at v2) accepts v3 at once: readers would disagree. A commit
     * whose events disagree on its size is not whole: rejected. */
    es_acceptor_feed_new(acc, ev("a", 1, "c", 2));
    es_acceptor_feed_new(acc, ev("a", 2, "c", 3));
    es_acceptor_feed_new(acc, ev("a", 3, "c", 3));
    es_acceptor_feed_new(acc, ev("a", 1, "d", 1));
    assert_string_equal(drain(acc), "0:interleaved 1:gap 2:gap 3:accepted ");
    assert_int_equal(es_acceptor_version(acc, "a"), 1);
    es_acceptor_free(acc);

    /* The other way round (3, then 2) is rejected the same way, not held
     * open until a third event comes. */
    acc = fresh(0);
    es_acceptor_feed_new(acc, ev("a", 1, "c", 3));
    es_acceptor_feed_new(acc, ev("a", 2, "c", 2));
    assert_string_equal(drain(acc), "0:interleaved 1:gap ");
    assert_int_equal(es_acceptor_version(acc, "a"), 0);
    es_acceptor_free(acc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_events_in_order),
        cmocka_unit_test(test_racing_writer_and_zombie),
        cmocka_unit_test(test_commit_is_held_until_whole),
        cmocka_unit_test(test_interleaved_commits),
        cmocka_unit_test(test_retry_duplicate_and_torn_commit),
        cmocka_unit_test(test_finish_rejects_open_commits),
        cmocka_unit_test(test_malformed_keeps_its_place),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_state_only_with_ids),
        cmocka_unit_test(test_many_streams_and_growth),
        cmocka_unit_test(test_commit_size_mismatch_breaks_the_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
