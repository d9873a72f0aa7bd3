/*
 * core/accept.c - the acceptance rule (esfold/accept.h), implemented once
 * for every reader: folds, the Kafka writer's confirmation, partition
 * reads, esfold verify.
 *
 * State: a hash table of streams (current version, the open commit), a
 * FIFO of fed events in feed order (each decided or not), and with
 * ES_ACCEPTOR_TRACK_IDS a hash table of accepted event ids.
 */
#include <string.h>

#include "esfold/accept.h"
#include "internal.h"
#include "map.h"

/* ---- the acceptor ------------------------------------------------------ */

typedef struct stream {
    char *id;
    int64_t cur; /* the accepted version */
    int fed;     /* an event of it was fed (no more seeding) */
    /* The open commit: its id (NULL: none), size, first version, how many
     * of its events have come (have; with a seed inside the commit, the
     * ones before the seed count too, already accepted), the ones held
     * here (got: FIFO sequence numbers, or owned events in STATE_ONLY
     * mode), and the offset before which it must complete. */
    char *open_id;
    int32_t open_size, open_have;
    int64_t open_first, open_deadline;
    size_t open_got, open_cap;
    uint64_t *open_seqs;
    es_event **open_evs;
    struct stream *prev, *next; /* the open commits, by deadline */
} stream;

typedef struct rec {
    es_event *ev;
    int decided;
    es_verdict verdict;
    char *why;
} rec;

typedef struct accepted_id {
    stream *st;
    int64_t version;
    es_position position;
    int32_t commit_size, commit_index;
    char id[]; /* the key */
} accepted_id;

struct es_acceptor {
    unsigned flags;
    es__map streams; /* id -> stream */
    es__map ids;     /* event id -> accepted_id (TRACK_IDS) */
    stream *open_head, *open_tail; /* streams with an open commit */
    es_seed_fn seed_fn;
    void *seed_data;
    /* The FIFO: count records from recs[head], the first has seq head_seq. */
    rec *recs;
    size_t cap, head, count;
    uint64_t head_seq;
    rec taken; /* what es_acceptor_next returned last, freed on the next call */
    es_acceptor_stats stats;
};

const char *es_verdict_name(es_verdict verdict)
{
    switch (verdict) {
    case ES_VERDICT_ACCEPTED: return "accepted";
    case ES_VERDICT_STALE: return "stale";
    case ES_VERDICT_GAP: return "gap";
    case ES_VERDICT_INTERLEAVED: return "interleaved";
    case ES_VERDICT_INCOMPLETE: return "incomplete";
    case ES_VERDICT_MALFORMED: return "malformed";
    }
    return "unknown";
}

int es_acceptor_new(es_acceptor **out, unsigned flags)
{
    es_acceptor *acc;
    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    acc = es__calloc(1, sizeof *acc);
    if (acc == NULL)
        return ES_ENOMEM;
    acc->flags = flags;
    *out = acc;
    return 0;
}

void es_acceptor_set_seed_fn(es_acceptor *acc, es_seed_fn fn, void *user_data)
{
    if (acc == NULL)
        return;
    acc->seed_fn = fn;
    acc->seed_data = user_data;
}

static void stream_free(stream *st)
{
    size_t i;
    if (st == NULL)
        return;
    if (st->open_evs)
        for (i = 0; i < st->open_got; i++)
            es_event_free(st->open_evs[i]);
    es__free(st->open_evs);
    es__free(st->open_seqs);
    es__free(st->open_id);
    es__free(st->id);
    es__free(st);
}

void es_acceptor_free(es_acceptor *acc)
{
    void *v;
    size_t i;
    if (acc == NULL)
        return;
    for (i = 0; es__map_next(&acc->streams, &i, NULL, &v);)
        stream_free(v);
    es__map_free(&acc->streams);
    for (i = 0; es__map_next(&acc->ids, &i, NULL, &v);)
        es__free(v);
    es__map_free(&acc->ids);
    for (i = 0; i < acc->count; i++) {
        rec *r = &acc->recs[(acc->head + i) % acc->cap];
        es_event_free(r->ev);
        es__free(r->why);
    }
    es__free(acc->recs);
    es_event_free(acc->taken.ev);
    es__free(acc->taken.why);
    es__free(acc);
}

/* The stream of id; with create, made when new. NULL: not there (or out
 * of memory with create). */
static stream *get_stream(es_acceptor *acc, const char *id, int create)
{
    stream *st = es__map_get(&acc->streams, id);
    if (st || !create)
        return st;
    st = es__calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    if ((st->id = es__strdup(id)) == NULL ||
        es__map_put(&acc->streams, st->id, st) != 0) {
        stream_free(st);
        return NULL;
    }
    return st;
}

/* Puts st (its commit just opened) in the list of open commits, which is
 * kept in deadline order. */
static void open_link(es_acceptor *acc, stream *st)
{
    stream *after = acc->open_tail;
    while (after && after->open_deadline > st->open_deadline)
        after = after->prev;
    st->prev = after;
    st->next = after ? after->next : acc->open_head;
    if (st->next)
        st->next->prev = st;
    else
        acc->open_tail = st;
    if (after)
        after->next = st;
    else
        acc->open_head = st;
}

static void close_commit(es_acceptor *acc, stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else if (acc->open_head == st)
        acc->open_head = st->next;
    if (st->next)
        st->next->prev = st->prev;
    else if (acc->open_tail == st)
        acc->open_tail = st->prev;
    st->prev = st->next = NULL;
    es__free(st->open_id);
    st->open_id = NULL;
    st->open_got = 0;
    st->open_have = 0;
}

/* Starts st at version; inside the commit of `at` when it goes on. */
static int seed_stream(es_acceptor *acc, stream *st, int64_t version,
                       const es_event *at)
{
    int32_t size = at && at->commit_id && at->commit_size > 1 ? at->commit_size : 1;
    if (version < 0 ||
        (size > 1 && (at->commit_index < 0 || at->commit_index >= size ||
                      at->version != version || version - at->commit_index < 1)))
        return ES_EINVAL;
    if (st->open_id)
        close_commit(acc, st);
    st->cur = version;
    if (size > 1 && at->commit_index < size - 1) {
        /* Inside an accepted commit: the rest of it must follow. */
        if ((st->open_id = es__strdup(at->commit_id)) == NULL)
            return ES_ENOMEM;
        st->open_size = size;
        st->open_first = version - at->commit_index;
        st->open_have = at->commit_index + 1;
        st->open_deadline = at->position.offset + ES_COMMIT_WINDOW;
        open_link(acc, st);
    }
    return 0;
}

int es_acceptor_seed(es_acceptor *acc, const char *stream_id, int64_t version,
                     const es_event *at)
{
    stream *st;
    if (acc == NULL || stream_id == NULL || version < 0)
        return ES_EINVAL;
    if ((st = get_stream(acc, stream_id, 1)) == NULL)
        return ES_ENOMEM;
    if (st->fed)
        return ES_EINVAL;
    return seed_stream(acc, st, version, at);
}

int64_t es_acceptor_version(const es_acceptor *acc, const char *stream_id)
{
    const stream *st;
    if (acc == NULL || stream_id == NULL)
        return 0;
    st = es__map_get(&acc->streams, stream_id);
    return st ? st->cur : 0;
}

int es_acceptor_find_id(const es_acceptor *acc, const char *id,
                        es_accepted_id *out)
{
    const accepted_id *a;
    if (acc == NULL || id == NULL)
        return 0;
    if ((a = es__map_get(&acc->ids, id)) == NULL)
        return 0;
    if (out) {
        out->stream_id = a->st->id;
        out->version = a->version;
        out->position = a->position;
        out->commit_size = a->commit_size;
        out->commit_index = a->commit_index;
    }
    return 1;
}

void es_acceptor_get_stats(const es_acceptor *acc, es_acceptor_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (acc)
        *out = acc->stats;
}

/* Appends ev (owned) to the FIFO, undecided; its seq in *seq. */
static int fifo_push(es_acceptor *acc, es_event *ev, uint64_t *seq)
{
    rec *r;
    if (acc->count == acc->cap) {
        size_t ncap = acc->cap ? acc->cap * 2 : 256, i;
        rec *nr = es__calloc(ncap, sizeof *nr);
        if (nr == NULL)
            return ES_ENOMEM;
        for (i = 0; i < acc->count; i++)
            nr[i] = acc->recs[(acc->head + i) % acc->cap];
        es__free(acc->recs);
        acc->recs = nr;
        acc->cap = ncap;
        acc->head = 0;
    }
    r = &acc->recs[(acc->head + acc->count) % acc->cap];
    memset(r, 0, sizeof *r);
    r->ev = ev;
    *seq = acc->head_seq + acc->count;
    acc->count++;
    return 0;
}

static rec *fifo_at(es_acceptor *acc, uint64_t seq)
{
    return &acc->recs[(acc->head + (size_t)(seq - acc->head_seq)) % acc->cap];
}

static int remember_id(es_acceptor *acc, stream *st, const es_event *ev,
                       int32_t size, int32_t index)
{
    accepted_id *a;
    size_t n;
    if (!(acc->flags & ES_ACCEPTOR_TRACK_IDS) || ev->id == NULL ||
        es__map_get(&acc->ids, ev->id))
        return 0;
    n = strlen(ev->id);
    if ((a = es__malloc(sizeof *a + n + 1)) == NULL)
        return ES_ENOMEM;
    a->st = st;
    a->version = ev->version;
    a->position = ev->position;
    a->commit_size = size;
    a->commit_index = index;
    memcpy(a->id, ev->id, n + 1);
    if (es__map_put(&acc->ids, a->id, a) != 0) {
        es__free(a);
        return ES_ENOMEM;
    }
    return 0;
}

/*
 * Decides one event. In STATE_ONLY mode ev is owned here and freed;
 * otherwise it is in the FIFO at seq. why is owned (may be NULL).
 */
static int decide_in(es_acceptor *acc, stream *st, es_event *ev, uint64_t seq,
                     es_verdict verdict, char *why, int32_t size, int32_t index)
{
    int rc = 0;
    if (verdict == ES_VERDICT_ACCEPTED) {
        acc->stats.accepted++;
        if (st) {
            st->cur = ev->version;
            rc = remember_id(acc, st, ev, size, index);
        }
    } else {
        acc->stats.rejected++;
    }
    if (acc->flags & ES_ACCEPTOR_STATE_ONLY) {
        es_event_free(ev);
        es__free(why);
    } else {
        rec *r = fifo_at(acc, seq);
        r->decided = 1;
        r->verdict = verdict;
        r->why = why;
    }
    return rc;
}

static es_event *open_event(es_acceptor *acc, const stream *st, size_t i)
{
    return (acc->flags & ES_ACCEPTOR_STATE_ONLY) ? st->open_evs[i]
                                                 : fifo_at(acc, st->open_seqs[i])->ev;
}

/* Decides an event that is a commit of its own, or a rejected one. */
static int decide(es_acceptor *acc, stream *st, es_event *ev, uint64_t seq,
                  es_verdict verdict, char *why)
{
    return decide_in(acc, st, ev, seq, verdict, why, 1, 0);
}

/* Decides every event st's open commit holds and closes it. */
static int decide_commit(es_acceptor *acc, stream *st, es_verdict verdict,
                         const char *why)
{
    size_t i;
    int rc = 0;
    /* The events held follow the ones that came before a seed. */
    int32_t base = st->open_have - (int32_t)st->open_got;
    for (i = 0; i < st->open_got; i++) {
        es_event *ev = open_event(acc, st, i);
        char *w = NULL;
        if (why && (w = es__strdup(why)) == NULL)
            rc = ES_ENOMEM;
        if (acc->flags & ES_ACCEPTOR_STATE_ONLY)
            st->open_evs[i] = NULL;
        acc->stats.pending--;
        if (decide_in(acc, st, ev, (acc->flags & ES_ACCEPTOR_STATE_ONLY) ? 0
                                   : st->open_seqs[i], verdict, w,
                      st->open_size, base + (int32_t)i) != 0)
            rc = ES_ENOMEM;
    }
    close_commit(acc, st);
    return rc;
}

/* Adds ev (in the FIFO at seq, or owned in STATE_ONLY mode) to st's open
 * commit. */
static int add_to_commit(es_acceptor *acc, stream *st, es_event *ev, uint64_t seq)
{
    if (st->open_got == st->open_cap) {
        size_t ncap = st->open_cap ? st->open_cap * 2 : 8;
        if (es__grow((void **)&st->open_seqs, st->open_cap * sizeof *st->open_seqs,
                     ncap * sizeof *st->open_seqs) != 0 ||
            es__grow((void **)&st->open_evs, st->open_cap * sizeof *st->open_evs,
                     ncap * sizeof *st->open_evs) != 0)
            return ES_ENOMEM;
        st->open_cap = ncap;
    }
    st->open_seqs[st->open_got] = seq;
    st->open_evs[st->open_got] = (acc->flags & ES_ACCEPTOR_STATE_ONLY) ? ev : NULL;
    st->open_got++;
    st->open_have++;
    acc->stats.pending++;
    return 0;
}

/* Commits that should have completed before offset `offset` are decided
 * incomplete: no reader holds events behind them for ever. */
static int expire(es_acceptor *acc, int64_t offset)
{
    while (acc->open_head && acc->open_head->open_deadline <= offset) {
        stream *st = acc->open_head;
        char *why = es__sprintf("commit %s of %s had %d of its %d events when "
                                "offset %lld came: a commit must complete "
                                "within %d offsets of its first event (at "
                                "offset %lld or later)",
                                st->open_id, st->id, (int)st->open_have,
                                (int)st->open_size, (long long)offset,
                                ES_COMMIT_WINDOW,
                                (long long)(st->open_deadline - ES_COMMIT_WINDOW));
        int rc = decide_commit(acc, st, ES_VERDICT_INCOMPLETE,
                               why ? why : "incomplete");
        es__free(why);
        if (rc)
            return rc;
    }
    return 0;
}

/* Why ev cannot be part of any commit, whatever came before it; NULL when
 * it can. */
static char *commit_flaw(const es_event *ev, int32_t size)
{
    if (ev->commit_id && ev->commit_size > ES_COMMIT_MAX_EVENTS)
        return es__sprintf("event %s says its commit %s has %d events, more "
                           "than a commit may have (%d)",
                           ev->id ? ev->id : "?", ev->commit_id,
                           (int)ev->commit_size, ES_COMMIT_MAX_EVENTS);
    if (ev->commit_index >= size)
        return es__sprintf("event %s says it is number %d of its commit %s, "
                           "which has %d events",
                           ev->id ? ev->id : "?", (int)ev->commit_index + 1,
                           ev->commit_id ? ev->commit_id : "-", (int)size);
    return NULL;
}

int es_acceptor_feed_new(es_acceptor *acc, es_event *ev)
{
    stream *st;
    uint64_t seq = 0;
    int32_t size;
    char *flaw;
    int rc;

    if (acc == NULL || ev == NULL || ev->stream_id == NULL) {
        es_event_free(ev);
        return ES_EINVAL;
    }
    if ((rc = expire(acc, ev->position.offset)) != 0) {
        es_event_free(ev);
        return rc;
    }
    if ((st = get_stream(acc, ev->stream_id, 0)) == NULL) {
        es_stream_seed seed;
        memset(&seed, 0, sizeof seed);
        if (acc->seed_fn && acc->seed_fn(&seed, ev->stream_id, acc->seed_data) != 0) {
            es_event_free(ev);
            return ES_EUSER;
        }
        if ((st = get_stream(acc, ev->stream_id, 1)) == NULL) {
            es_event_free(ev);
            return ES_ENOMEM;
        }
        if (acc->seed_fn) {
            /* The commit's window is counted from here: later than from its
             * first event, which came before the resume point. */
            es_event at;
            memset(&at, 0, sizeof at);
            at.version = seed.version;
            at.commit_id = seed.commit_id;
            at.commit_size = seed.commit_size;
            at.commit_index = seed.commit_index;
            at.position.offset = ev->position.offset;
            if ((rc = seed_stream(acc, st, seed.version, &at)) != 0) {
                es_event_free(ev);
                return rc;
            }
        }
    }
    st->fed = 1;
    if (!(acc->flags & ES_ACCEPTOR_STATE_ONLY) && (rc = fifo_push(acc, ev, &seq))) {
        es_event_free(ev);
        return rc;
    }
    size = ev->commit_id && ev->commit_size > 1 ? ev->commit_size : 1;
    if ((flaw = commit_flaw(ev, size)) != NULL)
        /* Not an event of any commit: it leaves the stream as it is. */
        return decide(acc, NULL, ev, seq, ES_VERDICT_MALFORMED, flaw);

    if (st->open_id) {
        /* The next event of the open commit, or the commit is over. Its
         * events must agree on the commit's size: taking the first's word
         * would end the commit where a later event says it goes on (and a
         * reader seeded inside it would then decide differently). */
        if (size == st->open_size && strcmp(ev->commit_id, st->open_id) == 0 &&
            ev->version == st->open_first + st->open_have &&
            (ev->commit_index < 0 || ev->commit_index == st->open_have)) {
            if ((rc = add_to_commit(acc, st, ev, seq)) != 0)
                goto oom;
            if (st->open_have == st->open_size)
                return decide_commit(acc, st, ES_VERDICT_ACCEPTED, NULL);
            return 0;
        }
        {
            int same = ev->commit_id && strcmp(ev->commit_id, st->open_id) == 0;
            char *why = es__sprintf(
                "commit %s of %s had %d of its %d events when event %s "
                "(version %lld%s) %s came at offset %lld%s",
                st->open_id, st->id, (int)st->open_have, (int)st->open_size,
                ev->id ? ev->id : "?", (long long)ev->version,
                same && size != st->open_size ? ", saying the commit has another size"
                : same ? ", not the commit's next" : "",
                same ? "of the same commit" : "of the stream",
                (long long)ev->position.offset,
                same ? " (a torn commit retried, or a copy)" : "");
            rc = decide_commit(acc, st, ES_VERDICT_INTERLEAVED,
                               why ? why : "interleaved");
            es__free(why);
            if (rc)
                goto oom;
        }
    }
    if (ev->version <= st->cur)
        return decide(acc, st, ev, seq, ES_VERDICT_STALE,
                      es__sprintf("stream %s is at version %lld, the event has "
                                  "version %lld (a racing writer that lost, a "
                                  "zombie or a duplicate)",
                                  st->id, (long long)st->cur,
                                  (long long)ev->version));
    if (ev->version > st->cur + 1)
        return decide(acc, st, ev, seq, ES_VERDICT_GAP,
                      es__sprintf("stream %s is at version %lld, the event has "
                                  "version %lld (versions missing before it)",
                                  st->id, (long long)st->cur,
                                  (long long)ev->version));
    if (ev->commit_index > 0)
        return decide(acc, st, ev, seq, ES_VERDICT_INTERLEAVED,
                      es__sprintf("event %s is number %d of commit %s, whose "
                                  "first events did not come before it",
                                  ev->id ? ev->id : "?",
                                  (int)ev->commit_index + 1, ev->commit_id));
    if (size == 1)
        return decide(acc, st, ev, seq, ES_VERDICT_ACCEPTED, NULL);
    if ((st->open_id = es__strdup(ev->commit_id)) == NULL)
        goto oom;
    st->open_size = size;
    st->open_first = ev->version;
    st->open_have = 0;
    st->open_deadline = ev->position.offset + ES_COMMIT_WINDOW;
    open_link(acc, st);
    if (add_to_commit(acc, st, ev, seq) != 0) {
        close_commit(acc, st);
        goto oom;
    }
    return 0;
oom:
    if (acc->flags & ES_ACCEPTOR_STATE_ONLY)
        es_event_free(ev);
    else
        decide(acc, NULL, ev, seq, ES_VERDICT_MALFORMED, NULL);
    return ES_ENOMEM;
}

int es_acceptor_feed_malformed_new(es_acceptor *acc, es_event *ev,
                                   const char *why)
{
    uint64_t seq = 0;
    int rc;
    if (acc == NULL || ev == NULL) {
        es_event_free(ev);
        return ES_EINVAL;
    }
    if ((rc = expire(acc, ev->position.offset)) != 0) {
        es_event_free(ev);
        return rc;
    }
    if (acc->flags & ES_ACCEPTOR_STATE_ONLY) {
        acc->stats.rejected++;
        es_event_free(ev);
        return 0;
    }
    if ((rc = fifo_push(acc, ev, &seq)) != 0) {
        es_event_free(ev);
        return rc;
    }
    return decide(acc, NULL, ev, seq, ES_VERDICT_MALFORMED,
                  es__strdup(why ? why : "malformed"));
}

int es_acceptor_next(es_acceptor *acc, const es_event **ev, es_verdict *verdict,
                     const char **why)
{
    rec *r;
    if (acc == NULL || ev == NULL)
        return 0;
    es_event_free(acc->taken.ev);
    es__free(acc->taken.why);
    memset(&acc->taken, 0, sizeof acc->taken);
    if (acc->count == 0)
        return 0;
    r = &acc->recs[acc->head];
    if (!r->decided)
        return 0;
    acc->taken = *r;
    acc->head = (acc->head + 1) % acc->cap;
    acc->head_seq++;
    acc->count--;
    *ev = acc->taken.ev;
    if (verdict)
        *verdict = acc->taken.verdict;
    if (why)
        *why = acc->taken.why ? acc->taken.why : "";
    return 1;
}

int es_acceptor_finish(es_acceptor *acc)
{
    int rc = 0;
    if (acc == NULL)
        return ES_EINVAL;
    while (acc->open_head) {
        stream *st = acc->open_head;
        char *why = es__sprintf("commit %s of %s has %d of its %d events at the "
                                "end of the log (an aborted or torn "
                                "transaction, or a commit still being written)",
                                st->open_id, st->id, (int)st->open_have,
                                (int)st->open_size);
        if (decide_commit(acc, st, ES_VERDICT_INCOMPLETE,
                          why ? why : "incomplete") != 0)
            rc = ES_ENOMEM;
        es__free(why);
    }
    return rc;
}
