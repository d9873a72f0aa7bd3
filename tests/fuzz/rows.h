/*
 * tests/fuzz/rows.h - what the fuzz targets on stored SQLite rows share
 * (fuzz_sqlite_rows.c, fuzz_snapshot.c): a scratch esfold file, and
 * turning the input into rows of a table.
 *
 * Input: rows separated by the byte 0x1d, each row's columns by 0x1e, in
 * the order of the target's column list; a missing column takes the
 * target's default. A column that reads as a decimal integer is bound as
 * an integer, the text NULL as NULL, anything else as the bytes given
 * (text in an INTEGER column, invalid UTF-8, NULs: what a damaged or
 * hand-edited file holds).
 */
#ifndef ESFOLD_TESTS_FUZZ_ROWS_H
#define ESFOLD_TESTS_FUZZ_ROWS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "esfold/esfold.h"
#include "fuzz.h"

#define ROWS_MAX 4

static char rows_dir[512], rows_path[600];

static void rows_cleanup(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[700];
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        snprintf(p, sizeof p, "%s%s", rows_path, suffixes[i]);
        unlink(p);
    }
    rmdir(rows_dir);
}

/* A fresh esfold file (log and snapshot tables) for this process; its
 * path in rows_path. */
static void rows_file(void)
{
    const char *tmp = getenv("TMPDIR");
    char uri[700];
    es_log *log = NULL;
    es_snapshot_store *store = NULL;
    if (rows_path[0])
        return;
    snprintf(rows_dir, sizeof rows_dir, "%s/esfold-fuzz-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(rows_dir) == NULL)
        fuzz_fail("mkdtemp: %s", strerror(errno));
    snprintf(rows_path, sizeof rows_path, "%s/rows.db", rows_dir);
    atexit(rows_cleanup);
    snprintf(uri, sizeof uri, "sqlite:%s", rows_path);
    if (es_log_open(&log, uri) != 0)
        fuzz_fail("opening the scratch log: %s", es_errmsg(log));
    es_log_close(log);
    if (es_snapshot_store_open(&store, uri) != 0)
        fuzz_fail("opening the scratch store: %s", es_errmsg(store));
    es_snapshot_store_close(store);
}

/* The bytes of column i of a row [p, end) (NULL when it has fewer). */
static const char *rows_column(const char *p, const char *end, int i,
                               size_t *len)
{
    for (; i > 0; i--) {
        const char *sep = memchr(p, 0x1e, (size_t)(end - p));
        if (sep == NULL)
            return NULL;
        p = sep + 1;
    }
    *len = (size_t)(end - p);
    if (memchr(p, 0x1e, *len))
        *len = (size_t)((const char *)memchr(p, 0x1e, *len) - p);
    return p;
}

static void rows_bind(sqlite3_stmt *st, int i, const char *v, size_t n,
                      const char *dflt)
{
    char num[32];
    char *endp;
    long long x;
    if (v == NULL) {
        v = dflt;
        n = strlen(dflt);
    }
    if (n == 4 && memcmp(v, "NULL", 4) == 0) {
        sqlite3_bind_null(st, i);
        return;
    }
    if (n > 0 && n < sizeof num) {
        memcpy(num, v, n);
        num[n] = '\0';
        errno = 0;
        x = strtoll(num, &endp, 10);
        if (*endp == '\0' && errno == 0) {
            sqlite3_bind_int64(st, i, x);
            return;
        }
    }
    sqlite3_bind_text(st, i, v, (int)n, SQLITE_TRANSIENT);
}

/*
 * Empties `table` of the scratch file (and the tables in `also_clear`,
 * a ";"-separated DELETE list) and inserts the input's rows with `insert`
 * (ncols parameters, defaults in dflt[]).
 */
static void rows_load(const uint8_t *data, size_t size, const char *clear,
                      const char *insert, int ncols, const char *const *dflt)
{
    const char *p = (const char *)data, *end = p + size;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rows = 0;

    rows_file();
    if (sqlite3_open(rows_path, &db) != SQLITE_OK)
        fuzz_fail("sqlite3_open: %s", sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, clear, NULL, NULL, NULL) != SQLITE_OK)
        fuzz_fail("clearing: %s", sqlite3_errmsg(db));
    if (sqlite3_prepare_v2(db, insert, -1, &st, NULL) != SQLITE_OK)
        fuzz_fail("preparing the insert: %s", sqlite3_errmsg(db));
    while (p <= end && rows < ROWS_MAX) {
        const char *row_end = memchr(p, 0x1d, (size_t)(end - p));
        if (row_end == NULL)
            row_end = end;
        for (int c = 0; c < ncols; c++) {
            size_t n = 0;
            const char *v = rows_column(p, row_end, c, &n);
            rows_bind(st, c + 1, v, n, dflt[c]);
        }
        /* A constraint refuses some rows: what the file can hold is the
         * input, the rest is dropped. */
        sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        rows++;
        p = row_end + 1;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

#endif
