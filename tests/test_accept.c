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

/* ev() with the event's place in its commit, as esfold writes it now. */
static es_event *evi(const char *s, int64_t v, const char *c, int32_t k, int32_t i)
{
    es_event *e = ev(s, v, c, k);
    e->commit_index = i;
    return e;
}

/* A commit torn after its first event and retried whole with the same
 * commit id: the torn start is rejected, the retry counts once. */
static void test_torn_commit_retried(void **state)
{
    es_acceptor *acc = fresh(0);
    (void)state;
    es_acceptor_feed_new(acc, evi("a", 1, NULL, 0, 0));
    es_acceptor_feed_new(acc, evi("a", 2, "c", 2, 0));
    es_acceptor_feed_new(acc, evi("a", 2, "c", 2, 0));
    es_acceptor_feed_new(acc, evi("a", 3, "c", 2, 1));
    assert_string_equal(drain(acc), "0:accepted 1:interleaved 2:accepted 3:accepted ");
    assert_int_equal(es_acceptor_version(acc, "a"), 3);
    /* The same without indexes (0.1.0 records): the versions decide. */
    es_acceptor_free(acc);
    acc = fresh(0);
    es_acceptor_feed_new(acc, ev("a", 1, NULL, 0));
    es_acceptor_feed_new(acc, ev("a", 2, "c", 2));
    es_acceptor_feed_new(acc, ev("a", 2, "c", 2));
    es_acceptor_feed_new(acc, ev("a", 3, "c", 2));
    assert_string_equal(drain(acc), "0:accepted 1:interleaved 2:accepted 3:accepted ");
    es_acceptor_free(acc);
}

/* A reader seeded inside a commit takes only the commit's next event. */
static void test_seed_inside_commit_rejects_a_skip(void **state)
{
    es_acceptor *acc = fresh(0);
    es_event *at = evi("b", 7, "m", 4, 1); /* commit m is versions 6..9 */
    (void)state;
    next_offset = 0;
    assert_int_equal(es_acceptor_seed(acc, "b", 7, at), 0);
    es_event_free(at);
    es_acceptor_feed_new(acc, evi("b", 9, "m", 4, 3));
    es_acceptor_feed_new(acc, evi("b", 8, "x", 1, 0));
    assert_string_equal(drain(acc), "0:gap 1:accepted ");
    assert_int_equal(es_acceptor_version(acc, "b"), 8);
    es_acceptor_free(acc);
    /* and the commit's next events are accepted */
    acc = fresh(0);
    at = evi("b", 7, "m", 4, 1);
    next_offset = 0;
    assert_int_equal(es_acceptor_seed(acc, "b", 7, at), 0);
    es_event_free(at);
    es_acceptor_feed_new(acc, evi("b", 8, "m", 4, 2));
    es_acceptor_feed_new(acc, evi("c", 1, NULL, 0, 0));
    es_acceptor_feed_new(acc, evi("b", 9, "m", 4, 3));
    assert_string_equal(drain(acc), "0:accepted 1:accepted 2:accepted ");
    /* a seed whose index is unknown inside a commit is refused */
    at = ev("d", 3, "q", 4);
    assert_int_equal(es_acceptor_seed(acc, "d", 3, at), ES_EINVAL);
    es_event_free(at);
    es_acceptor_free(acc);
}

/* An event that says it is not its commit's first, with no commit open. */
static void test_orphan_of_a_commit(void **state)
{
    es_acceptor *acc = fresh(0);
    const es_event *e;
    es_verdict v;
    const char *why;
    (void)state;
    es_acceptor_feed_new(acc, evi("a", 1, "c", 2, 1));
    assert_int_equal(es_acceptor_next(acc, &e, &v, &why), 1);
    assert_int_equal(v, ES_VERDICT_INTERLEAVED);
    assert_non_null(strstr(why, "is number 2 of commit c, whose first events did not "
                                "come before it"));
    assert_int_equal(es_acceptor_version(acc, "a"), 0);
    es_acceptor_free(acc);
}

/* The bounds: a commit too large, and one that never completes. */
static void test_commit_bounds(void **state)
{
    es_acceptor *acc = fresh(0);
    const es_event *e;
    es_verdict v;
    const char *why;
    int n = 0;
    (void)state;
    es_acceptor_feed_new(acc, evi("a", 1, "huge", ES_COMMIT_MAX_EVENTS + 1, 0));
    assert_int_equal(es_acceptor_next(acc, &e, &v, &why), 1);
    assert_int_equal(v, ES_VERDICT_MALFORMED);
    assert_non_null(strstr(why, "more than a commit may have (10000)"));
    /* a commit of 3 with one event at offset 1; then records of other
     * streams up to the window, then past it */
    es_acceptor_feed_new(acc, evi("a", 1, "torn", 3, 0));
    next_offset = 1 + ES_COMMIT_WINDOW - 1;
    es_acceptor_feed_new(acc, evi("b", 1, NULL, 0, 0));
    assert_int_equal(es_acceptor_next(acc, &e, &v, &why), 0); /* still open */
    es_acceptor_feed_new(acc, evi("c", 1, NULL, 0, 0)); /* at 1 + WINDOW */
    while (es_acceptor_next(acc, &e, &v, &why)) {
        if (n++ == 0) {
            assert_int_equal(v, ES_VERDICT_INCOMPLETE);
            assert_non_null(strstr(why, "a commit must complete within 20000 offsets"));
        } else {
            assert_int_equal(v, ES_VERDICT_ACCEPTED);
        }
    }
    assert_int_equal(n, 3);
    /* the stream goes on */
    es_acceptor_feed_new(acc, evi("a", 1, NULL, 0, 0));
    assert_string_equal(drain(acc), "20002:accepted ");
    es_acceptor_free(acc);
}

/* A reader resuming at a checkpoint learns each stream's state from its
 * seed function, once per stream, inside an accepted commit too. */
static int seed_b(es_stream_seed *out, const char *sid, void *ud)
{
    ++*(int *)ud;
    if (strcmp(sid, "b") == 0) {
        out->version = 7;
        out->commit_id = "m";
        out->commit_size = 3;
        out->commit_index = 1;
    } else if (strcmp(sid, "stop") == 0) {
        return 1;
    }
    return 0;
}

static void test_seed_function(void **state)
{
    es_acceptor *acc = fresh(0);
    int calls = 0;
    (void)state;
    es_acceptor_set_seed_fn(acc, seed_b, &calls);
    es_acceptor_feed_new(acc, evi("a", 1, NULL, 0, 0));
    es_acceptor_feed_new(acc, evi("b", 8, "m", 3, 2));
    es_acceptor_feed_new(acc, evi("b", 9, NULL, 0, 0));
    es_acceptor_feed_new(acc, evi("a", 2, NULL, 0, 0));
    assert_string_equal(drain(acc), "0:accepted 1:accepted 2:accepted 3:accepted ");
    assert_int_equal(calls, 2);
    assert_int_equal(es_acceptor_version(acc, "b"), 9);
    assert_int_equal(es_acceptor_feed_new(acc, evi("stop", 1, NULL, 0, 0)), ES_EUSER);
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
        cmocka_unit_test(test_torn_commit_retried),
        cmocka_unit_test(test_seed_inside_commit_rejects_a_skip),
        cmocka_unit_test(test_orphan_of_a_commit),
        cmocka_unit_test(test_commit_bounds),
        cmocka_unit_test(test_seed_function),
        cmocka_unit_test(test_many_streams_and_growth),
        cmocka_unit_test(test_commit_size_mismatch_breaks_the_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
