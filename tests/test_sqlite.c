/*
 * tests/test_sqlite.c - the SQLite adapters (adapters/sqlite/): what they
 * do with damaged, foreign, empty and missing files, racing creators, bad
 * names and full disks, seen through the library and the esfold command.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "esfold/esfold.h"
#include "harness.h"

/* ---- helpers ------------------------------------------------------------- */

static const char *out, *err;

static int cli_fn(int argc, char **argv, void *user_data)
{
    (void)user_data;
    return es_cli_main(argc, argv, NULL);
}

/* Runs `esfold --log uri ARGS...` (ended by NULL) with stdin from
 * /dev/null or from `input`; returns the exit status, out/err set. */
static int run_in(const char *uri, const char *input, ...)
{
    char *argv[32];
    int argc = 0, status;
    va_list ap;
    argv[argc++] = "esfold";
    argv[argc++] = "--log";
    argv[argc++] = (char *)uri;
    va_start(ap, input);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    if (input) {
        const char *path = es_test_path("stdin");
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(input, f);
        fclose(f);
        assert_non_null(freopen(path, "r", stdin));
    } else {
        assert_non_null(freopen("/dev/null", "r", stdin));
    }
    status = es_test_capture(cli_fn, argc, argv, NULL, &out, &err);
    assert_non_null(freopen("/dev/null", "r", stdin));
    return status;
}
#define run(uri, ...) run_in((uri), NULL, __VA_ARGS__, NULL)
#define run_input(uri, input, ...) run_in((uri), (input), __VA_ARGS__, NULL)

static void raw_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        print_error("%s: %s\n", sql, msg);
        fail();
    }
    sqlite3_close(db);
}

static int64_t sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The whole content of a file (malloc'd, *size set). */
static char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static es_event event_of(const char *type, json_t *payload)
{
    es_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.payload = payload;
    return ev;
}

/* "sqlite:" path (lives until exit). */
static const char *uri_of(const char *path)
{
    static char uris[64][600];
    static int n;
    assert_true(n < 64);
    snprintf(uris[n], sizeof uris[n], "sqlite:%s", path);
    return uris[n++];
}

/* A log file at a fresh path with three streams of two events. */
static const char *log_with_streams(const char **path_out)
{
    const char *path = es_test_path("log");
    const char *uri = uri_of(path);
    es_log *log = NULL;
    char buf[64];
    assert_int_equal(es_log_open(&log, uri), 0);
    for (int s = 0; s < 3; s++) {
        json_t *p = json_pack("{s:i}", "n", s);
        es_event evs[2] = {event_of("Opened", p), event_of("Noted", p)};
        snprintf(buf, sizeof buf, "s-%d", s);
        assert_int_equal(es_log_append(log, NULL, "thing", buf, 0, evs, 2), 0);
        json_decref(p);
    }
    es_log_close(log);
    *path_out = path;
    return uri;
}

typedef struct found {
    int n;
    char kinds[512];
    char text[8192];
} found;

static int on_problem(const char *kind, const char *message, void *user_data)
{
    found *f = user_data;
    f->n++;
    snprintf(f->kinds + strlen(f->kinds), sizeof f->kinds - strlen(f->kinds),
             "%s ", kind);
    snprintf(f->text + strlen(f->text), sizeof f->text - strlen(f->text),
             "%s\n", message);
    return 0;
}

/* es_log_check of uri, opened read-only. */
static found check(const char *uri)
{
    char ro[700];
    es_log *log = NULL;
    found f;
    memset(&f, 0, sizeof f);
    snprintf(ro, sizeof ro, "%s?mode=ro", uri);
    assert_int_equal(es_log_open(&log, ro), 0);
    assert_int_equal(es_log_check(log, on_problem, &f), 0);
    es_log_close(log);
    return f;
}

/* ---- 1. verify checks the file and its tables ----------------------------- */

static void test_clean_log_has_no_problem(void **state)
{
    const char *path, *uri = log_with_streams(&path);
    found f = check(uri);
    (void)state;
    assert_int_equal(f.n, 0);
    assert_int_equal(run(uri, "verify"), 0);
    assert_contains(out, "verify: OK: 1 type");
}

/* The root page of the index es_events_stream overwritten: reads of a
 * stream fail, and verify must say so. */
static void test_damaged_index_fails_verify(void **state)
{
    const char *path, *uri = log_with_streams(&path);
    int64_t root = sql_int(path, "SELECT rootpage FROM sqlite_master "
                                 "WHERE name = 'es_events_stream'");
    int64_t page = sql_int(path, "PRAGMA page_size");
    char garbage[65536];
    found f;
    int fd;
    (void)state;
    memset(garbage, 0x5a, sizeof garbage);
    assert_true(page <= (int64_t)sizeof garbage);
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, garbage, (size_t)page, (root - 1) * page), page);
    close(fd);

    assert_int_not_equal(run(uri, "history", "thing", "s-1"), 0);
    f = check(uri);
    assert_true(f.n >= 1);
    assert_contains(f.kinds, "integrity");
    assert_contains(f.text, "the file is damaged");
    assert_int_equal(run(uri, "verify"), 1);
    assert_contains(out, "integrity: sqlite:");
    assert_contains(out, "the file is damaged");
    assert_contains(out, "verify: FAILED");
    assert_int_equal(run(uri, "verify", "--json"), 1);
    assert_contains(out, "\"kind\": \"integrity\"");
}

static void test_tables_that_disagree_fail_verify(void **state)
{
    const char *path, *uri = log_with_streams(&path);
    found f;
    (void)state;
    raw_sql(path, "UPDATE es_streams SET version = 1 WHERE stream_id = 's-1';"
                  "DELETE FROM es_streams WHERE stream_id = 's-2';"
                  "INSERT INTO es_streams VALUES ('thing', 'ghost', 4);"
                  "UPDATE es_partitions SET next_offset = next_offset - 1;");
    f = check(uri);
    assert_contains(f.text, "es_streams says thing/s-1 is at version 1, its "
                            "events go up to version 2");
    assert_contains(f.text, "thing/s-2 has events up to version 2 but no row "
                            "in es_streams");
    assert_contains(f.text, "es_streams says thing/ghost is at version 4, but "
                            "it has no events");
    assert_contains(f.text, "es_partitions says the next offset of thing "
                            "partition");
    assert_contains(f.kinds, "partitions");
    assert_int_equal(run(uri, "verify"), 1);
    assert_contains(out, "streams: sqlite:");
    assert_contains(out, "partitions: sqlite:");
    assert_contains(out, "verify: FAILED: ");
}

/* ---- 5. reading commands write nothing; foreign files are left alone ---- */

static void assert_unchanged(const char *path, const char *before, size_t n)
{
    size_t m;
    char *now = slurp(path, &m);
    assert_int_equal(m, n);
    assert_memory_equal(now, before, n);
    free(now);
}

static void test_reading_an_empty_file_writes_nothing(void **state)
{
    const char *path = es_test_path("empty");
    const char *uri = uri_of(path);
    char snap[700];
    struct stat st;
    FILE *f = fopen(path, "w");
    (void)state;
    fclose(f);
    snprintf(snap, sizeof snap, "--snapshots=%s", uri);
    assert_int_equal(run(uri, "verify"), 1);
    assert_contains(err, "not an esfold database: the file is empty");
    assert_int_equal(run(uri, "history", "thing", "s-1"), 1);
    assert_contains(err, "not an esfold database");
    assert_int_equal(run(uri, "snapshot", "list", "thing", "s-1", snap), 1);
    assert_contains(err, "not an esfold database");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
}

static void test_reading_a_log_writes_nothing(void **state)
{
    const char *path, *uri = log_with_streams(&path);
    char *before;
    size_t n;
    (void)state;
    before = slurp(path, &n);
    assert_int_equal(run(uri, "verify"), 0);
    assert_int_equal(run(uri, "history", "thing", "s-1"), 0);
    assert_unchanged(path, before, n);
    free(before);
    /* A mode in the URI is the URI's; only ro and rw exist. */
    {
        char with[700];
        es_log *log = NULL;
        snprintf(with, sizeof with, "%s?mode=rw", uri);
        assert_int_equal(run(with, "verify"), 0);
        snprintf(with, sizeof with, "%s?mode=ro", uri);
        assert_int_equal(run(with, "history", "thing", "s-1"), 0);
        assert_int_equal(es_log_open(&log, with), 0);
        {
            json_t *p = json_object();
            es_event ev = event_of("Noted", p);
            /* read-only: the append fails, and says so */
            assert_int_equal(es_log_append(log, NULL, "thing", "s-1",
                                           ES_EXPECT_ANY, &ev, 1), ES_EIO);
            assert_contains(es_errmsg(log), "readonly");
            json_decref(p);
        }
        es_log_close(log);
        log = NULL;
        snprintf(with, sizeof with, "%s?mode=wr", uri);
        assert_int_equal(es_log_open(&log, with), ES_EINVAL);
        assert_contains(es_errmsg(log), "mode must be ro or rw, not 'wr'");
        es_log_close(log);
    }
}

static void test_foreign_databases_are_left_untouched(void **state)
{
    static const char *const schemas[] = {
        /* its own es_meta, with other columns */
        "CREATE TABLE es_meta (k TEXT, v TEXT); CREATE TABLE orders (id INT);"
        "INSERT INTO es_meta VALUES ('owner', 'billing')",
        /* es_meta(key, value) but nothing of esfold's in it */
        "CREATE TABLE es_meta (key TEXT PRIMARY KEY, value TEXT);"
        "CREATE TABLE orders (id INT); INSERT INTO es_meta VALUES ('a', 'b')",
        /* someone else's tables only */
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
    };
    (void)state;
    for (size_t i = 0; i < sizeof schemas / sizeof *schemas; i++) {
        const char *path = es_test_path("foreign");
        const char *uri = uri_of(path);
        char *before;
        size_t n;
        es_log *log = NULL;
        raw_sql(path, schemas[i]);
        before = slurp(path, &n);
        assert_int_equal(es_log_open(&log, uri), ES_ECORRUPT);
        assert_contains(es_errmsg(log), "not an esfold database");
        es_log_close(log);
        assert_int_equal(run(uri, "verify"), 1);
        assert_contains(err, "not an esfold database");
        assert_int_equal(run_input(uri, "{\"type\":\"T\",\"data\":{}}\n",
                                   "append", "thing", "s-1", "--expect", "any"),
                         1);
        assert_contains(err, "not an esfold database");
        /* Same bytes: no tables added, not switched to WAL mode. */
        assert_unchanged(path, before, n);
        free(before);
    }
}

/* ---- 3. creating a new log races safely ---------------------------------- */

#define CREATORS 8
#define CREATE_ROUNDS 40

static void test_concurrent_creation_of_a_new_log(void **state)
{
    int failures = 0;
    char why[1024] = "";
    (void)state;
    for (int round = 0; round < CREATE_ROUNDS; round++) {
        const char *path = es_test_path("race");
        char uri[700];
        int gate[2], report[2];
        pid_t pids[CREATORS];
        found f;

        snprintf(uri, sizeof uri, "sqlite:%s", path);
        assert_int_equal(pipe(gate), 0);
        assert_int_equal(pipe(report), 0);
        for (int i = 0; i < CREATORS; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                char c, sid[32];
                es_log *log = NULL;
                json_t *p = json_object();
                es_event ev = event_of("Created", p);
                int rc;
                close(gate[1]);
                close(report[0]);
                /* All start at once: the gate opens when the parent closes
                 * its end. */
                if (read(gate[0], &c, 1) < 0)
                    _exit(3);
                snprintf(sid, sizeof sid, "w-%d", i);
                rc = es_log_open(&log, uri);
                if (rc == 0)
                    rc = es_log_append(log, NULL, "thing", sid, 0, &ev, 1);
                if (rc != 0) {
                    char msg[600];
                    int len = snprintf(msg, sizeof msg, "%s\n",
                                       log ? es_errmsg(log) : es_strerror(rc));
                    if (write(report[1], msg, (size_t)len) < 0)
                        _exit(4);
                }
                _exit(rc == 0 ? 0 : 1);
            }
        }
        close(gate[0]);
        close(report[1]);
        close(gate[1]); /* go */
        for (int i = 0; i < CREATORS; i++) {
            int status;
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            assert_true(WIFEXITED(status));
            if (WEXITSTATUS(status) != 0)
                failures++;
        }
        {
            ssize_t n = read(report[0], why + strlen(why),
                             sizeof why - strlen(why) - 1);
            if (n > 0)
                why[strlen(why) + (size_t)n] = '\0';
        }
        close(report[0]);
        if (failures == 0) {
            assert_int_equal(sql_int(path, "SELECT count(*) FROM es_events"),
                             CREATORS);
            f = check(uri);
            assert_int_equal(f.n, 0);
        }
    }
    if (failures)
        print_error("%d of %d openers failed:\n%s", failures,
                    CREATORS * CREATE_ROUNDS, why);
    assert_int_equal(failures, 0);
}

/* ---- 2. names are UTF-8; old ones still read ----------------------------- */

static void test_names_must_be_utf8(void **state)
{
    const char *path = es_test_path("utf8");
    const char *uri = uri_of(path);
    es_log *log = NULL;
    json_t *p = json_object();
    es_event ev = event_of("Created", p);
    (void)state;
    assert_int_equal(es_log_open(&log, uri), 0);
    assert_int_equal(es_log_append(log, NULL, "thing", "a\xff" "b", 0, &ev, 1),
                     ES_EINVAL);
    assert_contains(es_errmsg(log), "stream id is not valid UTF-8 (byte 1 is 0xff)");
    assert_int_equal(es_log_append(log, NULL, "th\xc3(ing", "a", 0, &ev, 1),
                     ES_EINVAL);
    assert_contains(es_errmsg(log), "aggregate type is not valid UTF-8");
    ev.type = "Cr\xed\xa0\x80" "eated"; /* a UTF-16 surrogate */
    assert_int_equal(es_log_append(log, NULL, "thing", "a", 0, &ev, 1), ES_EINVAL);
    assert_contains(es_errmsg(log), "event type is not valid UTF-8");
    ev.type = "Cr\xc3\xa9\xc3\xa9"; /* "Créé" is fine */
    assert_int_equal(es_log_append(log, NULL, "thing", "\xe2\x82\xac-1", 0, &ev, 1), 0);
    es_log_close(log);
    json_decref(p);

    /* The command refuses it before writing anything. */
    assert_int_equal(run_input(uri, "{\"type\":\"Created\",\"data\":{}}\n",
                               "append", "thing", "a\xff" "b", "--expect", "0",
                               "--json"), 1);
    assert_contains(err, "not valid UTF-8");
    assert_int_equal(sql_int(path, "SELECT count(*) FROM es_events"), 1);
}

static void test_names_stored_before_the_rule_still_read(void **state)
{
    const char *path, *uri = log_with_streams(&path);
    (void)state;
    /* What an older esfold let in. */
    raw_sql(path, "UPDATE es_events SET stream_id = CAST(x'61ff62' AS TEXT),"
                  " event_type = CAST(x'4fff' AS TEXT) WHERE stream_id = 's-1';"
                  "UPDATE es_streams SET stream_id = CAST(x'61ff62' AS TEXT)"
                  " WHERE stream_id = 's-1'");
    assert_int_equal(run(uri, "history", "thing", "a\xff" "b", "--json"), 0);
    assert_contains(out, "\"stream_id\": \"a\\\\xffb\"");
    assert_contains(out, "\"type\": \"O\\\\xff\"");
    assert_int_equal(run(uri, "verify", "--json"), 1); /* partition mismatch */
    assert_contains(out, "\"stream_id\": \"a\\\\xffb\"");
    assert_contains(out, "partition_mismatch");
    assert_true(strstr(err, "out of memory") == NULL);
    /* A type name too. */
    raw_sql(path, "UPDATE es_events SET agg_type = CAST(x'74ff' AS TEXT)"
                  " WHERE stream_id = 's-2';"
                  "UPDATE es_streams SET agg_type = CAST(x'74ff' AS TEXT)"
                  " WHERE stream_id = 's-2';"
                  "INSERT INTO es_partitions SELECT CAST(x'74ff' AS TEXT),"
                  " partition_no, max(log_offset) + 1 FROM es_events"
                  " WHERE stream_id = 's-2' GROUP BY partition_no");
    assert_int_equal(run(uri, "verify", "--json"), 1);
    assert_contains(out, "\"aggregate_type\": \"t\\\\xff\"");
    assert_int_equal(run(uri, "history", "t\xff", "s-2", "--json"), 0);
    assert_contains(out, "\"aggregate_type\": \"t\\\\xff\"");
}

/* ---- 4. a full disk is named --------------------------------------------- */

static int count_cb(const es_event *ev, void *user_data)
{
    (void)ev;
    ++*(int *)user_data;
    return 0;
}

/*
 * In a child with a mount namespace of its own (the mount goes away with
 * it): a log on a 1 MB tmpfs, the tmpfs filled, then an append on the open
 * log; the space its -wal and -shm held filled too, then an open and a
 * read-only open. Writes what each said to `report`, one line each, and exits 0,
 * or 77 when it cannot set up the tmpfs (then the first line says why).
 */
static void fill(const char *path)
{
    char block[4096];
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    memset(block, 'f', sizeof block);
    while (fd >= 0 && write(fd, block, sizeof block) > 0)
        ;
    if (fd >= 0)
        close(fd);
}

static int disk_full_child(const char *dir, const char *report)
{
    FILE *r = fopen(report, "w");
    char path[600], filler[600], uri[700], ro[720], note[4096];
    es_log *log = NULL;
    json_t *p = json_pack("{s:s}", "note", "x");
    es_event ev = event_of("Noted", p);
    int rc, n = 0;

    if (r == NULL)
        return 1;
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mkdir(dir, 0700) != 0 ||
        mount("tmpfs", dir, "tmpfs", 0, "size=1m") != 0) {
        fprintf(r, "cannot mount a tmpfs (%s): needs root in a container "
                "that allows mount namespaces\n", strerror(errno));
        fclose(r);
        return 77;
    }
    snprintf(path, sizeof path, "%s/log.db", dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    snprintf(ro, sizeof ro, "%s?mode=ro", uri);
    if (es_log_open(&log, uri) != 0 ||
        es_log_append(log, NULL, "thing", "s-1", 0, &ev, 1) != 0) {
        fprintf(r, "setup: %s\n", es_errmsg(log));
        fclose(r);
        return 1;
    }
    es_log_close(log); /* its -wal and -shm go */
    log = NULL;

    /* No byte free: even opening needs some (the -shm). */
    fill(filler);
    rc = es_log_open(&log, uri);
    fprintf(r, "open %d %s\n", rc, rc ? es_errmsg(log) : "");
    es_log_close(log);
    log = NULL;
    rc = es_log_open(&log, ro);
    if (rc == 0)
        rc = es_log_read_stream(log, "thing", "s-1", NULL, count_cb, &n);
    fprintf(r, "read %d %s\n", rc, rc ? es_errmsg(log) : "");
    es_log_close(log);
    log = NULL;

    /* Room to open, then none: the append itself finds the disk full. */
    unlink(filler);
    if (es_log_open(&log, uri) != 0) {
        fprintf(r, "reopen: %s\n", es_errmsg(log));
        fclose(r);
        return 1;
    }
    fill(filler);
    memset(note, 'n', sizeof note - 1);
    note[sizeof note - 1] = '\0';
    {
        json_t *big = json_pack("{s:s}", "note", note);
        es_event evs[8];
        for (int i = 0; i < 8; i++)
            evs[i] = event_of("Noted", big);
        rc = es_log_append(log, NULL, "thing", "s-1", 1, evs, 8);
        json_decref(big);
    }
    fprintf(r, "append %d %s\n", rc, rc ? es_errmsg(log) : "");
    es_log_close(log);
    json_decref(p);
    fclose(r);
    umount(dir);
    return 0;
}

static void test_disk_full_is_named(void **state)
{
    const char *dir = es_test_path("tmpfs");
    const char *report = es_test_path("disk-full-report");
    char line[2048], append[2048] = "", read_[2048] = "", open_[2048] = "";
    FILE *r;
    pid_t pid;
    int status;
    (void)state;
    if (geteuid() != 0) {
        print_message("[  SKIP    ] disk full: needs root to mount a small "
                      "tmpfs\n");
        skip();
    }
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(disk_full_child(dir, report));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    r = fopen(report, "r");
    assert_non_null(r);
    while (fgets(line, sizeof line, r)) {
        if (strncmp(line, "append ", 7) == 0)
            snprintf(append, sizeof append, "%s", line);
        else if (strncmp(line, "open ", 5) == 0)
            snprintf(open_, sizeof open_, "%s", line);
        else if (strncmp(line, "read ", 5) == 0)
            snprintf(read_, sizeof read_, "%s", line);
        else if (WEXITSTATUS(status) == 77)
            print_message("[  SKIP    ] disk full: %s", line);
        else
            print_error("%s", line);
    }
    fclose(r);
    if (WEXITSTATUS(status) == 77)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The append fails and says why, with the path. */
    assert_true(strncmp(append, "append 0", 8) != 0);
    assert_contains(append, "disk full");
    assert_contains(append, "log.db");
    /* With no byte left, opening for writing and for reading fail, and say
     * why (not "disk I/O error"). */
    assert_true(strncmp(open_, "open 0", 6) != 0);
    assert_contains(open_, "disk full");
    assert_contains(open_, "log.db");
    assert_true(strncmp(read_, "read 0", 6) != 0);
    assert_contains(read_, "disk full");
}

/* ---- 6. snapshot rows as stored ------------------------------------------ */

typedef struct listed {
    int n, corrupt;
    char why[2048];
} listed;

static int on_snapshot(const es_snapshot *snap, void *user_data)
{
    listed *l = user_data;
    es_error e;
    l->n++;
    if (es_snapshot_verify(snap, &e) != 0) {
        l->corrupt++;
        snprintf(l->why + strlen(l->why), sizeof l->why - strlen(l->why),
                 "%s\n", e.text);
    }
    return 0;
}

static void test_snapshot_rows_are_checked_as_stored(void **state)
{
    const char *path = es_test_path("snapshots");
    const char *uri = uri_of(path);
    es_snapshot_store *store = NULL;
    es_snapshot snap;
    listed l;
    (void)state;
    assert_int_equal(es_snapshot_store_open(&store, uri), 0);
    memset(&snap, 0, sizeof snap);
    snap.aggregate_type = "thing";
    snap.stream_id = "s-1";
    snap.event_id = "e-1";
    snap.time_us = snap.horizon_us = 1772359200000000;
    snap.state_schema = 1;
    snap.state = "{\"n\":1}";
    for (int v = 1; v <= 2; v++) {
        snap.version = v;
        snap.position.offset = v - 1;
        assert_int_equal(es_snapshot_save(store, &snap), 0);
    }
    memset(&l, 0, sizeof l);
    assert_int_equal(es_snapshot_list(store, "thing", "s-1", ES_RANGE_ALL,
                                      on_snapshot, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.corrupt, 0);
    es_snapshot_store_close(store);

    /* Bytes after the JSON, behind a NUL (a BLOB): the JSON text alone
     * still matches its checksum, the row as stored does not. */
    raw_sql(path, "UPDATE es_snapshots SET state = CAST(CAST(state AS BLOB)"
                  " || x'00' || x'6a756e6b' AS BLOB) WHERE version = 2;"
                  /* a version that is not a number */
                  "INSERT INTO es_snapshots SELECT agg_type, stream_id, 'two',"
                  " partition_no, log_offset, event_id, time_us, horizon_us,"
                  " state_schema, state, checksum, taken_us FROM es_snapshots"
                  " WHERE version = 1");
    assert_int_equal(es_snapshot_store_open(&store, uri), 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(es_snapshot_list(store, "thing", "s-1", ES_RANGE_ALL,
                                      on_snapshot, &l), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.corrupt, 2);
    assert_contains(l.why, "after the NUL that ends its text");
    /* A load never uses them: the last good one is listed first of the
     * good ones under a bound. */
    memset(&l, 0, sizeof l);
    assert_int_equal(es_snapshot_list(store, "thing", "s-1",
                                      ES_RANGE_TO_VERSION(1), on_snapshot, &l),
                     0);
    assert_int_equal(l.n, 2); /* v1 and the row whose version is no number */
    assert_int_equal(l.corrupt, 1);
    es_snapshot_store_close(store);

    assert_int_equal(run(uri, "snapshot", "list", "thing", "s-1"), 0);
    assert_contains(out, "3 snapshots of thing/s-1, 2 corrupt");
    assert_int_equal(run(uri, "snapshot", "list", "thing", "s-1", "--json"), 0);
    assert_contains(out, "\"ok\": false");
}

/* ---- 7. one redaction for every handle that keeps a URI ------------------ */

static void test_snapshot_store_uri_is_redacted(void **state)
{
    es_snapshot_store *store = NULL;
    (void)state;
    /* PostgreSQL connects lazily: the handle opens. */
    assert_int_equal(es_snapshot_store_open(&store, "postgresql://esfold:"
                                            "hunter2@127.0.0.1:1/x"), 0);
    assert_null(strstr(es_snapshot_store_uri(store), "hunter2"));
    assert_contains(es_snapshot_store_uri(store), "esfold:***@127.0.0.1:1/x");
    es_snapshot_store_close(store);

    store = NULL;
    assert_int_not_equal(es_snapshot_store_open(&store, "host=127.0.0.1 "
                                                "password=hunter2 dbname=x"), 0);
    assert_null(strstr(es_errmsg(store), "hunter2"));
    assert_null(strstr(es_snapshot_store_uri(store), "hunter2"));
    assert_contains(es_snapshot_store_uri(store), "password=*** dbname=x");
    es_snapshot_store_close(store);

    store = NULL;
    assert_int_not_equal(es_snapshot_store_open(&store, "sqlite:/nonexistent/"
                                                "x.db?token=s3cret"), 0);
    assert_null(strstr(es_errmsg(store), "s3cret"));
    es_snapshot_store_close(store);
}

/* ---- kill -9 at random points loses nothing -------------------------------- */

#define KILL_ROUNDS 25
#define KILL_WRITERS 4

/* A writer: appends commits of 1 to 3 events to shared streams, forever,
 * and after each acknowledged append writes its event ids to ack_fd. */
static void kill_writer(const char *uri, int w, int ack_fd, unsigned seed)
{
    es_log *log = NULL;
    if (es_log_open(&log, uri) != 0)
        _exit(2);
    for (unsigned k = 0;; k++) {
        char sid[16], ids[3][40], line[160];
        es_event evs[3];
        size_t n = 1 + (seed + k) % 3;
        json_t *p = json_pack("{s:i,s:i}", "writer", w, "k", (int)k);
        memset(evs, 0, sizeof evs);
        snprintf(sid, sizeof sid, "s-%u", (seed * 7 + k) % 5);
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "w%d-r%u-k%u-%zu", w, seed, k, i);
            evs[i] = event_of("Noted", p);
            evs[i].id = ids[i];
        }
        if (es_log_append(log, NULL, "thing", sid, ES_EXPECT_ANY, evs, n) == 0) {
            int len = 0;
            for (size_t i = 0; i < n; i++)
                len += snprintf(line + len, sizeof line - (size_t)len, "%s\n",
                                ids[i]);
            if (write(ack_fd, line, (size_t)len) != len)
                _exit(3);
        }
        json_decref(p);
    }
}

typedef struct all_ids {
    char (*id)[40];
    size_t n, cap;
    int torn;
    char commit[64];
    int64_t left; /* events of the current commit still to come */
} all_ids;

static int gather(const es_event *ev, void *user_data)
{
    all_ids *a = user_data;
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->id = realloc(a->id, a->cap * sizeof *a->id);
        assert_non_null(a->id);
    }
    snprintf(a->id[a->n++], sizeof a->id[0], "%s", ev->id);
    /* A commit's events are consecutive in its partition, all of them. */
    if (a->left > 0 && strcmp(a->commit, ev->commit_id) != 0)
        a->torn++;
    if (a->left == 0) {
        snprintf(a->commit, sizeof a->commit, "%s", ev->commit_id);
        a->left = ev->commit_size;
    }
    a->left--;
    return 0;
}

static int cmp_id(const void *x, const void *y)
{
    return strcmp(x, y);
}

static void test_kill9_loses_nothing(void **state)
{
    const char *path = es_test_path("kill9");
    const char *acks = es_test_path("kill9-acks");
    const char *uri = uri_of(path);
    all_ids a;
    es_log *log = NULL;
    size_t acked = 0, missing = 0;
    char line[160];
    FILE *f;
    int ack_fd;
    (void)state;

    ack_fd = open(acks, O_WRONLY | O_CREAT | O_APPEND, 0600);
    assert_true(ack_fd >= 0);
    srand(0x5eed);
    for (int round = 0; round < KILL_ROUNDS; round++) {
        pid_t pids[KILL_WRITERS];
        for (int w = 0; w < KILL_WRITERS; w++) {
            pids[w] = fork();
            assert_true(pids[w] >= 0);
            if (pids[w] == 0)
                kill_writer(uri, w, ack_fd, (unsigned)(round * 31 + w));
        }
        /* A random point: between 2 and 40 ms into the round. */
        usleep((useconds_t)(2000 + rand() % 38000));
        for (int w = 0; w < KILL_WRITERS; w++)
            kill(pids[w], SIGKILL);
        for (int w = 0; w < KILL_WRITERS; w++) {
            int status;
            assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
            /* Killed, never failed on its own. */
            assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        }
    }
    close(ack_fd);

    /* Everything in the log, partition by partition. */
    memset(&a, 0, sizeof a);
    assert_int_equal(es_log_open(&log, uri), 0);
    for (int32_t p = 0; p < 4; p++) {
        a.left = 0;
        assert_int_equal(es_log_read_partition(log, NULL, "thing", p, 0, 0,
                                               gather, &a), 0);
        assert_int_equal(a.left, 0); /* no commit cut short at the head */
    }
    es_log_close(log);
    assert_int_equal(a.torn, 0);
    qsort(a.id, a.n, sizeof *a.id, cmp_id);
    for (size_t i = 1; i < a.n; i++)
        assert_true(strcmp(a.id[i - 1], a.id[i]) != 0); /* nothing twice */

    /* Every acknowledged append is there. */
    f = fopen(acks, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        acked++;
        if (bsearch(line, a.id, a.n, sizeof *a.id, cmp_id) == NULL) {
            print_error("acknowledged but lost: %s\n", line);
            missing++;
        }
    }
    fclose(f);
    print_message("kill -9: %d rounds of %d writers, %zu events in the log, "
                  "%zu acknowledged, %zu lost\n", KILL_ROUNDS, KILL_WRITERS,
                  a.n, acked, missing);
    assert_true(acked > 0);
    assert_int_equal(missing, 0);
    free(a.id);

    /* And verify finds nothing wrong. */
    assert_int_equal(run(uri, "verify"), 0);
    assert_contains(out, "verify: OK");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_log_has_no_problem),
        cmocka_unit_test(test_damaged_index_fails_verify),
        cmocka_unit_test(test_tables_that_disagree_fail_verify),
        cmocka_unit_test(test_reading_an_empty_file_writes_nothing),
        cmocka_unit_test(test_reading_a_log_writes_nothing),
        cmocka_unit_test(test_foreign_databases_are_left_untouched),
        cmocka_unit_test(test_concurrent_creation_of_a_new_log),
        cmocka_unit_test(test_names_must_be_utf8),
        cmocka_unit_test(test_names_stored_before_the_rule_still_read),
        cmocka_unit_test(test_disk_full_is_named),
        cmocka_unit_test(test_snapshot_rows_are_checked_as_stored),
        cmocka_unit_test(test_snapshot_store_uri_is_redacted),
        cmocka_unit_test(test_kill9_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
