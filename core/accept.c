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

/* ---- a string-keyed hash table (open addressing, linear probing) ------- */

typedef struct map_slot {
    const char *key; /* borrowed from the value */
    void *value;
} map_slot;

typedef struct map {
    map_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t len;
} map;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211u;
    }
    return h;
}

static void *map_get(const map *m, const char *key)
{
    size_t i;
    if (m->cap == 0)
        return NULL;
    for (i = hash_str(key) & (m->cap - 1); m->slots[i].key;
         i = (i + 1) & (m->cap - 1))
        if (strcmp(m->slots[i].key, key) == 0)
            return m->slots[i].value;
    return NULL;
}

/* Inserts a key that is not in m yet. 0 or ES_ENOMEM. */
static int map_put(map *m, const char *key, void *value)
{
    size_t i;
    if ((m->len + 1) * 4 > m->cap * 3) {
        size_t ncap = m->cap ? m->cap * 2 : 64, j;
        map_slot *ns = es__calloc(ncap, sizeof *ns);
        if (ns == NULL)
            return ES_ENOMEM;
        for (j = 0; j < m->cap; j++) {
            if (m->slots[j].key == NULL)
                continue;
            for (i = hash_str(m->slots[j].key) & (ncap - 1); ns[i].key;
                 i = (i + 1) & (ncap - 1))
                ;
            ns[i] = m->slots[j];
        }
        es__free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    for (i = hash_str(key) & (m->cap - 1); m->slots[i].key;
         i = (i + 1) & (m->cap - 1))
        ;
    m->slots[i].key = key;
    m->slots[i].value = value;
    m->len++;
    return 0;
}

/* ---- the acceptor ------------------------------------------------------ */

typedef struct stream {
    char *id;
    int64_t cur;       /* the accepted version */
    int fed;           /* an event of it was fed (no more seeding) */
    char *seed_commit; /* an accepted commit the seed ended inside */
    /* The open commit: its id (NULL: none), size, first version, and its
     * events so far (FIFO sequence numbers, or owned events in
     * STATE_ONLY mode). */
    char *open_id;
    int32_t open_size;
    int64_t open_first;
    size_t open_got, open_cap;
    uint64_t *open_seqs;
    es_event **open_evs;
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
    map streams; /* id -> stream */
    map ids;     /* event id -> accepted_id (TRACK_IDS) */
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
    es__free(st->seed_commit);
    es__free(st->id);
    es__free(st);
}

void es_acceptor_free(es_acceptor *acc)
{
    size_t i;
    if (acc == NULL)
        return;
    for (i = 0; i < acc->streams.cap; i++)
        if (acc->streams.slots[i].key)
            stream_free(acc->streams.slots[i].value);
    es__free(acc->streams.slots);
    for (i = 0; i < acc->ids.cap; i++)
        if (acc->ids.slots[i].key)
            es__free(acc->ids.slots[i].value);
    es__free(acc->ids.slots);
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

static stream *get_stream(es_acceptor *acc, const char *id, int create)
{
    stream *st = map_get(&acc->streams, id);
    if (st || !create)
        return st;
    st = es__calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    if ((st->id = es__strdup(id)) == NULL ||
        map_put(&acc->streams, st->id, st) != 0) {
        stream_free(st);
        return NULL;
    }
    return st;
}

int es_acceptor_seed(es_acceptor *acc, const char *stream_id, int64_t version,
                     const char *commit_id)
{
    stream *st;
    if (acc == NULL || stream_id == NULL || version < 0)
        return ES_EINVAL;
    if ((st = get_stream(acc, stream_id, 1)) == NULL)
        return ES_ENOMEM;
    if (st->fed)
        return ES_EINVAL;
    st->cur = version;
    es__free(st->seed_commit);
    st->seed_commit = NULL;
    if (commit_id && (st->seed_commit = es__strdup(commit_id)) == NULL)
        return ES_ENOMEM;
    return 0;
}

int64_t es_acceptor_version(const es_acceptor *acc, const char *stream_id)
{
    const stream *st;
    if (acc == NULL || stream_id == NULL)
        return 0;
    st = map_get(&acc->streams, stream_id);
    return st ? st->cur : 0;
}

int es_acceptor_find_id(const es_acceptor *acc, const char *id,
                        es_accepted_id *out)
{
    const accepted_id *a;
    if (acc == NULL || id == NULL)
        return 0;
    if ((a = map_get(&acc->ids, id)) == NULL)
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
        map_get(&acc->ids, ev->id))
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
    if (map_put(&acc->ids, a->id, a) != 0) {
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

static void close_commit(stream *st)
{
    es__free(st->open_id);
    st->open_id = NULL;
    st->open_got = 0;
}

/* Decides an event that is a commit of its own (or, accepted, continues
 * the commit a seed ended inside). */
static int decide(es_acceptor *acc, stream *st, es_event *ev, uint64_t seq,
                  es_verdict verdict, char *why)
{
    int32_t size = ev->commit_size > 1 && ev->commit_id ? ev->commit_size : 1;
    return decide_in(acc, st, ev, seq, verdict, why, size, size == 1 ? 0 : -1);
}

/* Decides every event of st's open commit and closes it. */
static int decide_commit(es_acceptor *acc, stream *st, es_verdict verdict,
                         const char *why)
{
    size_t i;
    int rc = 0;
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
                      st->open_size, (int32_t)i) != 0)
            rc = ES_ENOMEM;
    }
    close_commit(st);
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
    acc->stats.pending++;
    return 0;
}

int es_acceptor_feed_new(es_acceptor *acc, es_event *ev)
{
    stream *st;
    uint64_t seq = 0;
    int32_t size;
    int rc;

    if (acc == NULL || ev == NULL || ev->stream_id == NULL) {
        es_event_free(ev);
        return ES_EINVAL;
    }
    if ((st = get_stream(acc, ev->stream_id, 1)) == NULL) {
        es_event_free(ev);
        return ES_ENOMEM;
    }
    st->fed = 1;
    if (!(acc->flags & ES_ACCEPTOR_STATE_ONLY) && (rc = fifo_push(acc, ev, &seq))) {
        es_event_free(ev);
        return rc;
    }
    size = ev->commit_id && ev->commit_size > 1 ? ev->commit_size : 1;

    if (st->open_id) {
        /* Its events must agree on the commit's size: taking the first's
         * word would end the commit where a later event says it goes on
         * (and a reader seeded inside it would then decide differently). */
        if (size == st->open_size && strcmp(ev->commit_id, st->open_id) == 0 &&
            ev->version == st->open_first + (int64_t)st->open_got) {
            if ((rc = add_to_commit(acc, st, ev, seq)) != 0)
                goto oom;
            if ((int32_t)st->open_got == st->open_size)
                return decide_commit(acc, st, ES_VERDICT_ACCEPTED, NULL);
            return 0;
        }
        {
            char *why =
                size != st->open_size && ev->commit_id &&
                        strcmp(ev->commit_id, st->open_id) == 0
                    ? es__sprintf("commit %s of %s had %zu of its %d events "
                                  "when event %s (version %lld) of the same "
                                  "commit came at offset %lld saying the "
                                  "commit has %d events",
                                  st->open_id, st->id, st->open_got,
                                  (int)st->open_size, ev->id ? ev->id : "?",
                                  (long long)ev->version,
                                  (long long)ev->position.offset, (int)size)
                    : es__sprintf(
                          "commit %s of %s had %zu of its %d events when event "
                          "%s (version %lld) of the stream came at offset %lld",
                          st->open_id, st->id, st->open_got, (int)st->open_size,
                          ev->id ? ev->id : "?", (long long)ev->version,
                          (long long)ev->position.offset);
            rc = decide_commit(acc, st, ES_VERDICT_INTERLEAVED,
                               why ? why : "interleaved");
            es__free(why);
            if (rc)
                goto oom;
        }
    }
    if (st->seed_commit) {
        if (ev->commit_id && strcmp(ev->commit_id, st->seed_commit) == 0 &&
            ev->version == st->cur + 1)
            return decide(acc, st, ev, seq, ES_VERDICT_ACCEPTED, NULL);
        es__free(st->seed_commit);
        st->seed_commit = NULL;
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
    if (size == 1)
        return decide(acc, st, ev, seq, ES_VERDICT_ACCEPTED, NULL);
    if ((st->open_id = es__strdup(ev->commit_id)) == NULL)
        goto oom;
    st->open_size = size;
    st->open_first = ev->version;
    if (add_to_commit(acc, st, ev, seq) != 0) {
        close_commit(st);
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
    size_t i;
    int rc = 0;
    if (acc == NULL)
        return ES_EINVAL;
    for (i = 0; i < acc->streams.cap; i++) {
        stream *st = acc->streams.slots[i].value;
        char *why;
        if (acc->streams.slots[i].key == NULL || st->open_id == NULL)
            continue;
        why = es__sprintf("commit %s of %s has %zu of its %d events at the end "
                          "of the log (an aborted or torn transaction, or a "
                          "commit still being written)",
                          st->open_id, st->id, st->open_got, (int)st->open_size);
        if (decide_commit(acc, st, ES_VERDICT_INCOMPLETE,
                          why ? why : "incomplete") != 0)
            rc = ES_ENOMEM;
        es__free(why);
    }
    return rc;
}
