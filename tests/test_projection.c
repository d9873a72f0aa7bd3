/*
 * tests/test_projection.c - projection workers: exactly once into SQLite
 * and PostgreSQL, across SIGKILLs, with two workers on one partition, dead
 * letters, JSON-file projections, read-your-writes, scale-out (a consumer
 * group on Kafka, the lease elsewhere). The crash test runs from the SQLite
 * and the Kafka log (racing writers, zombie records) into both targets.
 *
 * The handlers are NOT idempotent (balance = balance + amount, an INSERT
 * without ON CONFLICT for AccountOpened), so an event applied twice shows
 * in the rows or as a failure. The expected rows come from a reference
 * fold of the log with the bank sample's aggregate (es_repo_load), and the
 * rows are read straight from the target with sqlite3 / libpq, not through
 * esfold.
 *
 * The PostgreSQL cases run against the server of tests/pg_harness.c (one
 * database per case) and are skipped when there is none.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "kafka_harness.h"
#include "pg_harness.h"
#include "target_harness.h"
#include "esfold/partition.h"
#include "esfold/projection.h"
#include "esfold/time.h"
#include "samples/bank/account.h"

/* ---- The projection under test ------------------------------------------ */

/* Set to make the Deposited handler fail on one stream (dead letters). */
typedef struct balances_ctl {
    const char *fail_stream;
    int calls_on_failing; /* how often the failing stream was tried */
    /* >0: the movement handler call that, inside its batch, writes a byte
     * to gate_up and waits for one on gate_go (a child's handler) */
    int gate_at, gate_calls, gate_up, gate_go;
} balances_ctl;

static balances_ctl ctl;

static int on_opened(es_sql *sql, const es_event *ev, void *ud)
{
    const char *owner = json_string_value(json_object_get(ev->payload, "owner"));
    es_sql_value p[] = {ES_SQL_STR(ev->stream_id), ES_SQL_STR(owner)};
    (void)ud;
    /* No ON CONFLICT: a second apply fails (and shows). */
    return es_sql_exec(sql, "INSERT INTO balances (id, owner, balance, txns)"
                       " VALUES ($1, $2, 0, 0)", p, 2);
}

static int on_moved(es_sql *sql, const es_event *ev, int64_t sign)
{
    json_t *a = json_object_get(ev->payload, "amount");
    json_int_t amount = json_integer_value(a);
    es_sql_value p[] = {ES_SQL_STR(ev->stream_id), ES_SQL_I64(sign * amount)};
    if (ctl.gate_at > 0 && ++ctl.gate_calls == ctl.gate_at) {
        char b;
        if (write(ctl.gate_up, "x", 1) != 1 || read(ctl.gate_go, &b, 1) != 1)
            _exit(3);
    }
    if (!json_is_integer(a)) /* a payload another producer got wrong */
        return es_sql_fail(sql, "%s of %s: \"amount\" is not an integer",
                           ev->type, ev->stream_id);
    if (ctl.fail_stream && strcmp(ev->stream_id, ctl.fail_stream) == 0) {
        ctl.calls_on_failing++;
        return es_sql_fail(sql, "refusing %s of %s", ev->type, ev->stream_id);
    }
    return es_sql_exec(sql, "UPDATE balances SET balance = balance + $2,"
                       " txns = txns + 1 WHERE id = $1", p, 2);
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
    "CREATE TABLE balances (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " balance BIGINT NOT NULL, txns BIGINT NOT NULL)",
    NULL};
static const es_projection_handler handlers[] = {
    {"AccountOpened", on_opened},
    {"Deposited", on_deposited},
    {"Withdrawn", on_withdrawn},
    {NULL, NULL}};

static const es_projection balances = {
    ES_PROJECTION_VERSION, "balances", 1, follows, setup_sql, handlers, NULL};

/* ---- Logs and the reference fold ---------------------------------------- */

static void append1(es_log *log, const char *id, const char *type,
                    json_t *payload)
{
    es_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.payload = payload;
    if (es_log_append(log, NULL, "account", id, ES_EXPECT_ANY, &ev, 1) != 0)
        fail_msg("append: %s", es_errmsg(log));
    json_decref(payload);
}

/* accounts streams acct-0..; events in all, in random order of streams. */
static void fill_log(es_log *log, int accounts, int events, unsigned seed)
{
    char id[32];
    srand(seed);
    for (int a = 0; a < accounts; a++) {
        snprintf(id, sizeof id, "acct-%03d", a);
        append1(log, id, "AccountOpened",
                json_pack("{s:s, s:s}", "owner", a % 2 ? "O'Brien" : "Ada",
                          "currency", "EUR"));
    }
    for (int i = accounts; i < events; i++) {
        int a = rand() % accounts;
        snprintf(id, sizeof id, "acct-%03d", a);
        append1(log, id, rand() % 3 ? "Deposited" : "Withdrawn",
                json_pack("{s:I}", "amount", (json_int_t)(1 + rand() % 1000)));
    }
}

/* Set to fold stream ref_cut_stream only up to version ref_cut_version
 * (its next event does not fold: a bad payload). */
static const char *ref_cut_stream;
static int64_t ref_cut_version;

/* "id|owner|balance|txns\n" per account, sorted by id: from the log. */
static char *reference_rows(es_log *log, int accounts)
{
    es_repo *repo;
    char **rows = calloc((size_t)accounts, sizeof *rows), *out;
    size_t len = 0;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    for (int a = 0; a < accounts; a++) {
        char id[32];
        es_aggregate *agg = NULL;
        const bank_account *acc;
        snprintf(id, sizeof id, "acct-%03d", a);
        if (es_repo_load(repo, &agg, &bank_account_type, id,
                         ref_cut_stream && strcmp(id, ref_cut_stream) == 0
                             ? ES_RANGE_TO_VERSION(ref_cut_version)
                             : ES_RANGE_ALL) != 0)
            fail_msg("load %s: %s", id, es_errmsg(repo));
        acc = es_aggregate_state(agg);
        rows[a] = malloc(200);
        snprintf(rows[a], 200, "%s|%s|%lld|%lld\n", id, acc->owner,
                 (long long)acc->balance, (long long)acc->transactions);
        len += strlen(rows[a]);
        es_aggregate_free(agg);
    }
    es_repo_free(repo);
    /* Sort like the targets' ORDER BY id (byte order). */
    for (int i = 1; i < accounts; i++)
        for (int j = i; j > 0 && strcmp(rows[j - 1], rows[j]) > 0; j--) {
            char *x = rows[j];
            rows[j] = rows[j - 1];
            rows[j - 1] = x;
        }
    out = calloc(1, len + 1);
    for (int a = 0; a < accounts; a++) {
        strcat(out, rows[a]);
        free(rows[a]);
    }
    free(rows);
    return out;
}

static const char rows_sql[] =
    "SELECT id, owner, balance, txns FROM balances ORDER BY id";


static es_projection_worker *open_worker(es_log *log, const es_projection *p,
                                         const char *target,
                                         const es_projection_worker_options *o)
{
    es_projection_worker *w = NULL;
    int rc = es_projection_worker_open(&w, log, p, target, o);
    if (rc != 0)
        fail_msg("worker open: %s (%s)", es_errmsg(w), es_strerror(rc));
    return w;
}

static es_projection_step run_caught_up(es_projection_worker *w)
{
    es_projection_step total;
    int rc = es_projection_worker_run(w, NULL, 1, &total, NULL, NULL);
    if (rc != 0)
        fail_msg("run: %s (%s)", es_errmsg(w), es_strerror(rc));
    return total;
}

static void assert_rows(const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("read model differs from the reference fold:\n--- got\n%s"
                 "--- want\n%s", got, want);
}

/* The rows of the target (a SQLite file, or with pg a PostgreSQL URL)
 * equal the reference fold. */
static void assert_reference_rows(es_log *log, int accounts,
                                  const char *path_or_url, int pg)
{
    char *want = reference_rows(log, accounts);
    char *got = es_test_target_rows(path_or_url, pg, rows_sql);
    assert_rows(got, want);
    free(want);
    free(got);
}


/* ---- Exactly once, restarts ------------------------------------------- */

static void crash_free_run(const char *target, const char *path_or_url, int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w;
    es_projection_step st;
    char *want, *got;

    fill_log(log, 25, 700, 7);
    o.batch_size = 50;
    w = open_worker(log, &balances, target, &o);
    st = run_caught_up(w);
    assert_int_equal(st.applied, 700);
    es_projection_worker_close(w);
    /* A restart applies nothing again. */
    w = open_worker(log, &balances, target, &o);
    st = run_caught_up(w);
    assert_int_equal(st.applied, 0);
    assert_int_equal(st.batches, 0);
    es_projection_worker_close(w);
    want = reference_rows(log, 25);
    got = es_test_target_rows(path_or_url, pg, rows_sql);
    assert_rows(got, want);
    free(want);
    free(got);
    es_log_close(log);
}

static void test_sqlite_target(void **state)
{
    (void)state;
    es_test_on_sqlite(crash_free_run, "target");
}

static void test_postgres_target(void **state)
{
    (void)state;
    es_test_on_postgres(crash_free_run, "proj");
}

/* ---- Two workers on the same partitions --------------------------------- */

/* On the log at log_uri (the Kafka log: with zombie records). */
static void zombie_deposits(const char *log_uri, es_log *log, int first, int n);

static void two_workers_on(const char *log_uri, int kafka, const char *uri,
                           const char *path_or_url, int pg)
{
    char *want, *got;
    es_log *log = NULL;
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *a, *b;
    es_projection_step sa = {0}, sb = {0};
    int rc;

    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 10, 200, 3);
    if (kafka)
        zombie_deposits(log_uri, log, 0, 10);
    o.batch_size = 1000;
    /* Both read the checkpoints (at 0) before either applies anything. */
    a = open_worker(log, &balances, uri, &o);
    b = open_worker(log, &balances, uri, &o);
    assert_int_equal(es_projection_worker_step(a, &sa), 0);
    assert_int_equal(sa.applied, 200);
    rc = es_projection_worker_step(b, &sb);
    assert_int_equal(rc, ES_ECONFLICT);
    assert_contains(es_errmsg(b), "the checkpoint moved from 0 to");
    assert_int_equal(sb.applied, 0);
    assert_int_equal(sb.batches, 0);
    /* b now knows the new checkpoints: nothing left to do. */
    sb = (es_projection_step){0};
    assert_int_equal(es_projection_worker_step(b, &sb), 0);
    assert_int_equal(sb.batches, 0);
    assert_int_equal(sb.caught_up, 1);
    es_projection_worker_close(a);
    es_projection_worker_close(b);
    want = reference_rows(log, 10);
    got = es_test_target_rows(path_or_url, pg, rows_sql);
    assert_rows(got, want);
    free(want);
    free(got);
    es_log_close(log);
}

static void two_workers_case(const char *uri, const char *path_or_url, int pg)
{
    two_workers_on(es_test_fresh_log_uri(), 0, uri, path_or_url, pg);
}

static void two_workers_kafka(const char *uri, const char *path_or_url, int pg)
{
    two_workers_on(es_test_kafka_uri(NULL), 1, uri, path_or_url, pg);
}

static void test_two_workers_fenced_kafka_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(two_workers_kafka, "fencek");
}

static void test_two_workers_fenced_kafka_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(two_workers_kafka, "proj");
}

static void test_two_workers_fenced_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(two_workers_case, "fence");
}

static void test_two_workers_fenced_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(two_workers_case, "proj");
}


/* ---- Crashes: SIGKILL at random points ---------------------------------- */

static const char ckpt_sum_sql[] =
    "SELECT sum(next_offset) FROM es_proj_checkpoints";
static const char ckpt_rows_sql[] =
    "SELECT partition_no, next_offset FROM es_proj_checkpoints ORDER BY partition_no";

/* The child: a worker on its own log handle, until caught up. */
static void crash_child(const char *log_uri, const char *target)
{
    es_log *log = NULL;
    es_projection_worker *w = NULL;
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    int rc;
    o.batch_size = 20;
    if (es_log_open(&log, log_uri) != 0)
        _exit(3);
    rc = es_projection_worker_open(&w, log, &balances, target, &o);
    if (rc == 0)
        rc = es_projection_worker_run(w, NULL, 1, NULL, NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "crash child: %s\n", es_errmsg(w));
    es_projection_worker_close(w);
    es_log_close(log);
    _exit(rc == 0 ? 0 : 4);
}

/*
 * Rounds of two workers at once (both on every partition), each killed
 * with SIGKILL after a random delay, until at least 20 kills hit a running
 * worker; the log grows between rounds. Then one clean run, and the rows
 * must equal the reference fold.
 */
static void crash_test_on(const char *log_uri, const char *target,
                          const char *path_or_url, int pg, int accounts,
                          int events, int per_round, int max_delay_us);

static void crash_test(const char *target, const char *path_or_url, int pg)
{
    crash_test_on(es_test_fresh_log_uri(), target, path_or_url, pg, 40, 2000,
                  150, pg ? 25000 : 6000);
}

static void crash_test_on(const char *log_uri, const char *target,
                          const char *path_or_url, int pg, int accounts,
                          int events, int per_round, int max_delay_us)
{
    es_log *log = NULL;
    es_projection_worker *w;
    es_projection_step st;
    int kills = 0, rounds = 0, moved = 0;
    char *want, *got, *before = NULL;

    assert_int_equal(es_log_open(&log, log_uri), 0);
    if (events > 0) /* else the log has its accounts already */
        fill_log(log, accounts, events, 11);
    /* The target made before two workers race to open it (two first
     * opens of one new SQLite file can fail to set WAL mode at once). */
    es_projection_worker_close(open_worker(log, &balances, target, NULL));
    srand(12345);
    while (kills < 20 && rounds < 300) {
        pid_t kids[2];
        rounds++;
        for (int k = 0; k < 2; k++) {
            kids[k] = fork();
            assert_true(kids[k] >= 0);
            if (kids[k] == 0)
                crash_child(log_uri, target);
        }
        usleep((useconds_t)(500 + rand() % max_delay_us));
        for (int k = 0; k < 2; k++) {
            int status;
            kill(kids[k], SIGKILL);
            assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
            if (WIFSIGNALED(status))
                kills++;
            else if (WEXITSTATUS(status) != 0)
                fail_msg("a worker failed (exit %d)", WEXITSTATUS(status));
        }
        /* Did the workers get anywhere before they were killed? */
        got = es_test_target_rows(path_or_url, pg, ckpt_sum_sql);
        moved += before && strcmp(before, got) != 0;
        free(before);
        before = got;
        /* More events behind the checkpoint (none is an account's first:
         * the accounts exist). */
        for (int i = 0; i < per_round; i++) {
            char id[32];
            snprintf(id, sizeof id, "acct-%03d", rand() % accounts);
            append1(log, id, "Deposited",
                    json_pack("{s:I}", "amount", (json_int_t)(1 + rand() % 50)));
        }
    }
    free(before);
    print_message("crash test (%.6s log into %s): %d kills of running workers in "
                  "%d rounds, %d of which moved a checkpoint\n", log_uri,
                  pg ? "PostgreSQL" : "SQLite", kills, rounds, moved);
    assert_true(kills >= 20);
    w = open_worker(log, &balances, target, NULL);
    st = run_caught_up(w);
    assert_int_equal(st.dead_lettered, 0);
    es_projection_worker_close(w);
    want = reference_rows(log, accounts);
    got = es_test_target_rows(path_or_url, pg, rows_sql);
    assert_rows(got, want);
    free(want);
    free(got);
    /* Every checkpoint is at its partition's head. */
    {
        char heads[256] = "";
        int32_t count = 0;
        assert_int_equal(es_log_partition_count(log, &count, "account"), 0);
        for (int32_t p = 0; p < count; p++) {
            int64_t head = 0;
            assert_int_equal(es_log_head(log, &head, "account", p), 0);
            snprintf(heads + strlen(heads), sizeof heads - strlen(heads),
                     "%d|%lld\n", (int)p, (long long)head);
        }
        got = es_test_target_rows(path_or_url, pg, ckpt_rows_sql);
        assert_string_equal(got, heads);
        free(got);
    }
    es_log_close(log);
}

static void test_crash_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(crash_test, "crash");
}

static void test_crash_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(crash_test, "proj");
}

/* On the Kafka log (the local broker), with records the acceptance rule
 * rejects mixed in: the losers' records of two esfold writers racing on
 * the same streams (race_appends), and stale versions from a writer
 * outside esfold (a zombie), each worth a large amount, so that one
 * applied shows. */
static void zombie_deposits(const char *log_uri, es_log *log, int first, int n)
{
    es_test_kafka_foreign_records(log, log_uri, "account", "acct-%03d", first, n, 20,
                                2, "Deposited", "{\"amount\":1000000}");
}

/* Two writer processes, released at once, each append n deposits of 1 to
 * acct-000..003 (ES_EXPECT_ANY: a lost race is retried by the log, and
 * again here when it lost five times in a row). */
static void race_appends(const char *log_uri, int n)
{
    int start[2], status;
    pid_t pids[2];
    assert_int_equal(pipe(start), 0);
    fflush(NULL);
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            es_log *clog = NULL;
            es_event ev;
            char c, id[32];
            close(start[1]);
            if (es_log_open(&clog, log_uri) != 0 || read(start[0], &c, 1) != 0)
                _exit(2);
            memset(&ev, 0, sizeof ev);
            ev.type = "Deposited";
            ev.payload = json_pack("{s:I}", "amount", (json_int_t)1);
            for (int i = 0; i < n; i++) {
                int rc, tries = 0;
                snprintf(id, sizeof id, "acct-%03d", i % 4);
                while ((rc = es_log_append(clog, NULL, "account", id, ES_EXPECT_ANY,
                                           &ev, 1)) == ES_ECONFLICT && ++tries < 20)
                    ;
                if (rc != 0) {
                    fprintf(stderr, "racing writer: %s\n", es_errmsg(clog));
                    _exit(3);
                }
            }
            json_decref(ev.payload);
            es_log_close(clog);
            _exit(0);
        }
    }
    close(start[0]);
    close(start[1]); /* go */
    for (int k = 0; k < 2; k++) {
        assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
}

static void crash_kafka_case(const char *target, const char *path_or_url, int pg)
{
    const char *log_uri = es_test_kafka_uri(NULL);
    es_log *log = NULL;
    int races;

    /* The accounts first (versions 1 and 2 exist before the zombies
     * write a version 2 again). */
    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 20, 1000, 31);
    for (int a = 0; a < 20; a++) {
        char id[32];
        snprintf(id, sizeof id, "acct-%03d", a);
        append1(log, id, "Deposited", json_pack("{s:I}", "amount", (json_int_t)1));
    }
    /* Two esfold writers racing on the same streams: each lost race leaves
     * the loser's record in the log (its retry goes in after the winner). */
    race_appends(log_uri, 120);
    races = es_test_count_verdict(log, "account", ES_VERDICT_STALE) +
            es_test_count_verdict(log, "account", ES_VERDICT_INTERLEAVED);
    zombie_deposits(log_uri, log, 0, 40);
    /* The log holds them, and every reader rejects them. */
    assert_int_equal(es_test_count_verdict(log, "account", ES_VERDICT_STALE) +
                     es_test_count_verdict(log, "account", ES_VERDICT_INTERLEAVED),
                     races + 40);
    print_message("rejected records in the log: %d of lost races, 40 of a zombie\n",
                  races);
    es_log_close(log);
    crash_test_on(log_uri, target, path_or_url, pg, 20, 0, 40, pg ? 80000 : 60000);

    /* Rejected records at the end of a partition: the checkpoint still
     * moves past them (a worker does not read them again and again). */
    assert_int_equal(es_log_open(&log, log_uri), 0);
    zombie_deposits(log_uri, log, 40, 20);
    {
        es_projection_worker *w = open_worker(log, &balances, target, NULL);
        es_projection_step st = run_caught_up(w);
        int64_t sum = 0, head;
        int32_t count = 0;
        char want[32], *got;
        assert_int_equal(st.applied, 0);
        assert_true(st.batches > 0);
        es_projection_worker_close(w);
        assert_int_equal(es_log_partition_count(log, &count, "account"), 0);
        for (int32_t p = 0; p < count; p++) {
            assert_int_equal(es_log_head(log, &head, "account", p), 0);
            sum += head;
        }
        snprintf(want, sizeof want, "%lld\n", (long long)sum);
        got = es_test_target_rows(path_or_url, pg, ckpt_sum_sql);
        assert_string_equal(got, want);
        free(got);
        /* And the rows are still the reference fold. */
        assert_reference_rows(log, 20, path_or_url, pg);
    }
    es_log_close(log);
}

static void test_crash_kafka_log_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(crash_kafka_case, "crashk");
}

static void test_crash_kafka_log_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(crash_kafka_case, "proj");
}

static int movements_of(es_log *log, const char *id);

/* The resume rows a batch writes in one statement from a Kafka log: the
 * last version and commit place of every stream, for stream ids that JSON
 * must escape too, equal on both targets. */
static void resume_rows_case(const char *target, const char *path_or_url, int pg)
{
    /* after acct-NNN and in this order in any collation */
    static const char *const ids[] = {"zz-'q\"", "zz-\xc3\xbc\\"};
    static const char resume_rows_sql[] =
        "SELECT stream_id, version, commit_id IS NOT NULL, commit_size,"
        " commit_index FROM es_proj_resume WHERE projection = 'balances'"
        " ORDER BY stream_id";
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_log *log = NULL;
    es_projection_worker *w;
    es_projection_step st;
    char want[4096] = "", *got;
    int n[10] = {0};

    assert_int_equal(es_log_open(&log, es_test_kafka_uri("partitions=4")), 0);
    fill_log(log, 8, 120, 11);
    for (int i = 0; i < 2; i++) {
        append1(log, ids[i], "AccountOpened", json_pack("{s:s}", "owner", "Ada"));
        append1(log, ids[i], "Deposited", json_pack("{s:I}", "amount", (json_int_t)3));
    }
    o.batch_size = 25;
    w = open_worker(log, &balances, target, &o);
    st = run_caught_up(w);
    assert_int_equal(st.applied, 124);
    es_projection_worker_close(w);
    /* The reference: each stream's event count is its last version. */
    for (int a = 0; a < 8; a++) {
        char id[32];
        snprintf(id, sizeof id, "acct-%03d", a);
        n[a] = 1 + movements_of(log, id);
    }
    for (int a = 0; a < 8; a++)
        snprintf(want + strlen(want), sizeof want - strlen(want),
                 "acct-%03d|%d|%s|1|0\n", a, n[a], pg ? "t" : "1");
    for (int i = 0; i < 2; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want),
                 "%s|2|%s|1|0\n", ids[i], pg ? "t" : "1");
    got = es_test_target_rows(path_or_url, pg, resume_rows_sql);
    assert_rows(got, want);
    free(got);
    es_log_close(log);
}

static void test_resume_rows_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(resume_rows_case, "resume");
}

static void test_resume_rows_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(resume_rows_case, "proj");
}

/* ---- Dead letters ------------------------------------------------------- */

typedef struct dl_seen {
    int failed, waiting, skipped;
    int64_t attempts;
    char error[256];
    char first_stream[64];
} dl_seen;

static int count_dl(const es_projection_dead_letter *dl, void *ud)
{
    dl_seen *s = ud;
    if (strcmp(dl->status, "failed") == 0) {
        s->failed++;
        s->attempts = dl->attempts;
        snprintf(s->error, sizeof s->error, "%s", dl->error);
        snprintf(s->first_stream, sizeof s->first_stream, "%s", dl->stream_id);
    } else if (strcmp(dl->status, "waiting") == 0) {
        s->waiting++;
    } else if (strcmp(dl->status, "skipped") == 0) {
        s->skipped++;
    }
    assert_non_null(strstr(dl->event, "\"stream_id\""));
    return 0;
}

static dl_seen dead_letters(const char *target)
{
    dl_seen s;
    es_error err;
    memset(&s, 0, sizeof s);
    if (es_projection_dead_letters(target, "balances", count_dl, &s, &err) != 0)
        fail_msg("dead letters: %s", err.text);
    return s;
}

/* The Deposited/Withdrawn events of one stream after its first. */
static int movements_of(es_log *log, const char *id)
{
    es_repo *repo;
    es_aggregate *agg;
    int n;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    assert_int_equal(es_repo_load(repo, &agg, &bank_account_type, id, ES_RANGE_ALL), 0);
    n = (int)((const bank_account *)es_aggregate_state(agg))->transactions;
    es_aggregate_free(agg);
    es_repo_free(repo);
    return n;
}

static void dead_letter_case(const char *target, const char *path_or_url, int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w;
    es_projection_step st;
    es_error err;
    dl_seen s;
    int64_t n;
    int moves;
    char *want, *got, *line;

    fill_log(log, 8, 300, 5);
    moves = movements_of(log, "acct-003");
    assert_true(moves > 2);
    o.batch_size = 40;
    o.max_attempts = 3;
    o.backoff_ms = -1;
    memset(&ctl, 0, sizeof ctl);
    ctl.fail_stream = "acct-003";
    w = open_worker(log, &balances, target, &o);
    st = run_caught_up(w);
    /* Tried 3 times, then dead-lettered; the rest of its stream waits. */
    assert_int_equal(st.dead_lettered, moves);
    assert_int_equal(st.applied, 300 - moves);
    s = dead_letters(target);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.waiting, moves - 1);
    assert_int_equal(s.attempts, 3);
    assert_string_equal(s.first_stream, "acct-003");
    assert_contains(s.error, "refusing");
    /* The other streams are complete; acct-003 has its opening only. */
    want = reference_rows(log, 8);
    got = es_test_target_rows(path_or_url, pg, rows_sql);
    line = strstr(got, "acct-003|");
    assert_non_null(line);
    assert_true(strncmp(line, "acct-003|O'Brien|0|0\n", 21) == 0);
    es_projection_worker_close(w);

    /* Still failing: a retry fails again, nothing moves. */
    assert_int_equal(es_projection_dead_letters_retry(target, "balances", NULL,
                                                      &n, &err), 0);
    assert_int_equal(n, 1);
    w = open_worker(log, &balances, target, &o);
    st = run_caught_up(w);
    assert_int_equal(st.retried, 0);
    s = dead_letters(target);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.attempts, 6);

    /* Fixed: a retry applies it and everything that waited, in order. */
    ctl.fail_stream = NULL;
    assert_int_equal(es_projection_dead_letters_retry(target, "balances",
                                                      "acct-003", &n, &err), 0);
    assert_int_equal(n, 1);
    st = run_caught_up(w);
    assert_int_equal(st.retried, moves);
    s = dead_letters(target);
    assert_int_equal(s.failed + s.waiting, 0);
    free(got);
    got = es_test_target_rows(path_or_url, pg, rows_sql);
    assert_rows(got, want);
    /* New events of the stream flow again. */
    append1(log, "acct-003", "Deposited", json_pack("{s:I}", "amount", (json_int_t)5));
    st = run_caught_up(w);
    assert_int_equal(st.applied, 1);
    assert_int_equal(st.dead_lettered, 0);

    /* A dead letter that this worker did not write (a rebuild's swap
     * brings its own) in a partition whose last batch had none: the next
     * batch finds it in its transaction, and the stream's new event waits
     * behind it instead of being applied. */
    append1(log, "acct-005", "Deposited", json_pack("{s:I}", "amount", (json_int_t)6));
    st = run_caught_up(w);
    assert_int_equal(st.applied, 1);
    {
        char sql[1024];
        int32_t parts;
        assert_int_equal(es_log_partition_count(log, &parts, "account"), 0);
        snprintf(sql, sizeof sql, "INSERT INTO es_proj_deadletters (projection,"
                 " agg_type, stream_id, version, partition_no, log_offset,"
                 " event_type, status, attempts, error, event, created_us,"
                 " updated_us) VALUES ('balances', 'account', 'acct-005', 1000,"
                 " %d, 0, 'Deposited', 'failed', 1, 'swapped in',"
                 " '{\"stream_id\": \"acct-005\"}', 0, 0)",
                 (int)es_partition_for("acct-005", 8, parts));
        es_test_target_exec(path_or_url, pg, sql);
    }
    append1(log, "acct-005", "Deposited", json_pack("{s:I}", "amount", (json_int_t)7));
    st = run_caught_up(w);
    assert_int_equal(st.applied, 0);
    assert_int_equal(st.dead_lettered, 1);
    s = dead_letters(target);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.waiting, 1);
    es_projection_worker_close(w);
    free(want);
    free(got);
    es_log_close(log);
}

static void test_dead_letters_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(dead_letter_case, "dl");
}

static void test_dead_letters_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(dead_letter_case, "proj");
}

/* The version stream id is at in the log. */
static int64_t version_of(es_log *log, const char *id)
{
    es_repo *repo;
    es_aggregate *agg;
    int64_t v;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    if (es_repo_load(repo, &agg, &bank_account_type, id, ES_RANGE_ALL) != 0)
        fail_msg("load %s: %s", id, es_errmsg(repo));
    v = es_aggregate_version(agg);
    es_aggregate_free(agg);
    es_repo_free(repo);
    return v;
}

/*
 * Bad events from another producer on the Kafka log: a Deposited of
 * acct-003 whose amount is not a number (an event the log accepts, its
 * handler refuses) is dead-lettered with its reason and the stream's later
 * events wait while the others go on; a record of acct-005 that is not
 * JSON at all is no event (every reader rejects it) and nothing waits for
 * it. An operator skips the bad one: the waiting events are applied, in
 * order, once; nothing else is lost.
 */
static void bad_payload_case(const char *target, const char *path_or_url, int pg)
{
    const char *log_uri = es_test_kafka_uri(NULL);
    es_log *log = NULL;
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w;
    es_projection_step st;
    es_error err;
    dl_seen s;
    int64_t v3, v5, n;
    char *want, *got, *line, row3[96];

    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 8, 240, 57);
    v3 = version_of(log, "acct-003");
    es_test_kafka_foreign_records(log, log_uri, "account", "acct-%03d", 3, 1, 100,
                                  v3 + 1, "Deposited", "{\"amount\":\"lots\"}");
    v5 = version_of(log, "acct-005");
    es_test_kafka_foreign_records(log, log_uri, "account", "acct-%03d", 5, 1, 100,
                                  v5 + 1, "Deposited", "{amount: 7 -- not JSON");
    assert_int_equal(es_test_count_verdict(log, "account", ES_VERDICT_MALFORMED), 1);
    assert_int_equal(version_of(log, "acct-005"), v5);
    append1(log, "acct-003", "Deposited", json_pack("{s:I}", "amount", (json_int_t)100));
    append1(log, "acct-003", "Withdrawn", json_pack("{s:I}", "amount", (json_int_t)30));
    append1(log, "acct-005", "Deposited", json_pack("{s:I}", "amount", (json_int_t)11));
    append1(log, "acct-001", "Deposited", json_pack("{s:I}", "amount", (json_int_t)12));

    o.batch_size = 40;
    o.max_attempts = 2;
    o.backoff_ms = -1;
    memset(&ctl, 0, sizeof ctl);
    w = open_worker(log, &balances, target, &o);
    st = run_caught_up(w);
    assert_int_equal(st.dead_lettered, 3);
    s = dead_letters(target);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.waiting, 2);
    assert_int_equal(s.attempts, 2);
    assert_string_equal(s.first_stream, "acct-003");
    assert_contains(s.error, "Deposited of acct-003: \"amount\" is not an integer");
    /* acct-003 stands before its bad event; every other stream is whole
     * (acct-005 with its deposit of 11 after the record that is no event). */
    ref_cut_stream = "acct-003";
    ref_cut_version = v3;
    want = reference_rows(log, 8);
    ref_cut_stream = NULL;
    got = es_test_target_rows(path_or_url, pg, rows_sql);
    assert_rows(got, want);
    free(got);

    /* Skipped by an operator: the two that waited are applied, once. */
    assert_int_equal(es_projection_dead_letters_skip(target, "balances", "acct-003",
                                                     &n, &err), 0);
    assert_int_equal(n, 1);
    st = run_caught_up(w);
    assert_int_equal(st.retried, 2);
    assert_int_equal(st.dead_lettered, 0);
    s = dead_letters(target);
    assert_int_equal(s.failed + s.waiting, 0);
    assert_int_equal(s.skipped, 1);
    line = strstr(want, "acct-003|");
    assert_non_null(line);
    {
        char owner[32];
        long long bal, txns;
        assert_int_equal(sscanf(line, "acct-003|%31[^|]|%lld|%lld", owner, &bal,
                                &txns), 3);
        snprintf(row3, sizeof row3, "acct-003|%s|%lld|%lld\n", owner, bal + 70,
                 txns + 2);
    }
    got = es_test_target_rows(path_or_url, pg,
                      "SELECT id, owner, balance, txns FROM balances WHERE id = 'acct-003'");
    assert_string_equal(got, row3);
    free(got);
    /* The other rows did not move. */
    got = es_test_target_rows(path_or_url, pg,
                      "SELECT id, owner, balance, txns FROM balances WHERE id <> 'acct-003'"
                      " ORDER BY id");
    {
        char *rest = calloc(1, strlen(want) + 1), *eol = strchr(line, '\n');
        memcpy(rest, want, (size_t)(line - want));
        strcat(rest, eol + 1);
        assert_rows(got, rest);
        free(rest);
    }
    free(got);
    free(want);
    es_projection_worker_close(w);
    es_log_close(log);
}

static void test_bad_payloads_kafka_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(bad_payload_case, "badk");
}

static void test_bad_payloads_kafka_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(bad_payload_case, "proj");
}

/* A target that refuses a statement, with on_failure STOP: the message
 * names the projection, the event and what the target said; nothing of the
 * batch stays. */
static int on_bad(es_sql *sql, const es_event *ev, void *ud)
{
    es_sql_value p[] = {ES_SQL_STR(ev->stream_id)};
    (void)ud;
    return es_sql_exec(sql, "INSERT INTO no_such_table VALUES ($1)", p, 1);
}

static void test_refused_statement_stops(void **state)
{
    static const es_projection_handler bad_handlers[] = {
        {"AccountOpened", on_opened}, {"Deposited", on_bad}, {NULL, NULL}};
    es_projection bad = balances;
    const char *path = es_test_path("stop");
    char uri[600];
    es_log *log = es_test_open_fresh_log();
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w;
    es_projection_step st = {0};
    int rc;
    (void)state;

    bad.handlers = bad_handlers;
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    append1(log, "acct-1", "AccountOpened", json_pack("{s:s}", "owner", "Ada"));
    append1(log, "acct-1", "Deposited", json_pack("{s:I}", "amount", (json_int_t)7));
    o.on_failure = ES_PROJECTION_STOP;
    o.backoff_ms = -1;
    w = open_worker(log, &bad, uri, &o);
    rc = es_projection_worker_step(w, &st);
    assert_int_equal(rc, ES_EUSER);
    assert_contains(es_errmsg(w), "projection balances: account/acct-1 v2 Deposited");
    assert_contains(es_errmsg(w), "no such table: no_such_table");
    assert_int_equal(st.batches, 0);
    es_projection_worker_close(w);
    /* The batch rolled back: the account row is not there either. */
    {
        char *got = es_test_target_rows(path, 0, rows_sql);
        assert_string_equal(got, "");
        free(got);
    }
    es_log_close(log);
}

/* A statement the target refuses, on one stream, in dead-letter mode: on
 * PostgreSQL it fails inside the pipeline, the batch is done again event
 * by event, and only that stream's events are dead-lettered. */
static int on_deposited_bad_for_one(es_sql *sql, const es_event *ev, void *ud)
{
    if (strcmp(ev->stream_id, "acct-004") == 0) {
        es_sql_value p[] = {ES_SQL_STR(ev->stream_id)};
        (void)ud;
        return es_sql_exec(sql, "INSERT INTO no_such_table VALUES ($1)", p, 1);
    }
    return on_deposited(sql, ev, ud);
}

static void refused_in_batch_case(const char *target, const char *path_or_url,
                                  int pg)
{
    static const es_projection_handler h[] = {
        {"AccountOpened", on_opened}, {"Deposited", on_deposited_bad_for_one},
        {"Withdrawn", on_withdrawn}, {NULL, NULL}};
    es_projection p = balances;
    es_log *log = es_test_open_fresh_log();
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w;
    es_projection_step st;
    dl_seen s;
    char *got, *line;

    p.handlers = h;
    fill_log(log, 8, 240, 17);
    o.backoff_ms = -1;
    o.batch_size = 500;
    w = open_worker(log, &p, target, &o);
    st = run_caught_up(w);
    es_projection_worker_close(w);
    s = dead_letters(target);
    assert_int_equal(s.failed, 1);
    assert_string_equal(s.first_stream, "acct-004");
    assert_contains(s.error, "no_such_table");
    assert_int_equal(st.applied + st.dead_lettered, 240);
    assert_true(st.dead_lettered >= 1);
    /* Every other stream is right. */
    got = es_test_target_rows(path_or_url, pg, rows_sql);
    line = strstr(got, "acct-005|");
    assert_non_null(line);
    {
        char *want = reference_rows(log, 8), *wl = strstr(want, "acct-005|");
        assert_true(strncmp(line, wl, (size_t)(strchr(wl, '\n') - wl)) == 0);
        free(want);
    }
    free(got);
    es_log_close(log);
}

static void test_refused_in_batch_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(refused_in_batch_case, "refused");
}

static void test_refused_in_batch_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(refused_in_batch_case, "proj");
}

/* A fresh database on a server this test may stop and start; skips the
 * test when there is none. */
static const char *stoppable_pg_db(void)
{
    const char *url = es_test_pg_fresh_db_or_fail("proj");
    if (url == NULL || !es_test_pg_owned()) {
        print_message("no PostgreSQL this test may stop: %s\n",
                      url ? "ESFOLD_PG_URL is not ours to stop" : es_test_pg_why());
        skip();
    }
    return url;
}

/* PostgreSQL stopped and started between batches: a step fails with
 * ES_EIO, the run after the restart reconnects and goes on from the
 * checkpoint; nothing is lost or applied twice. A waiter's wait fails
 * with ES_EIO too, and its next wait connects again. */
static void test_postgres_stopped(void **state)
{
    const char *url = stoppable_pg_db();
    es_log *log;
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w;
    es_projection_waiter *wt = NULL;
    es_position last;
    es_projection_step st = {0};
    char *want, *got;
    int rc;
    (void)state;

    log = es_test_open_fresh_log();
    fill_log(log, 10, 300, 23);
    o.batch_size = 30;
    w = open_worker(log, &balances, url, &o);
    assert_int_equal(es_projection_worker_step(w, &st), 0);
    assert_true(st.applied > 0 && st.applied < 300);
    /* A waiter opened before the stop, on the last event. */
    assert_int_equal(es_projection_waiter_open(&wt, url, NULL), 0);
    last.partition = 1;
    assert_int_equal(es_log_head(log, &last.offset, "account", 1), 0);
    last.offset--;
    assert_int_equal(es_projection_waiter_wait(wt, "balances", "account", last, 0),
                     ES_ETIMEDOUT);
    assert_int_equal(es_test_pg_stop(), 0);
    rc = es_projection_worker_step(w, &st);
    assert_int_equal(rc, ES_EIO);
    assert_contains(es_errmsg(w), "projection balances");
    assert_int_equal(es_projection_waiter_wait(wt, "balances", "account", last, 0),
                     ES_EIO);
    assert_contains(es_errmsg(wt), "waiting for projection balances");
    assert_int_equal(es_test_pg_start(), 0);
    st = run_caught_up(w); /* the first step may still meet the old socket */
    es_projection_worker_close(w);
    /* The same waiter connects again. */
    rc = es_projection_waiter_wait(wt, "balances", "account", last, 0);
    if (rc != 0)
        fail_msg("wait after the restart: %s", es_errmsg(wt));
    es_projection_waiter_close(wt);
    want = reference_rows(log, 10);
    got = es_test_target_rows(url, 1, rows_sql);
    assert_rows(got, want);
    free(want);
    free(got);
    es_log_close(log);
}

/* PostgreSQL stopped and started while es_projection_worker_run runs (in a
 * child), inside a batch: the child's handler stops in the middle of one
 * (its transaction open) until the server is down. The batch is lost with
 * the connection, the run rides over the outage (its steps fail with
 * ES_EIO and are retried with backoff, reconnecting), catches up and
 * returns 0; every event applied once. */
static void test_postgres_restarted_during_run(void **state)
{
    const char *url = stoppable_pg_db();
    const char *log_uri = es_test_fresh_log_uri();
    es_log *log = NULL;
    int up[2], go[2], status;
    long long applied = -1;
    char b;
    pid_t pid;
    (void)state;

    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 10, 400, 29);
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(go), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        es_log *clog = NULL;
        es_projection_worker *w = NULL;
        es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
        es_projection_step total = {0, 0, 0, 0, 0, 0};
        int rc;
        ctl.gate_at = 70; /* inside the fourth batch of 20 movements */
        ctl.gate_up = up[1];
        ctl.gate_go = go[0];
        o.batch_size = 20;
        if (es_log_open(&clog, log_uri) != 0 ||
            es_projection_worker_open(&w, clog, &balances, url, &o) != 0)
            _exit(2);
        rc = es_projection_worker_run(w, NULL, 1, &total, NULL, NULL);
        if (rc != 0)
            fprintf(stderr, "run: %s\n", es_errmsg(w));
        applied = (long long)total.applied;
        if (write(up[1], &applied, sizeof applied) != (ssize_t)sizeof applied)
            _exit(5);
        _exit(rc == 0 ? 0 : 4);
    }
    close(up[1]);
    close(go[0]);
    assert_int_equal(read(up[0], &b, 1), 1); /* inside a batch */
    assert_int_equal(es_test_pg_stop(), 0);
    assert_int_equal(write(go[1], "g", 1), 1); /* it steps into the outage */
    assert_int_equal(es_test_pg_start(), 0);
    assert_int_equal(read(up[0], &applied, sizeof applied), (ssize_t)sizeof applied);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(up[0]);
    close(go[1]);
    assert_int_equal(applied, 400);
    assert_reference_rows(log, 10, url, 1);
    es_log_close(log);
}

/* ---- Read your writes --------------------------------------------------- */

/* A target that holds another version of a projection is refused, with
 * what to do about it. */
static void test_other_version_refused(void **state)
{
    const char *path = es_test_path("version");
    char uri[600];
    es_log *log = es_test_open_fresh_log();
    es_projection v2 = balances;
    es_projection_worker *w = NULL;
    (void)state;
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    es_projection_worker_close(open_worker(log, &balances, uri, NULL));
    v2.version = 2;
    assert_int_equal(es_projection_worker_open(&w, log, &v2, uri, NULL),
                     ES_ECONFLICT);
    assert_non_null(w);
    assert_contains(es_errmsg(w), "has version 1 of it, this is version 2: "
                                  "rebuild it (`esfold project rebuild balances "
                                  "--target sqlite:");
    es_projection_worker_close(w);
    es_log_close(log);
}

static void test_wait_for_position(void **state)
{
    const char *path = es_test_path("wait");
    char uri[600];
    es_log *log = es_test_open_fresh_log();
    es_projection_worker *w;
    es_append_result ar;
    es_event ev;
    es_error err;
    (void)state;

    snprintf(uri, sizeof uri, "sqlite:%s", path);
    w = open_worker(log, &balances, uri, NULL);
    memset(&ev, 0, sizeof ev);
    ev.type = "AccountOpened";
    ev.payload = json_pack("{s:s}", "owner", "Ada");
    assert_int_equal(es_log_append(log, &ar, "account", "acct-9", ES_EXPECT_ANY,
                                   &ev, 1), 0);
    json_decref(ev.payload);
    assert_int_equal(es_projection_wait(uri, "balances", "account", ar.last, 0,
                                        &err), ES_ETIMEDOUT);
    assert_contains(err.text, "has not applied");
    run_caught_up(w);
    assert_int_equal(es_projection_wait(uri, "balances", "account", ar.last, 0,
                                        &err), 0);
    /* The heartbeat is a row of its own, apart from the checkpoints. */
    {
        char *got = es_test_target_rows(path, 0, "SELECT state FROM es_proj_heartbeats");
        assert_string_equal(got, "running\n");
        free(got);
        es_projection_worker_close(w);
        got = es_test_target_rows(path, 0, "SELECT state, batches FROM es_proj_heartbeats");
        assert_string_equal(got, "stopped|1\n");
        free(got);
    }
    es_log_close(log);
}

/* Appends one Deposited of amount to id; its position. */
static es_position deposit(es_log *log, const char *id, json_int_t amount)
{
    es_append_result ar;
    es_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = "Deposited";
    ev.payload = json_pack("{s:I}", "amount", amount);
    if (es_log_append(log, &ar, "account", id, ES_EXPECT_ANY, &ev, 1) != 0)
        fail_msg("append: %s", es_errmsg(log));
    json_decref(ev.payload);
    return ar.last;
}

/*
 * A waiter opened once serves many waits: a wait before the worker got
 * there times out saying where the checkpoint is; once a worker (here,
 * in this process, and then one in a child while the wait runs) applied
 * the append, the wait returns and a query sees the write.
 */
static void waiter_case(const char *target, const char *path_or_url, int pg)
{
    const char *log_uri = es_test_fresh_log_uri();
    es_log *log = NULL;
    es_projection_worker *w;
    es_projection_waiter *wt = NULL;
    es_projection_waiter_options wo = ES_PROJECTION_WAITER_OPTIONS_INIT;
    es_position pos;
    char msg[200], *got;
    pid_t pid;
    int status, rc;

    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 5, 60, 77);
    {
        /* A target no worker has written to yet: the target's words. */
        es_position p0 = {0, 0};
        assert_int_equal(es_projection_waiter_open(&wt, target, NULL), 0);
        assert_int_equal(es_projection_waiter_wait(wt, "balances", "account", p0, 0),
                         ES_EIO);
        assert_contains(es_errmsg(wt), "waiting for projection balances: ");
        assert_contains(es_errmsg(wt), "es_proj_checkpoints");
        es_projection_waiter_close(wt);
        wt = NULL;
    }
    w = open_worker(log, &balances, target, NULL);
    run_caught_up(w);
    wo.max_poll_ms = 5;
    rc = es_projection_waiter_open(&wt, target, &wo);
    if (rc != 0)
        fail_msg("waiter open: %s", es_errmsg(wt));

    for (int i = 0; i < 10; i++) {
        pos = deposit(log, "acct-002", 1000000);
        /* Not applied yet: one look, then a bounded wait. */
        assert_int_equal(es_projection_waiter_wait(wt, "balances", "account",
                                                   pos, 0), ES_ETIMEDOUT);
        snprintf(msg, sizeof msg, "projection balances has not applied account "
                 "p%d@%lld after 0 ms (checkpoint %lld)", (int)pos.partition,
                 (long long)pos.offset, (long long)pos.offset);
        assert_contains(es_errmsg(wt), msg);
        if (i == 0) {
            assert_int_equal(es_projection_waiter_wait(wt, "balances", "account",
                                                       pos, 30), ES_ETIMEDOUT);
            assert_contains(es_errmsg(wt), "after 30 ms (checkpoint");
        }
        run_caught_up(w);
        assert_int_equal(es_projection_waiter_wait(wt, "balances", "account",
                                                   pos, 0), 0);
    }
    /* Read your write: the ten deposits are in the row. */
    got = es_test_target_rows(path_or_url, pg, "SELECT balance >= 10000000 FROM balances"
                      " WHERE id = 'acct-002'");
    assert_string_equal(got, pg ? "t\n" : "1\n");
    free(got);
    es_projection_worker_close(w);

    /* A worker in a child applies the append while the wait runs (the
     * bound only keeps a broken run from hanging the suite). */
    pos = deposit(log, "acct-003", 7);
    assert_int_equal(es_projection_waiter_wait(wt, "balances", "account", pos, 0),
                     ES_ETIMEDOUT);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        crash_child(log_uri, target);
    rc = es_projection_waiter_wait(wt, "balances", "account", pos, 60000);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (rc != 0)
        fail_msg("wait: %s", es_errmsg(wt));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_reference_rows(log, 5, path_or_url, pg);

    /* Arguments; the one-call form says the same as the handle. */
    assert_int_equal(es_projection_waiter_wait(wt, NULL, "account", pos, 0), ES_EINVAL);
    assert_contains(es_errmsg(wt), "a name, a type and a position are needed");
    {
        es_error err;
        es_position later = pos;
        later.offset += 1000;
        assert_int_equal(es_projection_wait(target, "balances", "account", later,
                                            0, &err), ES_ETIMEDOUT);
        snprintf(msg, sizeof msg, "has not applied account p%d@%lld after 0 ms "
                 "(checkpoint %lld)", (int)pos.partition, (long long)later.offset,
                 (long long)pos.offset + 1);
        assert_contains(err.text, msg);
        /* A projection the target does not have never gets there. */
        assert_int_equal(es_projection_waiter_wait(wt, "nope", "account", pos, 0),
                         ES_ETIMEDOUT);
        assert_contains(es_errmsg(wt), "(checkpoint 0)");
    }
    es_projection_waiter_close(wt);
    es_projection_waiter_close(NULL);
    es_log_close(log);
}

static void test_waiter_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(waiter_case, "waiter");
}

static void test_waiter_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(waiter_case, "proj");
}

/* ---- Projections as JSON files ------------------------------------------ */

/* The balances projection without C; the owner also passes through a
 * string literal that holds a '$' name, which must stay text. */
static const char balances_json[] =
    "{\"name\": \"balances\", \"version\": 1, \"follows\": [\"account\"],\n"
    " \"setup\": [\"CREATE TABLE balances (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " balance BIGINT NOT NULL, txns BIGINT NOT NULL, note TEXT)\"],\n"
    " \"on\": {\n"
    "  \"AccountOpened\": [\"INSERT INTO balances (id, owner, balance, txns, note)"
    " VALUES ($stream_id, $data.owner, 0, 0, '$stream_id -- not a parameter')\"],\n"
    "  \"Deposited\": [\"UPDATE balances SET balance = balance + $data.amount,"
    " txns = txns + 1 WHERE id = $stream_id\"],\n"
    "  \"Withdrawn\": [\"UPDATE balances SET balance = balance - $data.amount,"
    " txns = txns + 1 WHERE id = $stream_id -- $nothing here\"]}}";

static void json_projection_case(const char *target, const char *path_or_url,
                                 int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection *p = NULL;
    es_projection_worker *w;
    es_projection_step st;
    es_error err;
    char *want, *got;

    if (es_projection_load_json(&p, balances_json, "balances.json", &err) != 0)
        fail_msg("load: %s", err.text);
    assert_string_equal(p->name, "balances");
    fill_log(log, 12, 400, 9);
    w = open_worker(log, p, target, NULL);
    st = run_caught_up(w);
    assert_int_equal(st.applied, 400);
    es_projection_worker_close(w);
    want = reference_rows(log, 12);
    got = es_test_target_rows(path_or_url, pg, rows_sql);
    assert_rows(got, want);
    free(got);
    got = es_test_target_rows(path_or_url, pg, "SELECT DISTINCT note FROM balances");
    assert_string_equal(got, "$stream_id -- not a parameter\n");
    free(got);
    free(want);
    es_projection_free(p);
    es_log_close(log);
}

static void test_json_projection_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(json_projection_case, "json");
}

static void test_json_projection_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(json_projection_case, "proj");
}

/* Two followed types, a "*" handler, an upsert (ON CONFLICT .. DO UPDATE)
 * and an optional $meta path ($meta.tag?) that most events lack, on both
 * targets. */
static const char counts_json[] =
    "{\"name\": \"counts\", \"follows\": [\"account\", \"ledger\"],\n"
    " \"setup\": [\"CREATE TABLE counts (agg TEXT NOT NULL, type TEXT NOT NULL,"
    " n BIGINT NOT NULL, last_version BIGINT, tag TEXT, PRIMARY KEY (agg, type))\"],\n"
    " \"on\": {\"*\": \"INSERT INTO counts (agg, type, n, last_version, tag)"
    " VALUES ($aggregate_type, $type, 1, $version, $meta.tag?)"
    " ON CONFLICT (agg, type) DO UPDATE SET n = counts.n + 1,"
    " last_version = excluded.last_version, tag = excluded.tag\"}}";

static void counts_case(const char *target, const char *path_or_url, int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection *p = NULL;
    es_projection_worker *w;
    es_projection_step st;
    es_error err;
    es_event ev;
    char *got;

    assert_int_equal(es_projection_load_json(&p, counts_json, "counts.json", &err), 0);
    for (int i = 0; i < 30; i++) {
        memset(&ev, 0, sizeof ev);
        ev.type = i % 3 ? "Added" : "Removed";
        ev.payload = json_pack("{s:i}", "n", i);
        ev.meta = i == 29 ? json_pack("{s:s}", "tag", "last") : NULL;
        assert_int_equal(es_log_append(log, NULL, "ledger", "l-1", ES_EXPECT_ANY,
                                       &ev, 1), 0);
        json_decref(ev.payload);
        json_decref(ev.meta);
    }
    append1(log, "acct-000", "AccountOpened", json_pack("{s:s}", "owner", "Ada"));
    w = open_worker(log, p, target, NULL);
    st = run_caught_up(w);
    assert_int_equal(st.applied, 31);
    es_projection_worker_close(w);
    got = es_test_target_rows(path_or_url, pg, "SELECT agg, type, n, last_version,"
                      " coalesce(tag, '-') FROM counts ORDER BY agg, type");
    assert_string_equal(got, "account|AccountOpened|1|1|-\n"
                             "ledger|Added|20|30|last\n"
                             "ledger|Removed|10|28|-\n");
    free(got);
    es_projection_free(p);
    es_log_close(log);
}

static void test_upsert_two_types_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(counts_case, "counts");
}

static void test_upsert_two_types_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(counts_case, "proj");
}

static void load_fails(const char *text, const char *needle)
{
    es_projection *p = (es_projection *)1;
    es_error err;
    assert_int_equal(es_projection_load_json(&p, text, "x.json", &err), ES_EINVAL);
    assert_null(p);
    assert_contains(err.text, needle);
}

static void test_json_projection_errors(void **state)
{
    const char *path = es_test_path("proj");
    es_projection *p = NULL;
    es_error err;
    FILE *f;
    (void)state;

    load_fails("{", "x.json:");
    load_fails("{\"name\": \"a\", \"on\": {\"E\": [\"SELECT 1\"]}}",
               "\"follows\" must be a non-empty array");
    load_fails("{\"name\": \"a\", \"follows\": [\"t\"], \"on\": {\"E\": [\"UPDATE x SET a = $1\"]}}",
               "\"on\".\"E\"[0]: positional parameter $1");
    load_fails("{\"name\": \"a\", \"follows\": [\"t\"], \"on\": {\"E\": [\"UPDATE x SET a = $amount\"]}}",
               "unknown parameter $amount");
    load_fails("{\"name\": \"a\", \"follows\": [\"t\"], \"on\": {\"E\": [\"UPDATE x SET a = 'oops\"]}}",
               "unterminated string literal");
    load_fails("{\"name\": \"a\", \"follows\": [\"t\"], \"on\": {\"E\": [\"SELECT $$x$$\"]}}",
               "dollar quoting");
    load_fails("{\"name\": \"a b\", \"follows\": [\"t\"], \"on\": {\"E\": [\"SELECT 1\"]}}",
               "only letters");
    load_fails("{\"name\": \"a\", \"follows\": [\"t\"], \"on\": {\"E\": [\"SELECT 1\"]}, \"extra\": 1}",
               "unknown member \"extra\"");
    assert_int_equal(es_projection_load_file(&p, "/nonexistent/p.json", &err), ES_EIO);
    assert_contains(err.text, "/nonexistent/p.json: cannot open");
    f = fopen(path, "w");
    fputs(balances_json, f);
    fclose(f);
    assert_int_equal(es_projection_load_file(&p, path, &err), 0);
    assert_int_equal(p->version, 1);
    assert_string_equal(p->follows[0], "account");
    es_projection_free(p);
}

/* ---- The command -------------------------------------------------------- */

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


static void test_cli_project(void **state)
{
    const char *log_uri = es_test_fresh_log_uri();
    const char *file = es_test_path("balances.json");
    const char *out, *err;
    char target[600], *want, *got, *def = NULL;
    es_log *log = NULL;
    FILE *f;
    (void)state;

    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 6, 90, 21);
    /* The default target is next to the log. */
    assert_int_equal(es_projection_default_target(&def, "sqlite:/x/bank.db?partitions=2"), 0);
    assert_string_equal(def, "sqlite:/x/bank.projections.db");
    es_free(def);
    assert_int_equal(es_projection_default_target(&def, "kafka://h:1?prefix=p."), 0);
    assert_string_equal(def, ES_PROJECTION_DEFAULT_TARGET);
    es_free(def);

    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "list", NULL), 0);
    assert_contains(out, "balances  version 1  follows account");
    /* --json: one object (docs/cli.md) */
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "list", "--json", NULL), 0);
    {
        json_t *doc = json_loads(out, 0, NULL);
        assert_non_null(doc);
        assert_int_equal(json_integer_value(json_object_get(doc, "format")), 1);
        assert_int_equal(json_integer_value(json_object_get(doc, "projection_count")), 1);
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(doc, "projections"), 0),
                                "name")),
                            "balances");
        json_decref(doc);
    }
    /* A compiled-in projection, to the default target, as JSON lines. */
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "run", "balances",
                         "--until-caught-up", "--json", NULL), 0);
    assert_contains(out, "{\"format\":1,\"projection\":\"balances\",\"applied\":90,");
    assert_contains(out, "\"caught_up\":true,\"stopped\":true}");
    snprintf(target, sizeof target, "%.*s.projections.db",
             (int)(strlen(log_uri) - 7 - 3), log_uri + 7);
    want = reference_rows(log, 6);
    got = es_test_target_rows(target, 0, rows_sql);
    assert_rows(got, want);
    free(got);
    free(want);
    /* A JSON file to another target. */
    f = fopen(file, "w");
    fputs(balances_json, f);
    fclose(f);
    snprintf(target, sizeof target, "sqlite:%s", es_test_path("clitarget"));
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "run", "--file", file,
                         "--target", target, "--until-caught-up", NULL), 0);
    assert_contains(out, "balances: 90 applied, 0 skipped, 0 dead-lettered");
    /* Sharing by a lease (the SQLite log has no groups). */
    snprintf(target, sizeof target, "sqlite:%s", es_test_path("clishare"));
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "run", "--file", file,
                         "--target", target, "--until-caught-up", "--share",
                         "--lease-ms", "5000", NULL), 0);
    assert_contains(out, "balances: 90 applied, 0 skipped, 0 dead-lettered");
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "run", "balances",
                         "--lease-ms", "5000", NULL), 2);
    assert_contains(err, "--lease-ms is for run --share");
    /* Errors. */
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "run", "nope", NULL), 1);
    assert_contains(err, "no projection 'nope' is compiled into bank");
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "run", NULL), 2);
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "run", "balances",
                         "--target", "mysql://x", "--until-caught-up", NULL), 1);
    assert_contains(err, "unknown projection target URI scheme");

    /* Dead letters through the command. */
    memset(&ctl, 0, sizeof ctl);
    ctl.fail_stream = "acct-002";
    snprintf(target, sizeof target, "sqlite:%s", es_test_path("dltarget"));
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "run", "balances",
                         "--target", target, "--until-caught-up", NULL), 0);
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "deadletters", "list", "balances",
                         "--target", target, NULL), 0);
    assert_contains(out, "account/acct-002 v2 ");
    assert_contains(out, "failed  attempts 3");
    assert_contains(out, "refusing");
    assert_contains(out, "waiting  attempts 0");
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "deadletters", "list", "balances",
                         "--target", target, "--json", NULL), 0);
    {
        /* one object: the dead letters in an array */
        json_t *doc = json_loads(out, 0, NULL), *first;
        assert_non_null(doc);
        assert_int_equal(json_integer_value(json_object_get(doc, "format")), 1);
        assert_true(json_integer_value(json_object_get(doc, "dead_letter_count")) >= 2);
        first = json_array_get(json_object_get(doc, "dead_letters"), 0);
        assert_string_equal(json_string_value(json_object_get(first, "status")), "failed");
        {
            /* When it last changed, as ISO 8601 UTC (it was empty). */
            int64_t us = 0;
            es_error terr;
            const char *at = json_string_value(json_object_get(first, "updated_at"));
            assert_non_null(at);
            if (es_time_parse(&us, at, &terr) != 0)
                fail_msg("updated_at \"%s\": %s", at, terr.text);
            assert_true(us > 0);
        }
        json_decref(doc);
    }
    ctl.fail_stream = NULL;
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "deadletters", "skip", "balances",
                         "--target", target, "--stream", "acct-002", NULL), 0);
    assert_contains(out, "1 failed dead letter(s) of balances marked skipped");
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "run", "balances",
                         "--target", target, "--until-caught-up", NULL), 0);
    {
        char expect[64];
        snprintf(expect, sizeof expect, "0 dead-lettered, %d retried",
                 movements_of(log, "acct-002") - 1);
        assert_contains(out, expect);
    }
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "deadletters", "list", "balances",
                         "--target", target, NULL), 0);
    assert_contains(out, "skipped  attempts 3");
    assert_true(strstr(out, "waiting") == NULL);
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "deadletters", "retry", "balances",
                         "--target", target, NULL), 0);
    assert_contains(out, "0 failed dead letter(s)");
    es_log_close(log);
}

/* SIGTERM: the run stops after its batch, exits 0, and says so in its
 * heartbeat row. */
static void test_cli_sigterm(void **state)
{
    const char *log_uri = es_test_fresh_log_uri();
    const char *path = es_test_path("sigterm");
    char target[600], *got;
    es_log *log = NULL;
    es_append_result ar;
    es_error err;
    es_event ev;
    pid_t pid;
    int status;
    (void)state;

    snprintf(target, sizeof target, "sqlite:%s", path);
    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 5, 50, 4);
    /* The tables exist before the child runs, for the wait below. */
    es_projection_worker_close(open_worker(log, &balances, target, NULL));
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"bank", "--log", (char *)log_uri, "project", "run",
                        "balances", "--target", target, NULL};
        if (freopen("/dev/null", "w", stdout) == NULL)
            _exit(5);
        _exit(run_cli(8, argv, NULL));
    }
    memset(&ev, 0, sizeof ev);
    ev.type = "Deposited";
    ev.payload = json_pack("{s:I}", "amount", (json_int_t)1);
    assert_int_equal(es_log_append(log, &ar, "account", "acct-001", ES_EXPECT_ANY,
                                   &ev, 1), 0);
    json_decref(ev.payload);
    /* It follows the log: the append shows up (the bound only keeps a
     * broken run from hanging the suite). */
    if (es_projection_wait(target, "balances", "account", ar.last, 60000, &err) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("wait: %s", err.text);
    }
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    {
        char q[128];
        snprintf(q, sizeof q, "SELECT state FROM es_proj_heartbeats WHERE pid = %ld",
                 (long)pid);
        got = es_test_target_rows(path, 0, q);
    }
    assert_string_equal(got, "stopped\n");
    free(got);
    es_log_close(log);
}

/* `project run` started while PostgreSQL is down waits for it (backoff,
 * the reason on stderr) and goes on once it is up; with --until-caught-up
 * it fails at once instead. */
static void test_cli_waits_for_target(void **state)
{
    const char *url = es_test_pg_fresh_db_or_fail("proj");
    const char *log_uri = es_test_fresh_log_uri();
    const char *out, *err_text;
    es_log *log = NULL;
    es_error err;
    int64_t next;
    pid_t pid;
    int status, up;
    (void)state;

    if (url == NULL || !es_test_pg_owned()) {
        print_message("no PostgreSQL this test may stop: %s\n",
                      url ? "ESFOLD_PG_URL is not ours to stop" : es_test_pg_why());
        skip();
    }
    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 5, 40, 4);
    /* The tables exist before, for the waits below (a waiter on a target
     * no worker has set up says so, ES_EIO). */
    es_projection_worker_close(open_worker(log, &balances, url, NULL));
    assert_int_equal(es_test_pg_stop(), 0);
    assert_int_equal(es_test_cli(run_cli, &out, &err_text, log_uri, "project", "run",
                                 "balances", "--target", url, "--until-caught-up",
                                 NULL), 1);
    assert_contains(err_text, "cannot connect");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"bank", "--log", (char *)log_uri, "project", "run",
                        "balances", "--target", (char *)url, NULL};
        if (freopen("/dev/null", "w", stdout) == NULL ||
            freopen("/dev/null", "w", stderr) == NULL)
            _exit(5);
        _exit(run_cli(8, argv, NULL));
    }
    sleep(1); /* it is retrying now (no timing is asserted) */
    if (waitpid(pid, &status, WNOHANG) == pid)
        fail_msg("project run gave up on the target it could not reach "
                 "(exit %d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    up = es_test_pg_start();
    if (up != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("pg start failed");
    }
    for (int32_t q = 0; q < 4; q++) {
        es_position last;
        assert_int_equal(es_log_head(log, &next, "account", q), 0);
        if (next == 0)
            continue;
        last.partition = q;
        last.offset = next - 1;
        assert_int_equal(es_projection_wait(url, "balances", "account", last,
                                            60000, &err), 0);
    }
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    {
        char *want = reference_rows(log, 5), *got = es_test_target_rows(url, 1, rows_sql);
        assert_rows(got, want);
        free(want);
        free(got);
    }
    es_log_close(log);
}

/* ---- Allocation failures ------------------------------------------------ */

static long alloc_calls, fail_at;
static int fail_all_after;

static void *failing_malloc(size_t n)
{
    alloc_calls++;
    if (alloc_calls == fail_at || (fail_all_after && alloc_calls > fail_at))
        return NULL;
    return malloc(n);
}

static void inject(long n, int persistent)
{
    alloc_calls = 0;
    fail_at = n;
    fail_all_after = persistent;
    es_set_allocator(failing_malloc, free);
}

static void restore_allocator(void)
{
    es_set_allocator(NULL, NULL);
}

/*
 * The Nth allocation of a worker's pass failing (once, or from then on):
 * the pass fails with a message or succeeds, and either way a later pass
 * leaves rows equal to the reference fold: nothing lost, nothing applied
 * twice. Also the JSON loader, which must fail cleanly (no leak under
 * ASan).
 */
static void test_alloc_failures(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection *jp = NULL;
    es_error err;
    char *want;
    long normal;
    (void)state;

    fill_log(log, 3, 12, 41);
    want = reference_rows(log, 3);
    o.backoff_ms = -1;
    /* How many allocations a pass makes. */
    {
        const char *path = es_test_path("oom");
        char uri[600];
        es_projection_worker *w;
        snprintf(uri, sizeof uri, "sqlite:%s", path);
        w = open_worker(log, &balances, uri, &o);
        inject(0, 0);
        assert_int_equal(es_projection_worker_step(w, NULL), 0);
        restore_allocator();
        normal = alloc_calls;
        es_projection_worker_close(w);
    }
    assert_true(normal > 10);
    for (int persistent = 0; persistent < 2; persistent++)
        for (long n = 1; n <= normal; n++) {
            const char *path = es_test_path("oom");
            char uri[600], *got;
            es_projection_worker *w;
            int rc;
            snprintf(uri, sizeof uri, "sqlite:%s", path);
            w = open_worker(log, &balances, uri, &o);
            inject(n, persistent);
            rc = es_projection_worker_step(w, NULL);
            restore_allocator();
            if (rc != 0) {
                assert_true(rc < 0);
                assert_true(es_errmsg(w)[0] != '\0');
            }
            run_caught_up(w);
            es_projection_worker_close(w);
            got = es_test_target_rows(path, 0, rows_sql);
            if (strcmp(got, want) != 0)
                fail_msg("allocation %ld failing%s: rows differ:\n%s--- want\n%s",
                         n, persistent ? " (and after)" : "", got, want);
            free(got);
        }
    free(want);
    /* The loader. */
    inject(0, 0);
    assert_int_equal(es_projection_load_json(&jp, balances_json, "b.json", &err), 0);
    restore_allocator();
    normal = alloc_calls;
    es_projection_free(jp);
    for (long n = 1; n <= normal; n++) {
        int rc;
        jp = NULL;
        inject(n, 0);
        rc = es_projection_load_json(&jp, balances_json, "b.json", &err);
        restore_allocator();
        if (rc != 0) {
            assert_null(jp);
            assert_true(rc == ES_ENOMEM || rc == ES_EINVAL);
        }
        es_projection_free(jp);
    }
    es_log_close(log);
}

/* ---- Scale-out: the lease, the consumer group ---------------------------- */

/* The lease worker A runs in a child: after a few batches it reports on
 * fd and goes on slowly (each step renews the lease) until it is killed. */
typedef struct slow_ctl {
    int fd;
    int told;
} slow_ctl;

static int slow_progress(const es_projection_step *total, void *ud)
{
    slow_ctl *c = ud;
    if (total->batches >= 3 && !c->told) {
        if (write(c->fd, "x", 1) != 1)
            _exit(3);
        c->told = 1;
    }
    if (c->told)
        usleep(50000);
    return 0;
}

/* Forks a worker of balances with o (as worker_id) that runs until it is
 * killed, and returns once it has committed a few batches. */
static pid_t fork_slow_worker(const char *log_uri, const char *target,
                              es_projection_worker_options o,
                              const char *worker_id)
{
    char buf[1];
    int fds[2];
    pid_t pid;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        es_log *clog = NULL;
        es_projection_worker *c = NULL;
        slow_ctl sc = {fds[1], 0};
        close(fds[0]);
        o.worker_id = worker_id;
        if (es_log_open(&clog, log_uri) != 0 ||
            es_projection_worker_open(&c, clog, &balances, target, &o) != 0)
            _exit(2);
        (void)es_projection_worker_run(c, NULL, 0, NULL, slow_progress, &sc);
        _exit(1); /* runs until killed */
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], buf, 1), 1);
    close(fds[0]);
    return pid;
}

static void kill_child(pid_t pid)
{
    int status;
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
}

static void test_lease_takeover_sqlite(void **state)
{
    const char *log_uri = es_test_fresh_log_uri();
    const char *path = es_test_path("lease");
    char target[600], *got;
    es_log *log = NULL;
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *b;
    es_projection_step total = {0, 0, 0, 0, 0, 0};
    const char *waiting;
    int took = 0;
    pid_t pid;
    (void)state;

    snprintf(target, sizeof target, "sqlite:%s", path);
    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 25, 700, 41);
    o.batch_size = 10;
    o.share = ES_PROJECTION_SHARE_AUTO; /* the SQLite log has no groups */
    o.lease_ms = 2000;
    pid = fork_slow_worker(log_uri, target, o, "worker-A"); /* holds it */

    o.worker_id = "worker-B";
    b = open_worker(log, &balances, target, &o);
    {
        es_projection_step st = {0, 0, 0, 0, 0, 0};
        assert_int_equal(es_projection_worker_step(b, &st), 0);
        assert_int_equal(st.applied, 0);
        assert_int_equal(st.caught_up, 0);
        assert_int_equal(es_projection_worker_owns(b, "account", 0), 0);
        waiting = es_projection_worker_waiting(b);
        assert_non_null(waiting);
        assert_contains(waiting, "waiting for the lease held by worker-A");
    }
    kill_child(pid);

    /* B takes over once A's lease has run out, and finishes. */
    for (int i = 0; i < 3000; i++) {
        es_projection_step st = {0, 0, 0, 0, 0, 0};
        assert_int_equal(es_projection_worker_step(b, &st), 0);
        total.applied += st.applied;
        took |= es_projection_worker_owns(b, "account", 0);
        if (st.caught_up)
            break;
        usleep(10000);
    }
    assert_true(took);
    assert_null(es_projection_worker_waiting(b));
    assert_true(total.applied > 0 && total.applied < 700);
    es_projection_worker_close(b);
    assert_reference_rows(log, 25, path, 0);
    {
        /* B gave the lease up on close: it expires at once. */
        got = es_test_target_rows(path, 0, "SELECT expires_us FROM es_proj_leases");
        assert_string_equal(got, "0\n");
        free(got);
    }
    es_log_close(log);
}

/* Which partitions of "account" w owns, as a bit set. */
static unsigned owned_set(es_projection_worker *w, int32_t n)
{
    unsigned set = 0;
    for (int32_t p = 0; p < n; p++)
        if (es_projection_worker_owns(w, "account", p))
            set |= 1u << p;
    return set;
}

static void step_ok(es_projection_worker *w, es_projection_step *total)
{
    int rc = es_projection_worker_step(w, total);
    if (rc != 0)
        fail_msg("step: %s (%s)", es_errmsg(w), es_strerror(rc));
}

/* A holds the lease, B waits; A closes (giving the lease up) and B goes on
 * from A's checkpoints at once, without waiting for the expiry. */
static void lease_handover(const char *target, const char *path_or_url, int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *a, *b;
    es_projection_step ta = {0, 0, 0, 0, 0, 0}, tb = {0, 0, 0, 0, 0, 0};
    int i;

    fill_log(log, 10, 300, 47);
    o.batch_size = 20;
    o.share = ES_PROJECTION_SHARE_LEASE;
    o.lease_ms = 600000; /* the handover cannot be an expiry */
    o.worker_id = "worker-A";
    a = open_worker(log, &balances, target, &o);
    o.worker_id = "worker-B";
    b = open_worker(log, &balances, target, &o);
    step_ok(a, &ta);
    step_ok(b, &tb);
    assert_true(ta.applied > 0);
    assert_int_equal(tb.applied, 0);
    assert_null(es_projection_worker_waiting(a));
    assert_contains(es_projection_worker_waiting(b),
                    "waiting for the lease held by worker-A");
    step_ok(a, &ta);
    es_projection_worker_close(a);
    for (i = 0; i < 1000; i++) {
        es_projection_step st = {0, 0, 0, 0, 0, 0};
        step_ok(b, &st);
        tb.applied += st.applied;
        if (st.caught_up)
            break;
        usleep(10000);
    }
    assert_null(es_projection_worker_waiting(b));
    assert_true(tb.applied > 0);
    assert_int_equal(ta.applied + tb.applied, 300);
    es_projection_worker_close(b);
    assert_reference_rows(log, 10, path_or_url, pg);
    es_log_close(log);
}

static void test_lease_handover_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(lease_handover, "handover");
}

static void test_lease_handover_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(lease_handover, "proj");
}

static void test_group_kafka(void **state)
{
    const char *log_uri = es_test_kafka_uri("partitions=4");
    const char *path = es_test_path("group");
    char target[600];
    es_log *log = NULL;
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *a, *b;
    es_projection_step ta = {0, 0, 0, 0, 0, 0}, tb = {0, 0, 0, 0, 0, 0};
    unsigned sa = 0, sb = 0, all;
    int32_t n = 0;
    int i;
    (void)state;

    snprintf(target, sizeof target, "sqlite:%s", path);
    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 20, 400, 43);
    assert_int_equal(es_log_partition_count(log, &n, "account"), 0);
    assert_true(n >= 2 && n <= 16);
    all = (1u << n) - 1;
    o.batch_size = 5;
    o.share = ES_PROJECTION_SHARE_AUTO;
    o.lease_ms = 3000;
    o.worker_id = "worker-A";
    a = open_worker(log, &balances, target, &o);
    o.worker_id = "worker-B";
    b = open_worker(log, &balances, target, &o);

    /* Both step until the group has split the partitions between them. */
    for (i = 0; i < 6000; i++) {
        step_ok(a, &ta);
        step_ok(b, &tb);
        sa = owned_set(a, n);
        sb = owned_set(b, n);
        if (sa && sb && (sa | sb) == all && (sa & sb) == 0)
            break;
        usleep(10000);
    }
    if (!(sa && sb && (sa | sb) == all && (sa & sb) == 0))
        fail_msg("no split of the %d partitions: A %#x, B %#x", (int)n, sa, sb);
    /* A few steps of both on their own halves. */
    for (i = 0; i < 3; i++) {
        step_ok(a, &ta);
        step_ok(b, &tb);
        assert_int_equal(owned_set(a, n) & owned_set(b, n), 0);
    }
    /* A leaves; B gets every partition and catches up, new events too. */
    es_projection_worker_close(a);
    for (int k = 0; k < 60; k++) {
        char id[32];
        snprintf(id, sizeof id, "acct-%03d", k % 20);
        append1(log, id, "Deposited", json_pack("{s:I}", "amount", (json_int_t)(k + 1)));
    }
    for (i = 0; i < 6000; i++) {
        es_projection_step st = {0, 0, 0, 0, 0, 0};
        step_ok(b, &st);
        tb.applied += st.applied;
        if (owned_set(b, n) == all && st.caught_up)
            break;
        usleep(10000);
    }
    assert_int_equal(owned_set(b, n), all);
    /* Each event applied once, by one of them. */
    assert_int_equal(ta.applied + tb.applied, 460);
    es_projection_worker_close(b);
    assert_reference_rows(log, 20, path, 0);
    es_log_close(log);
}

/* A member of the group SIGKILLed (in a child, possibly inside a batch):
 * its partitions come to the other worker once its session runs out; its
 * half-done batch was rolled back whole, so every event is applied once. */
static void test_group_member_killed_kafka(void **state)
{
    const char *log_uri = es_test_kafka_uri("partitions=4");
    const char *path = es_test_path("groupkill");
    char target[600];
    es_log *log = NULL;
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w;
    es_projection_step total = {0, 0, 0, 0, 0, 0};
    unsigned set = 0, all;
    int32_t n = 0;
    int i;
    pid_t pid;
    (void)state;

    snprintf(target, sizeof target, "sqlite:%s", path);
    assert_int_equal(es_log_open(&log, log_uri), 0);
    fill_log(log, 20, 400, 53);
    assert_int_equal(es_log_partition_count(log, &n, "account"), 0);
    all = (1u << n) - 1;
    o.batch_size = 5;
    o.share = ES_PROJECTION_SHARE_AUTO;
    o.lease_ms = 3000;
    pid = fork_slow_worker(log_uri, target, o, "worker-C"); /* at work */
    o.worker_id = "worker-P";
    w = open_worker(log, &balances, target, &o);
    for (i = 0; i < 6000; i++) {
        step_ok(w, &total);
        set = owned_set(w, n);
        if (set && set != all)
            break; /* the group split the partitions with C */
        usleep(10000);
    }
    if (!(set && set != all))
        fail_msg("no split with the child: P owns %#x", set);
    kill_child(pid);
    for (int k = 0; k < 40; k++) {
        char id[32];
        snprintf(id, sizeof id, "acct-%03d", k % 20);
        append1(log, id, "Withdrawn", json_pack("{s:I}", "amount", (json_int_t)1));
    }
    for (i = 0; i < 6000; i++) {
        es_projection_step st = {0, 0, 0, 0, 0, 0};
        step_ok(w, &st);
        if (owned_set(w, n) == all && st.caught_up)
            break;
        usleep(10000);
    }
    assert_int_equal(owned_set(w, n), all);
    es_projection_worker_close(w);
    assert_reference_rows(log, 20, path, 0);
    es_log_close(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite_target),
        cmocka_unit_test(test_postgres_target),
        cmocka_unit_test(test_two_workers_fenced_sqlite),
        cmocka_unit_test(test_two_workers_fenced_postgres),
        cmocka_unit_test(test_two_workers_fenced_kafka_sqlite),
        cmocka_unit_test(test_two_workers_fenced_kafka_postgres),
        cmocka_unit_test(test_crash_sqlite),
        cmocka_unit_test(test_crash_postgres),
        cmocka_unit_test(test_crash_kafka_log_sqlite),
        cmocka_unit_test(test_crash_kafka_log_postgres),
        cmocka_unit_test(test_resume_rows_sqlite),
        cmocka_unit_test(test_resume_rows_postgres),
        cmocka_unit_test(test_dead_letters_sqlite),
        cmocka_unit_test(test_dead_letters_postgres),
        cmocka_unit_test(test_bad_payloads_kafka_sqlite),
        cmocka_unit_test(test_bad_payloads_kafka_postgres),
        cmocka_unit_test(test_refused_statement_stops),
        cmocka_unit_test(test_refused_in_batch_sqlite),
        cmocka_unit_test(test_refused_in_batch_postgres),
        cmocka_unit_test(test_postgres_stopped),
        cmocka_unit_test(test_postgres_restarted_during_run),
        cmocka_unit_test(test_wait_for_position),
        cmocka_unit_test(test_waiter_sqlite),
        cmocka_unit_test(test_waiter_postgres),
        cmocka_unit_test(test_json_projection_sqlite),
        cmocka_unit_test(test_json_projection_postgres),
        cmocka_unit_test(test_json_projection_errors),
        cmocka_unit_test(test_upsert_two_types_sqlite),
        cmocka_unit_test(test_upsert_two_types_postgres),
        cmocka_unit_test(test_cli_project),
        cmocka_unit_test(test_other_version_refused),
        cmocka_unit_test(test_cli_sigterm),
        cmocka_unit_test(test_cli_waits_for_target),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_lease_takeover_sqlite),
        cmocka_unit_test(test_lease_handover_sqlite),
        cmocka_unit_test(test_lease_handover_postgres),
        cmocka_unit_test(test_group_kafka),
        cmocka_unit_test(test_group_member_killed_kafka),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
