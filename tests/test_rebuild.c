/*
 * tests/test_rebuild.c - rebuilds without downtime, resumed after a kill,
 * and as of a time, on SQLite and PostgreSQL targets, from the SQLite log
 * and from the Kafka log (with stale records of a zombie writer mixed in,
 * which every reader rejects).
 *
 * The handlers are NOT idempotent (balance = balance + amount, an INSERT
 * without ON CONFLICT for AccountOpened), so an event applied twice shows.
 * Expected rows come from a reference fold of the log with the bank
 * sample's aggregate (es_repo_load, as of a time for the bounded
 * rebuild); rows are read straight from the target with sqlite3 / libpq.
 *
 * The reader test runs a thread that reads the whole table in one
 * statement (one snapshot) as fast as it can during the rebuild and its
 * swap, while a live worker keeps running: every read must be exactly the
 * complete old rows or exactly the complete new rows.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "harness.h"
#include "kafka_harness.h"
#include "pg_harness.h"
#include "target_harness.h"
#include "esfold/projection.h"
#include "esfold/rebuild.h"
#include "esfold/status.h"
#include "samples/bank/account.h"

/* ---- The projection under test ------------------------------------------ */

static int block_after; /* >0: the handler call that blocks forever (a kill) */
static int calls;

static void maybe_block(void)
{
    if (block_after > 0 && ++calls >= block_after)
        for (;;)
            pause();
}

static int on_opened(es_sql *sql, const es_event *ev, void *ud)
{
    const char *owner = json_string_value(json_object_get(ev->payload, "owner"));
    es_sql_value p[] = {ES_SQL_STR(ev->stream_id), ES_SQL_STR(owner)};
    (void)ud;
    maybe_block();
    /* No ON CONFLICT: a second apply fails (and shows). */
    return es_sql_exec(sql, "INSERT INTO balances (id, owner, balance, txns)"
                       " VALUES ($1, $2, 0, 0) -- balances: the table", p, 2);
}

static int on_moved(es_sql *sql, const es_event *ev, int64_t sign)
{
    json_int_t amount = json_integer_value(json_object_get(ev->payload, "amount"));
    es_sql_value p[] = {ES_SQL_STR(ev->stream_id), ES_SQL_I64(sign * amount)};
    maybe_block();
    /* Qualified names and a literal: the rewrite must get them right. */
    return es_sql_exec(sql, "INSERT INTO balances (id, owner, balance, txns)"
                       " VALUES ($1, 'balances', $2, 1) ON CONFLICT (id) DO UPDATE"
                       " SET balance = balances.balance + excluded.balance,"
                       " txns = Balances.txns + 1", p, 2);
}

static int on_deposited(es_sql *sql, const es_event *ev, void *ud)
{
    (void)ud;
    return on_moved(sql, ev, 1);
}

static int on_withdrawn(es_sql *sql, const es_event *ev, void *ud)
{
    (void)ud;
    return on_moved(sql, ev, -1);
}

static const char *const follows[] = {"account", NULL};
static const char *const setup_sql[] = {
    "CREATE TABLE IF NOT EXISTS balances (id TEXT PRIMARY KEY,"
    " owner TEXT NOT NULL, balance BIGINT NOT NULL, txns BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS balances_by_owner ON balances (owner)",
    NULL};
static const es_projection_handler handlers[] = {
    {"AccountOpened", on_opened},
    {"Deposited", on_deposited},
    {"Withdrawn", on_withdrawn},
    {NULL, NULL}};

static const es_projection balances = {
    ES_PROJECTION_VERSION, "balances", 1, follows, setup_sql, handlers, NULL};

/* ---- Logs and the reference fold ---------------------------------------- */

#define T0 1772359200000000LL /* 2026-03-01T10:00:00Z */

static void append_at(es_log *log, const char *id, const char *type,
                      json_t *payload, int64_t occurred_us)
{
    es_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.payload = payload;
    ev.occurred_us = occurred_us;
    if (es_log_append(log, NULL, "account", id, ES_EXPECT_ANY, &ev, 1) != 0)
        fail_msg("append: %s", es_errmsg(log));
    json_decref(payload);
}

/* Accounts acct-0.. opened, then moves in random streams; event i occurred
 * at T0 - 300 s + i s (0: now). */
static void fill(es_log *log, int accounts, int from, int events, unsigned seed,
                 int timed)
{
    char id[32];
    srand(seed);
    for (int i = from; i < events; i++) {
        int64_t at = timed ? T0 - 300000000LL + (int64_t)i * 1000000 : 0;
        if (i < accounts) {
            snprintf(id, sizeof id, "acct-%03d", i);
            append_at(log, id, "AccountOpened",
                      json_pack("{s:s}", "owner", i % 2 ? "O'Brien" : "Ada"), at);
            continue;
        }
        snprintf(id, sizeof id, "acct-%03d", rand() % accounts);
        append_at(log, id, rand() % 3 ? "Deposited" : "Withdrawn",
                  json_pack("{s:I}", "amount", (json_int_t)(1 + rand() % 1000)),
                  at);
    }
}

/* Stale deposits of 1,000,000 (a zombie writer's) to acct-000.. on the
 * Kafka log: every reader rejects them, so one applied shows. */
static void zombies(es_log *log, const char *log_uri, int first, int n)
{
    es_test_kafka_foreign_records(log, log_uri, "account", "acct-%03d", first, n,
                                25, 2, "Deposited", "{\"amount\":1000000}");
}

static int by_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "id|owner|balance|txns\n" per account with events in range, by id. */
static char *reference_rows(es_log *log, int accounts, es_range range)
{
    es_repo *repo;
    char **rows = calloc((size_t)accounts, sizeof *rows), *out;
    size_t len = 0, n = 0;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    for (int a = 0; a < accounts; a++) {
        char id[32];
        es_aggregate *agg = NULL;
        const bank_account *acc;
        snprintf(id, sizeof id, "acct-%03d", a);
        if (es_repo_load(repo, &agg, &bank_account_type, id, range) != 0)
            fail_msg("load %s: %s", id, es_errmsg(repo));
        acc = es_aggregate_state(agg);
        if (es_aggregate_version(agg) > 0) {
            rows[n] = malloc(200);
            snprintf(rows[n], 200, "%s|%s|%lld|%lld\n", id, acc->owner,
                     (long long)acc->balance, (long long)acc->transactions);
            len += strlen(rows[n++]);
        }
        es_aggregate_free(agg);
    }
    es_repo_free(repo);
    qsort(rows, n, sizeof *rows, by_strcmp);
    out = calloc(1, len + 1);
    for (size_t i = 0; i < n; i++) {
        strcat(out, rows[i]);
        free(rows[i]);
    }
    free(rows);
    return out;
}

/* ---- Reading the target directly ------------------------------------------ */

typedef struct conn {
    int pg;
    sqlite3 *db;
    PGconn *pc;
} conn;

static conn conn_open(const char *path_or_url, int pg)
{
    conn c = {pg, NULL, NULL};
    if (pg) {
        c.pc = PQconnectdb(path_or_url);
        assert_int_equal(PQstatus(c.pc), CONNECTION_OK);
    } else {
        assert_int_equal(sqlite3_open_v2(path_or_url, &c.db, SQLITE_OPEN_READWRITE,
                                         NULL), SQLITE_OK);
        sqlite3_busy_timeout(c.db, 10000);
    }
    return c;
}

static void conn_close(conn *c)
{
    if (c->pc)
        PQfinish(c->pc);
    if (c->db)
        sqlite3_close(c->db);
}

static void text_add(char **out, size_t *len, size_t *cap, const char *s,
                     const char *sep)
{
    size_t n = strlen(s) + strlen(sep);
    if (*len + n + 1 > *cap) {
        while (*len + n + 1 > *cap)
            *cap *= 2;
        *out = realloc(*out, *cap);
    }
    *len += (size_t)sprintf(*out + *len, "%s%s", s, sep);
}

/* The rows of one query as "a|b|c\n" lines; NULL (and *why) on an error. */
static char *query_rows(conn *c, const char *sql, char *why, size_t whysize)
{
    size_t cap = 1 << 12, len = 0;
    char *out = calloc(1, cap);
    if (c->pg) {
        PGresult *r = PQexec(c->pc, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(why, whysize, "%s", PQerrorMessage(c->pc));
            PQclear(r);
            free(out);
            return NULL;
        }
        for (int i = 0; i < PQntuples(r); i++)
            for (int k = 0; k < PQnfields(r); k++)
                text_add(&out, &len, &cap, PQgetvalue(r, i, k),
                         k + 1 < PQnfields(r) ? "|" : "\n");
        PQclear(r);
    } else {
        sqlite3_stmt *st;
        int rc;
        if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
            snprintf(why, whysize, "%s", sqlite3_errmsg(c->db));
            free(out);
            return NULL;
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            for (int k = 0; k < sqlite3_column_count(st); k++) {
                const char *v = (const char *)sqlite3_column_text(st, k);
                text_add(&out, &len, &cap, v ? v : "",
                         k + 1 < sqlite3_column_count(st) ? "|" : "\n");
            }
        if (rc != SQLITE_DONE) {
            snprintf(why, whysize, "%s", sqlite3_errmsg(c->db));
            free(out);
            out = NULL;
        }
        sqlite3_finalize(st);
    }
    return out;
}

static char *rows_of(const char *path_or_url, int pg, const char *sql)
{
    conn c = conn_open(path_or_url, pg);
    char why[512];
    char *rows = query_rows(&c, sql, why, sizeof why);
    if (rows == NULL)
        fail_msg("%s: %s", sql, why);
    conn_close(&c);
    return rows;
}

static void exec_sql(const char *path_or_url, int pg, const char *sql)
{
    conn c = conn_open(path_or_url, pg);
    if (pg) {
        PGresult *r = PQexec(c.pc, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            fail_msg("%s: %s", sql, PQerrorMessage(c.pc));
        PQclear(r);
    } else {
        char *msg = NULL;
        if (sqlite3_exec(c.db, sql, NULL, NULL, &msg) != SQLITE_OK)
            fail_msg("%s: %s", sql, msg);
    }
    conn_close(&c);
}

static const char rows_sql[] =
    "SELECT id, owner, balance, txns FROM balances ORDER BY id";

/* The rows of sql equal want. */
static void assert_rows(const char *path_or_url, int pg, const char *sql,
                        const char *want)
{
    char *got = rows_of(path_or_url, pg, sql);
    if (strcmp(got, want) != 0)
        fail_msg("read model differs from the reference fold:\n--- got\n%s"
                 "--- want\n%s", got, want);
    free(got);
}


static es_projection_worker *open_worker(es_log *log, const char *target)
{
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w = NULL;
    int rc;
    o.batch_size = 50;
    if ((rc = es_projection_worker_open(&w, log, &balances, target, &o)) != 0)
        fail_msg("worker open: %s (%s)", es_errmsg(w), es_strerror(rc));
    return w;
}

static void run_caught_up(es_projection_worker *w)
{
    es_projection_step total;
    int rc = es_projection_worker_run(w, NULL, 1, &total, NULL, NULL);
    if (rc != 0)
        fail_msg("run: %s (%s)", es_errmsg(w), es_strerror(rc));
}

/* ---- A reader and a live worker throughout a rebuild --------------------- */

typedef struct reader {
    const char *path_or_url;
    int pg;
    const char *old_rows, *new_rows;
    volatile int stop;
    volatile long n_old, n_new, n_bad;
    char bad[4096];
} reader;

static void *reader_main(void *ud)
{
    reader *r = ud;
    conn c = conn_open(r->path_or_url, r->pg);
    char why[512];
    while (!r->stop) {
        char *got = query_rows(&c, rows_sql, why, sizeof why);
        if (got && strcmp(got, r->old_rows) == 0) {
            r->n_old++;
        } else if (got && strcmp(got, r->new_rows) == 0) {
            r->n_new++;
        } else {
            if (r->n_bad++ == 0)
                snprintf(r->bad, sizeof r->bad, "%s", got ? got : why);
        }
        free(got);
    }
    conn_close(&c);
    return NULL;
}

typedef struct live {
    es_projection_worker *w;
    volatile int stop;
    int rc;
} live;

static void *live_main(void *ud)
{
    live *l = ud;
    l->rc = es_projection_worker_run(l->w, &l->stop, 0, NULL, NULL, NULL);
    return NULL;
}

typedef struct compared {
    int calls;
    es_rebuild_table t;
    char table[64], shadow[64];
} compared;

static int on_compare(const es_rebuild_table *t, size_t n, void *ud)
{
    compared *c = ud;
    assert_int_equal(n, 1);
    c->calls++;
    c->t = t[0];
    snprintf(c->table, sizeof c->table, "%s", t[0].table);
    snprintf(c->shadow, sizeof c->shadow, "%s", t[0].shadow);
    return 0;
}

static void wait_for(volatile long *counter)
{
    while (*counter == 0)
        sched_yield();
}

/* On the Kafka log (kafka 1) with stale records before and after the
 * swap. */
static void rebuild_under_readers_from(const char *log_uri, int kafka,
                                       const char *target,
                                       const char *path_or_url, int pg)
{
    es_log *log, *live_log; /* a log handle per thread */
    es_rebuild_options o = ES_REBUILD_OPTIONS_INIT;
    es_rebuild_progress prog;
    es_error err;
    pthread_t rt, lt;
    reader rd;
    live lv;
    compared cmp;
    char *old_rows, *want, *got;
    int rc;

    assert_int_equal(es_log_open(&log, log_uri), 0);
    assert_int_equal(es_log_open(&live_log, log_uri), 0);
    fill(log, 25, 0, 600, 11, 0);
    if (kafka)
        zombies(log, log_uri, 0, 25);
    lv.w = open_worker(live_log, target);
    run_caught_up(lv.w);
    /* A bug in the old read model, which the rebuild repairs. */
    exec_sql(path_or_url, pg, "UPDATE balances SET balance = balance + 1000000"
             " WHERE id = 'acct-003'");
    old_rows = rows_of(path_or_url, pg, rows_sql);
    want = reference_rows(log, 25, ES_RANGE_ALL);
    assert_true(strcmp(old_rows, want) != 0);

    memset(&rd, 0, sizeof rd);
    rd.path_or_url = path_or_url;
    rd.pg = pg;
    rd.old_rows = old_rows;
    rd.new_rows = want;
    lv.stop = 0;
    assert_int_equal(pthread_create(&rt, NULL, reader_main, &rd), 0);
    assert_int_equal(pthread_create(&lt, NULL, live_main, &lv), 0);
    wait_for(&rd.n_old);

    memset(&cmp, 0, sizeof cmp);
    o.batch_size = 40;
    o.compare = on_compare;
    o.compare_data = &cmp;
    rc = es_projection_rebuild(&prog, log, &balances, target, &o, &err);
    if (rc != 0)
        fail_msg("rebuild: %s", err.text);
    wait_for(&rd.n_new);
    rd.stop = 1;
    pthread_join(rt, NULL);
    if (rd.n_bad)
        fail_msg("a reader saw %ld reads that were neither the old nor the new "
                 "table (of %ld old, %ld new); the first:\n%s", rd.n_bad,
                 rd.n_old, rd.n_new, rd.bad);
    print_message("reads: %ld of the old table, %ld of the new one\n", rd.n_old,
                  rd.n_new);

    /* The comparison before the swap. */
    assert_int_equal(cmp.calls, 1);
    assert_string_equal(cmp.table, "balances");
    assert_string_equal(cmp.shadow, "balances__v1_rebuild");
    assert_int_equal(cmp.t.old_rows, 25);
    assert_int_equal(cmp.t.new_rows, 25);
    assert_true(strcmp(cmp.t.old_sum, cmp.t.new_sum) != 0);
    assert_string_equal(prog.phase, "done");
    assert_int_equal(prog.start, 0);
    assert_true(prog.done > 0 && prog.done == prog.total);

    /* The live worker goes on, now on the new tables, from the rebuild's
     * checkpoints: appends after the swap are applied once. */
    fill(log, 25, 600, 660, 12, 0);
    if (kafka)
        zombies(log, log_uri, 25, 25);
    want = (free(want), reference_rows(log, 25, ES_RANGE_ALL));
    while (1) {
        got = rows_of(path_or_url, pg, rows_sql);
        if (strcmp(got, want) == 0)
            break;
        free(got);
        sched_yield();
    }
    free(got);
    lv.stop = 1;
    pthread_join(lt, NULL);
    if (lv.rc != 0)
        fail_msg("live worker: %s", es_errmsg(lv.w));
    es_projection_worker_close(lv.w);
    assert_rows(path_or_url, pg, rows_sql, want);

    /* No shadow left; the index has its own name again; the rebuild's
     * bookkeeping is gone. */
    got = rows_of(path_or_url, pg, pg ?
                  "SELECT indexname FROM pg_indexes WHERE tablename = 'balances'"
                  " ORDER BY 1" :
                  "SELECT name FROM sqlite_master WHERE tbl_name = 'balances'"
                  " AND type = 'index' ORDER BY 1");
    assert_contains(got, "balances_by_owner\n");
    if (pg)
        assert_contains(got, "balances_pkey\n");
    assert_true(strstr(got, "rebuild") == NULL);
    free(got);
    got = rows_of(path_or_url, pg, "SELECT count(*) FROM es_proj_checkpoints"
                  " WHERE projection LIKE '%#%'");
    assert_string_equal(got, "0\n");
    free(got);
    free(old_rows);
    free(want);
    es_log_close(live_log);
    es_log_close(log);
}

static void rebuild_under_readers(const char *target, const char *path_or_url,
                                  int pg)
{
    rebuild_under_readers_from(es_test_fresh_log_uri(), 0, target, path_or_url, pg);
}

static void rebuild_under_readers_kafka(const char *target,
                                        const char *path_or_url, int pg)
{
    rebuild_under_readers_from(es_test_kafka_uri(NULL), 1, target, path_or_url, pg);
}

static void test_rebuild_readers_kafka_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(rebuild_under_readers_kafka, "readersk");
}

static void test_rebuild_readers_kafka_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(rebuild_under_readers_kafka, "rebuild");
}

static void test_rebuild_readers_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(rebuild_under_readers, "readers");
}

static void test_rebuild_readers_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(rebuild_under_readers, "rebuild");
}

/* ---- Killed and started again ---------------------------------------------- */

typedef struct first_prog {
    int seen;
    es_rebuild_progress first;
} first_prog;

static int keep_first(const es_rebuild_progress *p, void *ud)
{
    first_prog *f = ud;
    if (!f->seen++)
        f->first = *p;
    return 0;
}

/* Where the rebuild's checkpoints are (0 before it made its tables). */
static int64_t rebuild_checkpoints(const char *path_or_url, int pg)
{
    conn c;
    char why[512], *s;
    int64_t v;
    if (!pg && access(path_or_url, F_OK) != 0)
        return 0;
    c = conn_open(path_or_url, pg);
    s = query_rows(&c, "SELECT coalesce(sum(next_offset), 0) FROM"
                   " es_proj_checkpoints WHERE projection = 'balances#rebuild'",
                   why, sizeof why);
    v = s ? atoll(s) : 0;
    free(s);
    conn_close(&c);
    return v;
}

/*
 * A rebuild killed inside a batch, started again: it goes on from the
 * killed one's checkpoints and ends equal to the reference fold; then a
 * live worker goes on from the rebuild's checkpoints (and, on Kafka, its
 * resume versions: the zombies after the swap are rejected too). On the
 * Kafka log (kafka 1) stale records are mixed in before and after.
 */
static void interrupted_from(const char *log_uri, int kafka, const char *target,
                             const char *path_or_url, int pg)
{
    es_rebuild_options o = ES_REBUILD_OPTIONS_INIT;
    es_rebuild_progress prog;
    es_projection_worker *w;
    first_prog fp;
    es_error err;
    es_log *log;
    char *want;
    pid_t child;
    int status, rc;

    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill(log, 25, 0, 300, 21, 0);
    if (kafka)
        zombies(log, log_uri, 0, 25);
    fill(log, 25, 300, 600, 22, 0);
    if (kafka) {
        zombies(log, log_uri, 25, 25);
        assert_int_equal(es_test_count_verdict(log, "account", ES_VERDICT_STALE), 50);
    }
    es_log_close(log);
    o.batch_size = 20;
    fflush(NULL);
    if ((child = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
        block_after = 250; /* blocks inside the 13th batch */
        if (es_log_open(&log, log_uri) != 0)
            _exit(2);
        rc = es_projection_rebuild(NULL, log, &balances, target, &o, &err);
        _exit(3); /* never: it blocks */
    }
    assert_true(child > 0);
    while (rebuild_checkpoints(path_or_url, pg) < 200) {
        assert_int_equal(waitpid(child, &status, WNOHANG), 0); /* still there */
        sched_yield();
    }
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));

    assert_int_equal(es_log_open(&log, log_uri), 0);
    memset(&fp, 0, sizeof fp);
    o.progress = keep_first;
    o.progress_data = &fp;
    rc = es_projection_rebuild(&prog, log, &balances, target, &o, &err);
    if (rc != 0)
        fail_msg("rebuild again: %s", err.text);
    /* It went on from the checkpoints of the killed one. */
    assert_true(fp.seen > 0);
    assert_true(fp.first.start >= 200);
    assert_true(fp.first.start < fp.first.total);
    assert_int_equal(prog.start, fp.first.start);
    /* Not from origin (on Kafka offsets count stale records too). */
    assert_true(prog.applied < (kafka ? 600 : 600 - 200 + 1));
    want = reference_rows(log, 25, ES_RANGE_ALL);
    assert_rows(path_or_url, pg, rows_sql, want);
    free(want);

    /* The live worker after the swap: more events, more zombies. */
    fill(log, 25, 600, 700, 23, 0);
    if (kafka) {
        zombies(log, log_uri, 50, 25);
        assert_int_equal(es_test_count_verdict(log, "account", ES_VERDICT_STALE), 75);
    }
    w = open_worker(log, target);
    run_caught_up(w);
    es_projection_worker_close(w);
    want = reference_rows(log, 25, ES_RANGE_ALL);
    assert_rows(path_or_url, pg, rows_sql, want);
    free(want);
    es_log_close(log);
}

static void interrupted(const char *target, const char *path_or_url, int pg)
{
    interrupted_from(es_test_fresh_log_uri(), 0, target, path_or_url, pg);
}

static void interrupted_kafka(const char *target, const char *path_or_url, int pg)
{
    interrupted_from(es_test_kafka_uri(NULL), 1, target, path_or_url, pg);
}

static void test_interrupted_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(interrupted, "interrupted");
}

static void test_interrupted_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(interrupted, "rebuild");
}

static void test_interrupted_kafka_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(interrupted_kafka, "interruptedk");
}

static void test_interrupted_kafka_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(interrupted_kafka, "rebuild");
}

/* ---- As of a time ------------------------------------------------------------ */

/* On the Kafka log (kafka 1), stale records stamped now (after T0) are
 * mixed in: rejected, they neither count nor cut their stream. */
static void as_of_from(const char *log_uri, int kafka, const char *target,
                       const char *path_or_url, int pg)
{
    es_log *log = NULL;
    es_rebuild_options o = ES_REBUILD_OPTIONS_INIT;
    es_projection_worker *w;
    es_error err;
    char suffix[40], sql[200], *want, *full;
    int rc;

    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill(log, 20, 0, 250, 31, 1);
    if (kafka)
        zombies(log, log_uri, 0, 20);
    /* Clock skew: acct-001 has an event after T0, then ones before it;
     * those are not in the read model as of T0 (es_repo_load's rule). */
    append_at(log, "acct-001", "Deposited", json_pack("{s:I}", "amount", 5000),
              T0 + 3600000000LL);
    fill(log, 20, 250, 600, 32, 1);
    w = open_worker(log, target);
    run_caught_up(w);
    es_projection_worker_close(w);
    full = rows_of(path_or_url, pg, rows_sql);
    if (kafka)
        assert_int_equal(es_test_count_verdict(log, "account", ES_VERDICT_STALE), 20);
    want = reference_rows(log, 20, ES_RANGE_ALL);
    assert_string_equal(full, want);
    free(want);

    o.as_of_us = T0;
    o.batch_size = 64;
    if ((rc = es_projection_rebuild(NULL, log, &balances, target, &o, &err)) != 0)
        fail_msg("rebuild as of: %s", err.text);
    es_rebuild_asof_suffix(suffix, sizeof suffix, T0);
    assert_string_equal(suffix, "__asof_20260301t100000z");
    snprintf(sql, sizeof sql, "SELECT id, owner, balance, txns FROM"
             " balances__asof_20260301T100000Z ORDER BY id");
    want = reference_rows(log, 20, ES_RANGE_AS_OF(T0));
    assert_rows(path_or_url, pg, sql, want);
    assert_true(strcmp(want, full) != 0);
    /* The live tables are left alone. */
    assert_rows(path_or_url, pg, rows_sql, full);
    /* Again: nothing more to do, the same rows. */
    if ((rc = es_projection_rebuild(NULL, log, &balances, target, &o, &err)) != 0)
        fail_msg("rebuild as of again: %s", err.text);
    assert_rows(path_or_url, pg, sql, want);
    free(want);
    free(full);
    es_log_close(log);
}

static void as_of(const char *target, const char *path_or_url, int pg)
{
    as_of_from(es_test_fresh_log_uri(), 0, target, path_or_url, pg);
}

static void as_of_kafka(const char *target, const char *path_or_url, int pg)
{
    as_of_from(es_test_kafka_uri(NULL), 1, target, path_or_url, pg);
}

static void test_as_of_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(as_of, "asof");
}

static void test_as_of_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(as_of, "rebuild");
}

static void test_as_of_kafka_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(as_of_kafka, "asofk");
}

static void test_as_of_kafka_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(as_of_kafka, "rebuild");
}


/* ---- A new version ---------------------------------------------------------- */

static const char *const setup_v2[] = {
    "CREATE TABLE balances (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " balance BIGINT NOT NULL, txns BIGINT NOT NULL, note TEXT)",
    "CREATE UNIQUE INDEX balances_by_owner_id ON balances (owner, id)",
    NULL};
static const es_projection balances_v2 = {
    ES_PROJECTION_VERSION, "balances", 2, follows, setup_v2, handlers, NULL};

static void new_version(const char *target, const char *path_or_url, int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection_worker_options wo = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w = NULL;
    es_error err;
    char *want, *got;
    int rc;

    fill(log, 15, 0, 300, 61, 0);
    w = open_worker(log, target);
    run_caught_up(w);
    es_projection_worker_close(w);
    if ((rc = es_projection_rebuild(NULL, log, &balances_v2, target, NULL, &err)) != 0)
        fail_msg("rebuild to v2: %s", err.text);
    got = rows_of(path_or_url, pg, "SELECT version FROM es_proj_projections"
                  " ORDER BY name");
    assert_string_equal(got, "2\n");
    free(got);
    /* The new table, its new index under its own name. */
    got = rows_of(path_or_url, pg, "SELECT count(note) FROM balances");
    assert_string_equal(got, "0\n");
    free(got);
    got = rows_of(path_or_url, pg, pg ?
                  "SELECT indexname FROM pg_indexes WHERE tablename = 'balances'"
                  " ORDER BY 1" :
                  "SELECT name FROM sqlite_master WHERE tbl_name = 'balances'"
                  " AND type = 'index' AND sql IS NOT NULL ORDER BY 1");
    assert_contains(got, "balances_by_owner_id\n");
    assert_true(strstr(got, "balances_by_owner\n") == NULL);
    free(got);
    /* A worker of the old version is refused; one of the new goes on from
     * the rebuild's checkpoints. */
    assert_int_equal(es_projection_worker_open(&w, log, &balances, target, &wo),
                     ES_ECONFLICT);
    es_projection_worker_close(w);
    fill(log, 15, 300, 340, 62, 0);
    w = NULL;
    assert_int_equal(es_projection_worker_open(&w, log, &balances_v2, target, &wo), 0);
    run_caught_up(w);
    es_projection_worker_close(w);
    want = reference_rows(log, 15, ES_RANGE_ALL);
    assert_rows(path_or_url, pg, rows_sql, want);
    free(want);
    es_log_close(log);
}

static void test_new_version_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(new_version, "v2");
}

static void test_new_version_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(new_version, "rebuild");
}

/* ---- PostgreSQL: a lock held through the swap; grants ------------------ */

static void test_swap_waits_postgres(void **state)
{
    const char *url = es_test_pg_fresh_db_or_fail("rebuild");
    es_log *log = es_test_open_fresh_log();
    es_projection_worker *w;
    es_rebuild_options o = ES_REBUILD_OPTIONS_INIT;
    es_error err;
    char role[64], sql[200], *want, *got;
    PGconn *holder;
    PGresult *r;
    (void)state;

    if (url == NULL) {
        print_message("no PostgreSQL: %s\n", es_test_pg_why());
        es_log_close(log);
        skip();
    }
    fill(log, 12, 0, 200, 51, 0);
    w = open_worker(log, url);
    run_caught_up(w);
    es_projection_worker_close(w);
    snprintf(role, sizeof role, "rebuild_reader_%ld", (long)getpid());
    snprintf(sql, sizeof sql, "CREATE ROLE %s", role);
    exec_sql(url, 1, sql);
    snprintf(sql, sizeof sql, "GRANT SELECT ON balances TO %s", role);
    exec_sql(url, 1, sql);

    /* A reader in a long transaction holds its lock on the table. */
    holder = PQconnectdb(url);
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    r = PQexec(holder, "BEGIN; SELECT count(*) FROM balances");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    o.lock_timeout_ms = 50;
    o.swap_attempts = 2;
    assert_int_equal(es_projection_rebuild(NULL, log, &balances, url, &o, &err),
                     ES_EIO);
    assert_contains(err.text, "swapping in the rebuilt tables");
    assert_contains(err.text, "lock timeout");
    /* Nothing swapped: the old table serves, the shadow one waits. */
    want = reference_rows(log, 12, ES_RANGE_ALL);
    assert_rows(url, 1, rows_sql, want);
    got = rows_of(url, 1, "SELECT count(*) FROM balances__v1_rebuild");
    assert_string_equal(got, "12\n");
    free(got);
    r = PQexec(holder, "COMMIT");
    PQclear(r);
    PQfinish(holder);

    /* Again: nothing to build, the swap goes through; the grant follows. */
    assert_int_equal(es_projection_rebuild(NULL, log, &balances, url, &o, &err), 0);
    assert_rows(url, 1, rows_sql, want);
    snprintf(sql, sizeof sql, "SELECT has_table_privilege('%s', 'balances',"
             " 'SELECT')", role);
    got = rows_of(url, 1, sql);
    assert_string_equal(got, "t\n");
    free(got);
    free(want);
    es_log_close(log);
}

/* ---- Status and the commands --------------------------------------------- */

static const es_projection *const app_projections[] = {&balances, NULL};
static const es_aggregate_type *const app_types[] = {&bank_account_type, NULL};

static int run_cli(int argc, char **argv, void *ud)
{
    es_app app = ES_APP_INIT;
    (void)ud;
    app.name = "bank";
    app.types = app_types;
    app.projections = app_projections;
    return es_cli_main(argc, argv, &app);
}


static int stop_at_once(const es_rebuild_progress *p, void *ud)
{
    (void)p;
    *(volatile int *)ud = 1;
    return 0;
}

static void test_status(void **state)
{
    const char *log_uri = es_test_fresh_log_uri();
    const char *path = es_test_path("status");
    es_rebuild_options o = ES_REBUILD_OPTIONS_INIT;
    es_projection_worker_options wo = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w = NULL;
    es_projection_step step = {0, 0, 0, 0, 0, 0};
    volatile int stop = 0;
    const char *out, *err;
    char target[600], line[300], *prom = NULL;
    json_t *st = NULL, *pr, *pt, *rb;
    es_error e;
    es_log *log;
    int64_t head, head1;
    (void)state;

    snprintf(target, sizeof target, "sqlite:%s", path);
    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill(log, 10, 0, 300, 41, 0);
    /* One batch of 50: the rest is lag. */
    wo.batch_size = 50;
    assert_int_equal(es_projection_worker_open(&w, log, &balances, target, &wo), 0);
    assert_int_equal(es_projection_worker_step(w, &step), 0);
    es_projection_worker_close(w);
    /* A rebuild that stopped before its first batch. */
    o.stop = &stop;
    o.progress = stop_at_once;
    o.progress_data = (void *)&stop;
    assert_int_equal(es_projection_rebuild(NULL, log, &balances, target, &o, &e),
                     ES_EUSER);

    assert_int_equal(es_projection_status(&st, log, target, &e), 0);
    if (getenv("SHOW_STATUS"))
        json_dumpf(st, stderr, JSON_INDENT(1));
    assert_int_equal(json_array_size(json_object_get(st, "projections")), 1);
    pr = json_array_get(json_object_get(st, "projections"), 0);
    assert_string_equal(json_string_value(json_object_get(pr, "name")), "balances");
    assert_int_equal(json_integer_value(json_object_get(pr, "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(pr, "dead_letters")), 0);
    assert_true(json_is_null(json_object_get(pr, "last_error")));
    assert_true(json_is_number(json_object_get(pr, "heartbeat_age_s")));
    assert_int_equal(json_array_size(json_object_get(pr, "workers")), 1);
    {
        int64_t heads = 0;
        size_t k;
        json_array_foreach(json_object_get(pr, "partitions"), k, pt) {
            int64_t h = json_integer_value(json_object_get(pt, "head"));
            int64_t want = h < 50 ? h : 50;
            assert_string_equal(json_string_value(json_object_get(pt, "type")),
                                "account");
            assert_int_equal(json_integer_value(json_object_get(pt, "partition")), k);
            assert_int_equal(es_log_head(log, &head, "account", (int32_t)k), 0);
            assert_int_equal(h, head);
            assert_int_equal(json_integer_value(json_object_get(pt, "checkpoint")),
                             want);
            assert_int_equal(json_integer_value(json_object_get(pt, "lag_events")),
                             h - want);
            assert_true(json_real_value(json_object_get(pt, "lag_seconds")) >= 0);
            assert_true((h > want) ==
                        (json_real_value(json_object_get(pt, "lag_seconds")) > 0));
            heads += h;
        }
        assert_true(k >= 2);
        head = heads;
    }
    rb = json_object_get(pr, "rebuild");
    assert_true(json_is_object(rb));
    assert_string_equal(json_string_value(json_object_get(rb, "name")),
                        "balances#rebuild");
    assert_int_equal(json_integer_value(json_object_get(rb, "done")), 0);
    assert_int_equal(json_integer_value(json_object_get(rb, "total")), head);

    assert_int_equal(es_projection_status_prometheus(&prom, st), 0);
    assert_contains(prom, "# HELP esfold_projection_lag_events ");
    assert_contains(prom, "# TYPE esfold_projection_lag_events gauge\n");
    assert_int_equal(es_log_head(log, &head1, "account", 1), 0);
    assert_true(head1 > 50);
    snprintf(line, sizeof line, "esfold_projection_lag_events{projection="
             "\"balances\",type=\"account\",partition=\"1\"} %lld\n",
             (long long)(head1 - 50));
    assert_contains(prom, line);
    assert_contains(prom, "esfold_projection_checkpoint{projection=\"balances\","
                    "type=\"account\",partition=\"1\"} 50\n");
    assert_contains(prom, "esfold_projection_dead_letters{projection=\"balances\"} 0\n");
    assert_contains(prom, "esfold_projection_rebuild_progress{projection=\"balances\"} 0\n");
    assert_contains(prom, "# TYPE esfold_projection_heartbeat_age_seconds gauge\n");
    es_free(prom);
    json_decref(st);

    /* The commands: status, then the rebuild resumes and swaps. */
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "status", "--target", target,
                         "--json", NULL), 0);
    assert_contains(out, "\"lag_events\"");
    assert_contains(out, "\"balances#rebuild\"");
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "status", "--target", target,
                         "--prometheus", NULL), 0);
    assert_contains(out, line);
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "status", "--target", target, NULL), 0);
    assert_contains(out, "balances  version 1  dead letters 0");
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "rebuild", "balances",
                         "--target", target, "--json", NULL), 0);
    assert_contains(out, "\"phase\":\"build\"");
    assert_contains(out, "\"table\":\"balances\",\"shadow\":\"balances__v1_rebuild\"");
    assert_contains(out, "\"phase\":\"done\"");
    {
        char *want = reference_rows(log, 10, ES_RANGE_ALL);
        assert_rows(path, 0, rows_sql, want);
        free(want);
    }
    /* After the swap: no rebuild; the live checkpoint is the rebuild's. */
    assert_int_equal(es_projection_status(&st, log, target, &e), 0);
    pr = json_array_get(json_object_get(st, "projections"), 0);
    assert_true(json_is_null(json_object_get(pr, "rebuild")));
    {
        size_t k;
        json_array_foreach(json_object_get(pr, "partitions"), k, pt)
            assert_int_equal(json_integer_value(json_object_get(pt, "lag_events")), 0);
    }
    json_decref(st);
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "rebuild", "balances",
                         "--target", target, "--as-of", "2026-03-01T10:00:00Z",
                         "--json", NULL), 0);
    assert_contains(out, "\"phase\":\"done\"");
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "rebuild", NULL), 2);
    es_log_close(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rebuild_readers_sqlite),
        cmocka_unit_test(test_rebuild_readers_postgres),
        cmocka_unit_test(test_rebuild_readers_kafka_sqlite),
        cmocka_unit_test(test_rebuild_readers_kafka_postgres),
        cmocka_unit_test(test_interrupted_sqlite),
        cmocka_unit_test(test_interrupted_postgres),
        cmocka_unit_test(test_interrupted_kafka_sqlite),
        cmocka_unit_test(test_interrupted_kafka_postgres),
        cmocka_unit_test(test_as_of_sqlite),
        cmocka_unit_test(test_as_of_postgres),
        cmocka_unit_test(test_as_of_kafka_sqlite),
        cmocka_unit_test(test_as_of_kafka_postgres),
        cmocka_unit_test(test_new_version_sqlite),
        cmocka_unit_test(test_new_version_postgres),
        cmocka_unit_test(test_swap_waits_postgres),
        cmocka_unit_test(test_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
