/*
 * bench/bench_snapshot.c - recovery time of one aggregate on SQLite, with
 * and without snapshots, as its history grows (docs/snapshots.md).
 *
 * For each history length H (--events N: the largest, default 1,000,000;
 * then N/10 and N/100), one bank account stream of H events (1
 * AccountOpened, then Deposited) is written in commits of 1,000 events
 * straight through es_log_append, and a snapshot is saved after every
 * commit up to version H - 1,000, into the log's own file: snapshots every
 * 1,000 events, and the load sees the worst case of that policy, 1,000
 * events after the newest snapshot.
 *
 *   esfold  es_repo_load with the snapshot store attached: the newest
 *           snapshot, then the 1,000-event tail
 *   limit   es_repo_load without snapshots: the full replay
 *
 * ratio = full / snapshot (the table's rates are history events per
 * second of recovery, so the ratio of rates is the ratio of times). The
 * with-snapshot time must stay flat as H grows: it is printed per size at
 * the end with its growth from the smallest size.
 *
 * usage: bench_snapshot [--events N] [--reps N] [--json]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "esfold/esfold.h"
#include "esfold/snapshot.h"
#include "samples/bank/account.h"

#include "benchutil.h"

#define DEFAULT_EVENTS 1000000
#define DEFAULT_REPS 3
#define EVERY 1000          /* events per commit and between snapshots */
#define MIN_EVENTS (100 * EVERY)
#define PARTITIONS 4
#define STREAM "acct-1"
#define SIZES 3

static int64_t amount_of(int64_t version)
{
    return 100 + (version * 7919) % 10000;
}

/* Folds the commit just written into agg and, up to version events - EVERY,
 * saves a snapshot of it. */
static int after_commit(es_snapshot_store *store, es_aggregate *agg,
                        es_event *evs, size_t n, const es_append_result *res,
                        int64_t horizon, long long events, long long *snapshots)
{
    es_snapshot *snap = NULL;
    es_error err;
    int rc;

    for (size_t i = 0; i < n; i++) {
        evs[i].aggregate_type = bank_account_type.name;
        evs[i].stream_id = STREAM;
        evs[i].version = res->first_version + (int64_t)i;
        evs[i].position = i + 1 == n ? res->last : res->first;
        if (es_aggregate_apply(agg, &evs[i], &err) != 0) {
            fprintf(stderr, "bench_snapshot: folding: %s\n", err.text);
            return 1;
        }
    }
    if (res->version > events - EVERY)
        return 0;
    if (es_snapshot_make(&snap, agg, evs[n - 1].id, horizon, &err) != 0) {
        fprintf(stderr, "bench_snapshot: snapshot: %s\n", err.text);
        return 1;
    }
    rc = es_snapshot_save(store, snap);
    es_snapshot_free(snap);
    if (rc != 0) {
        fprintf(stderr, "bench_snapshot: %s\n", es_errmsg(store));
        return 1;
    }
    ++*snapshots;
    return 0;
}

/*
 * Writes the stream: commits of EVERY events, each folded into an aggregate
 * as it is written (ids and times are given here, so the state needs no
 * read back: what a processor that keeps its streams hot does), and a
 * snapshot saved after each commit up to version events - EVERY.
 */
static int build(es_log *log, es_snapshot_store *store, long long events,
                 int64_t *balance, long long *snapshots)
{
    es_event *evs = calloc(EVERY, sizeof *evs);
    char (*ids)[ES_UUID_BUFSZ] = calloc(EVERY, sizeof *ids);
    es_aggregate *agg = NULL;
    bu_progress prog;
    int64_t version = 0, horizon = INT64_MIN;
    int rc = 1;

    memset(&prog, 0, sizeof prog);
    *balance = 0;
    *snapshots = 0;
    if (evs == NULL || ids == NULL ||
        es_aggregate_new(&agg, &bank_account_type, STREAM) != 0)
        goto done;
    bu_progress_begin(&prog, (uint64_t)events, "writing %lld events", events);
    while (version < events) {
        es_append_result res;
        int64_t now = es_time_now_us();
        size_t n = 0, i;
        int erc;

        if (bu_interrupted())
            goto done;
        for (; n < EVERY && version + (int64_t)n < events; n++) {
            int64_t v = version + (int64_t)n + 1;
            memset(&evs[n], 0, sizeof evs[n]);
            es_uuid_v7(ids[n]);
            evs[n].id = ids[n];
            evs[n].occurred_us = now;
            if (v == 1) {
                evs[n].type = "AccountOpened";
                evs[n].payload = json_pack("{s:s, s:s}", "owner", "Ada",
                                           "currency", "EUR");
            } else {
                evs[n].type = "Deposited";
                evs[n].payload = json_pack("{s:I}", "amount",
                                           (json_int_t)amount_of(v));
                *balance += amount_of(v);
            }
        }
        if (now > horizon)
            horizon = now;
        erc = es_log_append(log, &res, bank_account_type.name, STREAM,
                            version == 0 ? ES_EXPECT_NO_STREAM : version, evs, n);
        if (erc != 0)
            fprintf(stderr, "bench_snapshot: writing: %s\n", es_errmsg(log));
        else
            erc = after_commit(store, agg, evs, n, &res, horizon, events,
                               snapshots);
        for (i = 0; i < n; i++)
            json_decref(evs[i].payload);
        if (erc != 0)
            goto done;
        version = res.version;
        bu_progress_update(&prog, (uint64_t)version);
    }
    rc = 0;
done:
    bu_progress_end(&prog);
    es_aggregate_free(agg);
    free(evs);
    free(ids);
    return rc;
}

typedef struct load_ctx {
    es_repo *repo;
    long long events;
    int64_t balance;
    int64_t tail;   /* events folded after the snapshot; -1: a full replay */
    int64_t folded; /* what the last run folded */
} load_ctx;

static int load_run(void *vctx, double *seconds)
{
    load_ctx *c = vctx;
    es_aggregate *agg = NULL;
    const bank_account *a;
    double t0 = bu_now();
    int rc = es_repo_load(c->repo, &agg, &bank_account_type, STREAM,
                          ES_RANGE_ALL);

    *seconds = bu_now() - t0;
    if (rc != 0) {
        fprintf(stderr, "bench_snapshot: load: %s\n", es_errmsg(c->repo));
        return 1;
    }
    a = es_aggregate_state(agg);
    c->folded = es_aggregate_folded(agg);
    if (es_aggregate_version(agg) != c->events || a->balance != c->balance ||
        a->transactions != c->events - 1 ||
        c->folded != (c->tail < 0 ? c->events : c->tail) ||
        *es_repo_warnings(c->repo) != '\0') {
        fprintf(stderr, "bench_snapshot: load: version %lld, balance %lld, "
                "folded %lld (expected %lld, %lld, %lld)%s%s\n",
                (long long)es_aggregate_version(agg), (long long)a->balance,
                (long long)c->folded, c->events, (long long)c->balance,
                (long long)(c->tail < 0 ? c->events : c->tail),
                *es_repo_warnings(c->repo) ? "; warnings: " : "",
                es_repo_warnings(c->repo));
        rc = 1;
    }
    es_aggregate_free(agg);
    return rc;
}

typedef struct size_result {
    long long events, snapshots;
    double full_s, snap_s;
    int64_t tail;
} size_result;

static int measure_size(bu_report *rep, const bu_options *o, const char *dir,
                        long long events, size_result *out)
{
    char path[4200], uri[4300], name[64], key[48], what[48], n[32];
    es_log *log = NULL;
    es_snapshot_store *store = NULL;
    es_repo *with = NULL, *without = NULL;
    load_ctx snap_ctx, full_ctx;
    bu_samples es, lim;
    bu_row *row;
    int64_t balance;
    int rc = 1;

    snprintf(path, sizeof path, "%s/history-%lld.db", dir, events);
    snprintf(uri, sizeof uri, "sqlite:%s?partitions=%d", path, PARTITIONS);
    if (es_log_open(&log, uri) != 0) {
        fprintf(stderr, "bench_snapshot: %s\n", es_errmsg(log));
        goto done;
    }
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    if (es_snapshot_store_open(&store, uri) != 0) {
        fprintf(stderr, "bench_snapshot: %s\n", es_errmsg(store));
        goto done;
    }
    if (es_repo_new(&with, log, NULL) != 0 || es_repo_new(&without, log, NULL) != 0 ||
        es_repo_add_snapshots(with, &bank_account_type, store, NULL) != 0) {
        fprintf(stderr, "bench_snapshot: making the repositories failed\n");
        goto done;
    }
    if (build(log, store, events, &balance, &out->snapshots) != 0)
        goto done;

    memset(&snap_ctx, 0, sizeof snap_ctx);
    snap_ctx.repo = with;
    snap_ctx.events = full_ctx.events = events;
    snap_ctx.balance = balance;
    snap_ctx.tail = EVERY;
    full_ctx = snap_ctx;
    full_ctx.repo = without;
    full_ctx.tail = -1;
    snprintf(what, sizeof what, "recover %s", bu_fmt_count(n, sizeof n, (double)events));
    if (bu_measure_pair(what, o->reps, load_run, &snap_ctx, load_run, &full_ctx,
                        &es, &lim) != 0)
        goto done;
    snprintf(key, sizeof key, "recover_%lld", events);
    snprintf(name, sizeof name, "recover 1 stream of %s events",
             bu_fmt_count(n, sizeof n, (double)events));
    row = bu_report_row(rep, key, name, "full replay, no snapshots", &es, &lim,
                        "history_events_per_s", "ev/s", (double)events);
    if (row == NULL)
        goto done;
    out->events = events;
    out->snap_s = row->esfold_s;
    out->full_s = row->limit_s;
    out->tail = snap_ctx.folded;
    rc = 0;
done:
    es_repo_free(with);
    es_repo_free(without);
    es_snapshot_store_close(store);
    es_log_close(log);
    bu_sqlite_files_remove(path);
    return rc;
}

int main(int argc, char **argv)
{
    bu_options o = {DEFAULT_EVENTS, DEFAULT_REPS, 0};
    char dir[4096] = "", backend[32], n[32], key[48], label[64];
    size_result res[SIZES];
    bu_report rep;
    int rc, i;

    memset(res, 0, sizeof res);
    if ((rc = bu_options_parse(&o, argc, argv, MIN_EVENTS,
                               "  --events N is the longest history; N/10 and "
                               "N/100 are measured too\n")) != 0)
        return rc == 1 ? 0 : 2;
    bu_signals_install();
    rc = 1;
    if (bu_tmpdir_make(dir, sizeof dir, "snapshot") != 0)
        goto done;
    snprintf(backend, sizeof backend, "SQLite %s", sqlite3_libversion());
    bu_report_init(&rep, "snapshot", backend, dir);
    bu_report_param(&rep, "events", o.events);
    bu_report_param(&rep, "reps", o.reps);
    bu_report_param(&rep, "snapshot_every", EVERY);

    for (i = 0; i < SIZES; i++) {
        long long events = o.events / (i == 0 ? 100 : i == 1 ? 10 : 1);
        if (measure_size(&rep, &o, dir, events, &res[i]) != 0)
            goto done;
    }
    for (i = 0; i < SIZES; i++) {
        snprintf(key, sizeof key, "snapshot_ms_%lld", res[i].events);
        snprintf(label, sizeof label, "recovery with snapshots, %s events",
                 bu_fmt_count(n, sizeof n, (double)res[i].events));
        bu_report_fact(&rep, key, label, res[i].snap_s * 1000.0, "ms", 2);
    }
    bu_report_fact(&rep, "snapshot_growth",
                   "with-snapshot time, longest / shortest history",
                   res[SIZES - 1].snap_s / res[0].snap_s, "x", 2);
    bu_report_fact(&rep, "history_growth", "history, longest / shortest",
                   (double)res[SIZES - 1].events / (double)res[0].events, "x", 0);

    if (o.json) {
        if (bu_report_print_json(&rep) != 0)
            goto done;
    } else {
        bu_report_print(&rep);
        printf("\n%12s  %12s  %14s  %13s  %11s  %9s\n", "history", "full replay",
               "with snapshot", "full/snapshot", "tail folded", "snapshots");
        for (i = 0; i < SIZES; i++) {
            char h[32], t[32], s[32];
            printf("%12s  %9.2f ms  %11.2f ms  %13.1f  %11s  %9s\n",
                   bu_fmt_count(h, sizeof h, (double)res[i].events),
                   res[i].full_s * 1000.0, res[i].snap_s * 1000.0,
                   res[i].full_s / res[i].snap_s,
                   bu_fmt_count(t, sizeof t, (double)res[i].tail),
                   bu_fmt_count(s, sizeof s, (double)res[i].snapshots));
        }
        printf("history x%.0f: full replay x%.1f, with snapshots x%.2f (flat is "
               "x1)\n", (double)res[SIZES - 1].events / (double)res[0].events,
               res[SIZES - 1].full_s / res[0].full_s,
               res[SIZES - 1].snap_s / res[0].snap_s);
    }
    rc = 0;
done:
    if (rc != 0 && bu_interrupted())
        fprintf(stderr, "bench_snapshot: interrupted\n");
    bu_tmpdir_remove(dir);
    bu_reraise();
    return rc;
}
