/*
 * cli/verify.c - `verify [TYPE...]`: reads every partition of every
 * aggregate type and checks what folds rely on: each stream starts at
 * version 1 and goes up by one, no version or event id appears twice,
 * every record decodes, and every stream sits in the partition its key
 * hashes to. Events the acceptance rule rejects (esfold/accept.h) are
 * listed with their verdict; they are not problems. Then, for each type
 * compiled into the program (unless --structure), every stream is folded
 * as a load folds it (upcasters applied), and each that does not load is a
 * problem (fold_failed): an event appended with --unchecked, an apply that
 * refuses an old payload.
 *
 * Memory: one entry per stream of the type being checked (its id and last
 * version) and a 64-bit hash per event id of the whole log (16 bytes an
 * event with the table at most half full); no events are held. Ids whose hash repeats are looked up in a second pass,
 * which only runs when there are any, to name every place they occur.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/internal.h"
#include "core/map.h"

enum { OPT_JSON, OPT_STRUCTURE };

static const es__cli_opt verify_opts[] = {
    { "json", NULL, "print the report as one JSON object (docs/cli.md)" },
    { "structure", NULL, "the structural check alone: do not fold the streams "
                         "of the types compiled in" },
    { NULL, NULL, NULL }
};

/* Events per es_log_read_partition call. */
#define BATCH 1024

/* ---- A map stream id -> last version, and a set of id hashes -------------- */

typedef struct stream_entry {
    char *id;               /* the key in the map */
    int64_t last_version;
    es_position last_position;
} stream_entry;

typedef es__map stream_map; /* stream id -> stream_entry (core/map.h) */

static void stream_map_free(stream_map *m)
{
    void *v;
    for (size_t i = 0; es__map_next(m, &i, NULL, &v);) {
        es__free(((stream_entry *)v)->id);
        es__free(v);
    }
    es__map_free(m);
}

/* The entry of id, added (version 0) when new; NULL when out of memory. */
static stream_entry *stream_map_get(stream_map *m, const char *id, int *added)
{
    stream_entry *e = es__map_get(m, id);
    *added = 0;
    if (e)
        return e;
    e = es__map_add_entry(m, id, sizeof *e, offsetof(stream_entry, id));
    *added = e != NULL;
    return e;
}

typedef struct id_set {
    uint64_t *slots;        /* 0: empty */
    size_t cap, n;
} id_set;

static uint64_t id_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a, then a 64-bit finalizer */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h ? h : 1;
}

/* Adds h; 1 when it was there already, 0 when new, ES_ENOMEM. */
static int id_set_add(id_set *s, uint64_t h)
{
    size_t i;
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *slots = es__calloc(cap, sizeof *slots);
        if (slots == NULL)
            return ES_ENOMEM;
        for (size_t k = 0; k < s->cap; k++) {
            if (s->slots[k] == 0)
                continue;
            for (i = s->slots[k] & (cap - 1); slots[i]; i = (i + 1) & (cap - 1))
                ;
            slots[i] = s->slots[k];
        }
        es__free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    for (i = h & (s->cap - 1); s->slots[i]; i = (i + 1) & (s->cap - 1))
        if (s->slots[i] == h)
            return 1;
    s->slots[i] = h;
    s->n++;
    return 0;
}

/* ---- The run ------------------------------------------------------------ */

/* An event id seen more than once (by hash), and where (second pass). */
typedef struct dup_id {
    char *id;
    int64_t count;
    es__buf where;
} dup_id;

typedef struct type_stats {
    int64_t partitions, streams, events, problems;
    int64_t folded; /* streams folded; -1: the type was not folded */
} type_stats;

typedef struct verify_ctx {
    es__cli *cli;
    es_log *log;
    int json;
    json_t *problems;       /* --json */
    json_t *by_type;        /* --json */
    int64_t nproblems;
    int64_t types, partitions, streams, events, folded;
    /* The type and partition being read. */
    const char *type;
    int32_t partition, nparts;
    int64_t last_offset;    /* of the last record delivered in this read */
    int64_t seen_offset;    /* the highest offset handled in this partition */
    int64_t at_offset;      /* where a read failed (-1: unknown) */
    type_stats ts;
    stream_map streams_map;
    id_set ids;
    dup_id *dups;
    size_t ndups, capdups;
    int second_pass;
    int failed;             /* out of memory: stop */
    /* Rejected events (esfold/accept.h: a racing writer that lost, a
     * zombie, a producer retry, a torn commit): skipped by every reader,
     * so they are listed, not counted as problems. es_log_scan_partition
     * delivers them with their verdict; the SQLite log never has any. */
    int64_t rejected;
    json_t *rejected_list;  /* --json */
} verify_ctx;

static void problem(verify_ctx *c, const char *kind, const es_event *ev,
                    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Reports one problem: ev names the event it is about, or NULL for one
 * about the partition being read. */
static void problem(verify_ctx *c, const char *kind, const es_event *ev,
                    const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->nproblems++;
    c->ts.problems++;
    if (c->json) {
        json_t *p;
        if (ev)
            p = json_pack("{s:s,s:o,s:o,s:I,s:{s:i,s:I},s:o}", "kind", kind,
                          "aggregate_type", es__json_str(c->type), "stream_id",
                          es__json_str(ev->stream_id),
                          "version", (json_int_t)ev->version, "position",
                          "partition", (int)ev->position.partition, "offset",
                          (json_int_t)ev->position.offset, "message",
                          es__json_str(msg));
        else
            p = json_pack("{s:s,s:o,s:n,s:n,s:{s:i,s:o},s:o}", "kind", kind,
                          "aggregate_type", es__json_str(c->type), "stream_id",
                          "version",
                          "position", "partition", (int)c->partition, "offset",
                          c->at_offset >= 0 ? json_integer(c->at_offset)
                                            : json_null(),
                          "message", es__json_str(msg));
        if (p == NULL || json_array_append_new(c->problems, p) != 0)
            c->failed = 1;
    } else if (ev) {
        printf("  %s/%s v%lld p%d@%lld: %s\n", c->type, ev->stream_id,
               (long long)ev->version, (int)ev->position.partition,
               (long long)ev->position.offset, msg);
    } else if (c->at_offset >= 0) {
        printf("  %s p%d@%lld: %s\n", c->type, (int)c->partition,
               (long long)c->at_offset, msg);
    } else {
        printf("  %s partition %d: %s\n", c->type, (int)c->partition, msg);
    }
}

static int remember_dup(verify_ctx *c, const char *id)
{
    for (size_t i = 0; i < c->ndups; i++)
        if (strcmp(c->dups[i].id, id) == 0)
            return 0;
    if (c->ndups == c->capdups) {
        size_t cap = c->capdups ? c->capdups * 2 : 16;
        if (es__grow((void **)&c->dups, c->ndups * sizeof *c->dups,
                     cap * sizeof *c->dups) != 0)
            return ES_ENOMEM;
        c->capdups = cap;
    }
    memset(&c->dups[c->ndups], 0, sizeof *c->dups);
    if ((c->dups[c->ndups].id = es__strdup(id)) == NULL)
        return ES_ENOMEM;
    c->ndups++;
    return 0;
}

static int check_event(const es_event *ev, void *user_data)
{
    verify_ctx *c = user_data;
    stream_entry *e;
    int added, rc;
    int64_t last;

    c->ts.events++;
    if ((e = stream_map_get(&c->streams_map, ev->stream_id, &added)) == NULL)
        goto oom;
    last = e->last_version;
    if (added) {
        if (ev->version != 1)
            problem(c, "bad_start", ev, "the stream starts at version %lld "
                    "(expected 1)", (long long)ev->version);
    } else if (ev->version == last) {
        problem(c, "duplicate_version", ev, "version %lld appears twice (also "
                "at p%d@%lld)", (long long)last,
                (int)e->last_position.partition,
                (long long)e->last_position.offset);
    } else if (ev->version < last) {
        problem(c, "out_of_order", ev, "version %lld comes after version %lld "
                "(at p%d@%lld)", (long long)ev->version, (long long)last,
                (int)e->last_position.partition,
                (long long)e->last_position.offset);
    } else if (ev->version > last + 1) {
        if (ev->version == last + 2)
            problem(c, "version_gap", ev, "version %lld is missing",
                    (long long)(last + 1));
        else
            problem(c, "version_gap", ev, "versions %lld..%lld are missing",
                    (long long)(last + 1), (long long)(ev->version - 1));
    }
    if (ev->version > last) {
        e->last_version = ev->version;
        e->last_position = ev->position;
    }
    if (ev->id) {
        if ((rc = id_set_add(&c->ids, id_hash(ev->id))) < 0)
            goto oom;
        if (rc == 1 && remember_dup(c, ev->id) != 0)
            goto oom;
    }
    return c->failed;
oom:
    c->failed = 1;
    return 1;
}

/* Second pass: where each repeated id is. */
static int locate_dup(const es_event *ev, void *user_data)
{
    verify_ctx *c = user_data;
    if (ev->id == NULL)
        return 0;
    for (size_t i = 0; i < c->ndups; i++) {
        dup_id *d = &c->dups[i];
        if (strcmp(d->id, ev->id) != 0)
            continue;
        d->count++;
        es__buf_printf(&d->where, "%s%s/%s v%lld p%d@%lld",
                       d->where.len ? ", " : "", c->type, ev->stream_id,
                       (long long)ev->version, (int)ev->position.partition,
                       (long long)ev->position.offset);
        if (d->where.oom)
            c->failed = 1;
        break;
    }
    return c->failed;
}

/* Lists a rejected event. */
static void rejected(verify_ctx *c, const es_event *ev, es_verdict verdict,
                     const char *why)
{
    c->rejected++;
    if (c->json) {
        json_t *r = json_pack("{s:s,s:o,s:o?,s:I,s:o?,s:{s:i,s:I},s:o}",
                              "verdict", es_verdict_name(verdict),
                              "aggregate_type", es__json_str(c->type),
                              "stream_id", es__json_str(ev->stream_id),
                              "version", (json_int_t)ev->version,
                              "id", es__json_str(ev->id),
                              "position", "partition",
                              (int)ev->position.partition, "offset",
                              (json_int_t)ev->position.offset, "why", es__json_str(why));
        if (r == NULL || json_array_append_new(c->rejected_list, r) != 0)
            c->failed = 1;
    } else {
        printf("  rejected (%s): %s/%s v%lld p%d@%lld: %s\n",
               es_verdict_name(verdict), c->type,
               ev->stream_id ? ev->stream_id : "?", (long long)ev->version,
               (int)ev->position.partition, (long long)ev->position.offset, why);
    }
}

/* Every record of a scan, with the acceptance rule's verdict: accepted
 * events are checked (or, in the second pass, searched for repeated ids),
 * the others listed. */
static int on_record(const es_event *ev, es_verdict verdict, const char *why,
                     void *user_data)
{
    verify_ctx *c = user_data;
    c->last_offset = ev->position.offset;
    /* Commits still open at the head come again with the next read. */
    if (ev->position.offset <= c->seen_offset)
        return 0;
    c->seen_offset = ev->position.offset;
    /* A producer with another partitioner put it there (rejected or not:
     * a reader of the right partition never sees it). */
    if (!c->second_pass && verdict != ES_VERDICT_MALFORMED && ev->stream_id) {
        int32_t want = es_partition_for(ev->stream_id, strlen(ev->stream_id),
                                        c->nparts);
        if (want != c->partition)
            problem(c, "partition_mismatch", ev, "in partition %d, but its "
                    "stream id hashes to partition %d of %d",
                    (int)c->partition, (int)want, (int)c->nparts);
    }
    if (verdict == ES_VERDICT_ACCEPTED)
        return c->second_pass ? locate_dup(ev, c) : check_event(ev, c);
    if (c->second_pass)
        return 0;
    if (verdict == ES_VERDICT_MALFORMED) {
        /* Not an esfold event: only its position is sure. */
        c->at_offset = ev->position.offset;
        problem(c, "malformed", NULL, "malformed record: %s", why);
        c->at_offset = -1;
    } else {
        rejected(c, ev, verdict, why);
    }
    return c->failed;
}

/*
 * Reads partition c->partition of c->type from its start to its head with
 * es_log_scan_partition. A malformed record is reported and stepped over, so that one bad row
 * does not hide the rest of the partition; another read error ends the
 * partition. Returns ES__CLI_OK, or ES__CLI_FAIL when out of memory.
 */
static int scan_partition(verify_ctx *c)
{
    char last_msg[ES__ERRMSG_MAX] = "";
    int64_t head, from = 0, next;
    int rc;

    c->at_offset = -1;
    c->seen_offset = -1;
    if ((rc = es_log_head(c->log, &head, c->type, c->partition)) != 0) {
        if (!c->second_pass)
            problem(c, "read_error", NULL, "%s", es_errmsg(c->log));
        return ES__CLI_OK;
    }
    while (from < head) {
        c->last_offset = -1;
        next = from;
        rc = es_log_scan_partition(c->log, &next, c->type, c->partition, from,
                                   BATCH, on_record, c);
        if (c->failed)
            return es__cli_fail(c->cli, "out of memory");
        if (rc == 0) {
            if (next <= from)
                break; /* nothing more to read */
            from = next;
            continue;
        }
        /* Where the read failed: the first offset not delivered (the
         * record itself with dense offsets, as in SQLite; it may be a later
         * one on Kafka, where offsets have gaps). */
        c->at_offset = next > c->last_offset + 1 ? next : c->last_offset + 1;
        if (c->at_offset < from)
            c->at_offset = from;
        if (rc != ES_ECORRUPT) {
            if (!c->second_pass)
                problem(c, "read_error", NULL, "%s", es_errmsg(c->log));
            c->at_offset = -1;
            return ES__CLI_OK;
        }
        /* The bad record is the first one after what was delivered; with
         * sparse offsets a step of one may land before it again, and the
         * same message is then not repeated. */
        if (!c->second_pass && strcmp(last_msg, es_errmsg(c->log)) != 0) {
            snprintf(last_msg, sizeof last_msg, "%s", es_errmsg(c->log));
            problem(c, "malformed", NULL, "malformed record: %s", last_msg);
        }
        from = c->at_offset + 1;
        c->at_offset = -1;
    }
    return ES__CLI_OK;
}

/* Every partition of type; ES__CLI_OK or ES__CLI_FAIL. */
static int scan_type(verify_ctx *c, const char *type)
{
    int32_t n;
    int st;
    c->type = type;
    c->partition = 0;
    c->at_offset = -1;
    if (es_log_partition_count(c->log, &n, type) != 0) {
        if (!c->second_pass)
            problem(c, "read_error", NULL, "%s", es_errmsg(c->log));
        return ES__CLI_OK;
    }
    c->nparts = n;
    for (int32_t p = 0; p < n; p++) {
        c->partition = p;
        if ((st = scan_partition(c)) != ES__CLI_OK)
            return st;
    }
    return ES__CLI_OK;
}

/* A problem es_log_check found in the storage itself. */
static int on_storage_problem(const char *kind, const char *message,
                              void *user_data)
{
    verify_ctx *c = user_data;
    c->nproblems++;
    if (c->json) {
        json_t *p = json_pack("{s:s,s:n,s:n,s:n,s:n,s:o}", "kind", kind,
                              "aggregate_type", "stream_id", "version",
                              "position", "message", es__json_str(message));
        if (p == NULL || json_array_append_new(c->problems, p) != 0)
            c->failed = 1;
    } else {
        printf("  %s: %s\n", kind, message);
    }
    return c->failed;
}

/* ---- Folding ---------------------------------------------------------------- */

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids in m (borrowed from it), in no order, into an array to
 * es__free; NULL when out of memory. */
static char **stream_ids(const stream_map *m, size_t *n)
{
    char **ids = es__calloc(m->len + 1, sizeof *ids);
    const char *key;
    *n = 0;
    for (size_t i = 0; ids && es__map_next(m, &i, &key, NULL);)
        ids[(*n)++] = (char *)key;
    return ids;
}

static int count_folded(const es_event *ev, const void *state, void *user_data)
{
    (void)state;
    *(int64_t *)user_data = ev->version;
    return 0;
}

/*
 * Folds every stream of the type being checked (the ids of c->streams_map,
 * in byte order) with the program's type, as es_repo_replay folds them;
 * each that fails is a fold_failed problem at the event it failed on.
 * ES__CLI_OK, or ES__CLI_FAIL (out of memory, no repository).
 */
static int fold_streams(verify_ctx *c, es_repo *repo,
                        const es_aggregate_type *type)
{
    size_t n = 0;
    char **ids = stream_ids(&c->streams_map, &n);
    if (ids == NULL)
        return es__cli_fail(c->cli, "out of memory");
    qsort(ids, n, sizeof *ids, by_string);
    for (size_t i = 0; i < n; i++) {
        int64_t last = 0;
        int rc = es_repo_replay(repo, NULL, type, ids[i], ES_RANGE_ALL,
                                count_folded, &last);
        c->ts.folded++;
        if (rc == 0)
            continue;
        c->nproblems++;
        c->ts.problems++;
        if (c->json) {
            json_t *p = json_pack("{s:s,s:o,s:o,s:I,s:n,s:o}", "kind",
                                  "fold_failed", "aggregate_type",
                                  es__json_str(c->type), "stream_id",
                                  es__json_str(ids[i]), "version",
                                  (json_int_t)(last + 1), "position",
                                  "message", es__json_str(es_errmsg(repo)));
            if (p == NULL || json_array_append_new(c->problems, p) != 0) {
                es__free(ids);
                return es__cli_fail(c->cli, "out of memory");
            }
        } else {
            printf("  %s/%s v%lld: does not load: %s\n", c->type, ids[i],
                   (long long)(last + 1), es_errmsg(repo));
        }
    }
    es__free(ids);
    return ES__CLI_OK;
}

/* ---- Type names --------------------------------------------------------- */

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static int add_name(const char *name, void *user_data)
{
    names *l = user_data;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        if (es__grow((void **)&l->v, l->n * sizeof *l->v, cap * sizeof *l->v))
            return 1;
        l->cap = cap;
    }
    if ((l->v[l->n] = es__strdup(name)) == NULL)
        return 1;
    l->n++;
    return 0;
}

static void names_free(names *l)
{
    for (size_t i = 0; i < l->n; i++)
        es__free(l->v[i]);
    es__free(l->v);
}

static int has_name(const names *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], name) == 0)
            return 1;
    return 0;
}

static const char *plural(int64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

static int verify_run(es__cli *cli, int argc, char **argv)
{
    const char *v[ES__CLI_MAX_OPTS];
    char *args[ES__CLI_MAX_ARGS];
    verify_ctx c;
    names all = {NULL, 0, 0}, todo = {NULL, 0, 0};
    json_t *doc = NULL;
    int nargs, st, rc;
    size_t i;

    if ((st = es__cli_parse(cli, argc, argv, v, args, &nargs)) >= 0)
        return st;
    memset(&c, 0, sizeof c);
    c.folded = -1;
    c.cli = cli;
    c.json = v[OPT_JSON] != NULL;
    if ((st = es__cli_log(cli, 1, &c.log)) != ES__CLI_OK)
        return st;
    if (c.json && ((c.problems = json_array()) == NULL ||
                   (c.by_type = json_array()) == NULL ||
                   (c.rejected_list = json_array()) == NULL)) {
        st = es__cli_fail(cli, "out of memory");
        goto done;
    }
    /* The file itself first: a damaged index or a table that disagrees
     * with the events breaks reads and appends that the scan below does not
     * make. */
    if ((rc = es_log_check(c.log, on_storage_problem, &c)) != 0 || c.failed) {
        if (c.failed) {
            st = es__cli_fail(cli, "out of memory");
            goto done;
        }
        on_storage_problem("read_error", es_errmsg(c.log), &c);
    }
    if ((rc = es_log_types(c.log, add_name, &all)) != 0) {
        st = es__cli_fail(cli, "%s", rc == ES_EUSER ? "out of memory"
                                                    : es_errmsg(c.log));
        goto done;
    }
    /* The types asked for (all of them by default); one that has no events
     * is a problem, so that a typo does not pass as "OK". */
    for (i = 0; i < (size_t)nargs; i++) {
        if (has_name(&todo, args[i]))
            continue;
        if (!has_name(&all, args[i])) {
            c.type = args[i];
            c.partition = 0;
            c.nproblems++;
            if (c.json) {
                json_t *p = json_pack("{s:s,s:o,s:n,s:n,s:n,s:s}", "kind",
                                      "no_such_type", "aggregate_type",
                                      es__json_str(args[i]),
                                      "stream_id", "version", "position",
                                      "message", "no events of this aggregate "
                                      "type in the log");
                if (p == NULL || json_array_append_new(c.problems, p) != 0) {
                    st = es__cli_fail(cli, "out of memory");
                    goto done;
                }
            } else {
                printf("  %s: no events of this aggregate type in the log\n",
                       args[i]);
            }
            continue;
        }
        if (add_name(args[i], &todo) != 0) {
            st = es__cli_fail(cli, "out of memory");
            goto done;
        }
    }
    if (nargs == 0) {
        todo = all;
        memset(&all, 0, sizeof all);
    }

    for (i = 0; i < todo.n; i++) {
        const es_aggregate_type *type = v[OPT_STRUCTURE] ? NULL
                                        : es__cli_find_type(cli, todo.v[i]);
        memset(&c.ts, 0, sizeof c.ts);
        c.ts.folded = -1;
        if ((st = scan_type(&c, todo.v[i])) != ES__CLI_OK)
            goto done;
        if (type) {
            es_repo *repo;
            c.ts.folded = 0;
            if ((st = es__cli_repo(cli, 1, &repo)) != ES__CLI_OK ||
                (st = fold_streams(&c, repo, type)) != ES__CLI_OK)
                goto done;
            c.folded = (c.folded < 0 ? 0 : c.folded) + c.ts.folded;
        }

        c.ts.partitions = c.nparts;
        c.ts.streams = (int64_t)c.streams_map.len;
        stream_map_free(&c.streams_map);
        c.types++;
        c.partitions += c.ts.partitions;
        c.streams += c.ts.streams;
        c.events += c.ts.events;
        if (c.json) {
            json_t *t = json_pack("{s:o,s:I,s:I,s:I,s:o,s:I}", "aggregate_type",
                                  es__json_str(todo.v[i]), "partition_count",
                                  (json_int_t)c.ts.partitions, "stream_count",
                                  (json_int_t)c.ts.streams, "event_count",
                                  (json_int_t)c.ts.events, "folded_count",
                                  c.ts.folded < 0 ? json_null()
                                                  : json_integer(c.ts.folded),
                                  "problem_count", (json_int_t)c.ts.problems);
            if (t == NULL || json_array_append_new(c.by_type, t) != 0) {
                st = es__cli_fail(cli, "out of memory");
                goto done;
            }
        } else {
            printf("%s: %lld %s, %lld %s, %lld %s", todo.v[i],
                   (long long)c.ts.partitions,
                   plural(c.ts.partitions, "partition", "partitions"),
                   (long long)c.ts.streams,
                   plural(c.ts.streams, "stream", "streams"),
                   (long long)c.ts.events, plural(c.ts.events, "event", "events"));
            if (c.ts.folded >= 0)
                printf(", %lld folded", (long long)c.ts.folded);
            if (c.ts.problems)
                printf(", %lld %s", (long long)c.ts.problems,
                       plural(c.ts.problems, "problem", "problems"));
            printf("\n");
        }
    }

    /* Event ids whose hash repeated: find every place they are. */
    if (c.ndups > 0) {
        c.second_pass = 1;
        for (i = 0; i < todo.n; i++)
            if ((st = scan_type(&c, todo.v[i])) != ES__CLI_OK)
                goto done;
        c.second_pass = 0;
        c.type = "";
        for (i = 0; i < c.ndups; i++) {
            dup_id *d = &c.dups[i];
            if (d->count < 2)
                continue; /* two ids with one hash: not a problem */
            c.nproblems++;
            if (c.json) {
                char *m = es__sprintf("the event id appears at %s",
                                      d->where.data ? d->where.data : "");
                json_t *p = json_pack("{s:s,s:o,s:n,s:n,s:n,s:n,s:o}", "kind",
                                      "duplicate_id", "id", es__json_str(d->id),
                                      "aggregate_type", "stream_id", "version",
                                      "position", "message", es__json_str(m));
                es__free(m);
                if (p == NULL || json_array_append_new(c.problems, p) != 0) {
                    st = es__cli_fail(cli, "out of memory");
                    goto done;
                }
            } else {
                printf("  duplicate event id %s: %lld times: %s\n", d->id,
                       (long long)d->count, d->where.data);
            }
        }
    }


    if (c.json) {
        json_t *body;
        body = json_pack("{s:b,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:O,s:O,s:O}",
                        "ok", c.nproblems == 0,
                        "type_count", (json_int_t)c.types,
                        "partition_count", (json_int_t)c.partitions,
                        "stream_count", (json_int_t)c.streams,
                        "event_count", (json_int_t)c.events,
                        "folded_count", c.folded < 0 ? json_null()
                                                     : json_integer(c.folded),
                        "problem_count", (json_int_t)c.nproblems,
                        "rejected_count", (json_int_t)c.rejected,
                        "problems", c.problems, "by_type", c.by_type,
                        "rejected", c.rejected_list);
        if (body && (doc = es__cli_json_doc()) != NULL)
            json_object_update(doc, body);
        json_decref(body);
        if (doc == NULL) {
            st = es__cli_fail(cli, "out of memory");
            goto done;
        }
        if ((st = es__cli_print_json(cli, doc)) != ES__CLI_OK)
            goto done;
    } else {
        printf("verify: ");
        if (c.nproblems)
            printf("FAILED: %lld %s; ", (long long)c.nproblems,
                   plural(c.nproblems, "problem", "problems"));
        else
            printf("OK: ");
        printf("%lld %s, %lld %s, %lld %s, %lld %s", (long long)c.types,
               plural(c.types, "type", "types"), (long long)c.partitions,
               plural(c.partitions, "partition", "partitions"),
               (long long)c.streams, plural(c.streams, "stream", "streams"),
               (long long)c.events, plural(c.events, "event", "events"));
        if (c.rejected)
            printf(" (and %lld rejected %s, skipped by every reader)",
                   (long long)c.rejected, plural(c.rejected, "event", "events"));
        printf("\n");
    }
    st = c.nproblems ? ES__CLI_FAIL : ES__CLI_OK;
done:
    json_decref(doc);
    json_decref(c.problems);
    json_decref(c.by_type);
    json_decref(c.rejected_list);
    stream_map_free(&c.streams_map);
    es__free(c.ids.slots);
    for (i = 0; i < c.ndups; i++) {
        es__free(c.dups[i].id);
        es__buf_free(&c.dups[i].where);
    }
    es__free(c.dups);
    names_free(&all);
    names_free(&todo);
    return st;
}

const es__cli_command es__cli_verify = {
    .name = "verify",
    .summary = "check every stream of the log for gaps, duplicates and damage",
    .synopsis = "[TYPE...] [--structure] [--json]",
    .help =
        "Reads every partition of every aggregate type (or of the TYPEs given)\n"
        "and reports, with the stream, version and position (pPARTITION@OFFSET)\n"
        "of each:\n"
        "  - streams that do not start at version 1 (bad_start)\n"
        "  - missing versions (version_gap), versions seen twice\n"
        "    (duplicate_version) or going backwards (out_of_order)\n"
        "  - event ids that appear more than once (duplicate_id)\n"
        "  - records that cannot be decoded (malformed); the rest of the\n"
        "    partition is still checked\n"
        "  - events in a partition other than the one their stream id hashes\n"
        "    to (partition_mismatch)\n"
        "  - other read errors (read_error), TYPEs without events (no_such_type)\n"
        "  - on SQLite, damage to the file itself found by SQLite's integrity\n"
        "    check (integrity), and es_streams or es_partitions rows that\n"
        "    disagree with the events (streams, partitions)\n"
        "  - for each TYPE compiled into this program, streams that do not\n"
        "    load: every stream is folded as a load folds it, upcasters\n"
        "    applied (fold_failed, at the version the fold stopped on);\n"
        "    --structure skips this and checks the structure alone\n"
        "Events the acceptance rule rejects (on Kafka: a racing writer that\n"
        "lost, a zombie, a producer retry, a torn commit) are listed with their\n"
        "verdict (stale, gap, interleaved, incomplete); every reader skips\n"
        "them, so they are not problems.\n"
        "\n"
        "Exits 0 and prints \"verify: OK: ...\" when there is no problem, 1\n"
        "otherwise.\n",
    .opts = verify_opts,
    .min_args = 0,
    .max_args = -1,
    .run = verify_run,
};
