/*
 * tests/target_harness.c - see target_harness.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "harness.h"
#include "pg_harness.h"
#include "target_harness.h"

const char *es_test_pg_fresh_db_or_fail(const char *prefix)
{
    const char *url = es_test_pg_fresh_db(prefix);
    if (url == NULL && es_test_pg_url() != NULL)
        fail_msg("%s", es_test_pg_why());
    return url;
}

void es_test_on_sqlite(es_test_target_case fn, const char *name)
{
    const char *path = es_test_path(name);
    char uri[600];
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    fn(uri, path, 0);
}

void es_test_on_postgres(es_test_target_case fn, const char *prefix)
{
    const char *url = es_test_pg_fresh_db_or_fail(prefix);
    if (url == NULL) {
        print_message("no PostgreSQL: %s\n", es_test_pg_why());
        skip();
    }
    fn(url, url, 1);
}

/* Appends v and then sep to *out (of *cap bytes, *len used). */
static void rows_add(char **out, size_t *len, size_t *cap, const char *v,
                     const char *sep)
{
    size_t n = strlen(v) + strlen(sep);
    while (*len + n + 1 > *cap)
        *out = realloc(*out, *cap *= 2);
    assert_non_null(*out);
    *len += (size_t)sprintf(*out + *len, "%s%s", v, sep);
}

char *es_test_target_rows(const char *path_or_url, int pg, const char *sql)
{
    size_t cap = 1 << 12, len = 0;
    char *out = calloc(1, cap);
    assert_non_null(out);
    if (pg) {
        PGconn *c = PQconnectdb(path_or_url);
        PGresult *r;
        if (PQstatus(c) != CONNECTION_OK)
            fail_msg("%s", PQerrorMessage(c));
        r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            fail_msg("%s: %s", sql, PQerrorMessage(c));
        for (int i = 0; i < PQntuples(r); i++)
            for (int k = 0; k < PQnfields(r); k++)
                rows_add(&out, &len, &cap,
                         PQgetisnull(r, i, k) ? "NULL" : PQgetvalue(r, i, k),
                         k + 1 < PQnfields(r) ? "|" : "\n");
        PQclear(r);
        PQfinish(c);
    } else {
        sqlite3 *db;
        sqlite3_stmt *st;
        int rc;
        if (sqlite3_open_v2(path_or_url, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
            fail_msg("%s: %s", path_or_url, sqlite3_errmsg(db));
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
            fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            for (int k = 0; k < sqlite3_column_count(st); k++) {
                const char *v = (const char *)sqlite3_column_text(st, k);
                rows_add(&out, &len, &cap, v ? v : "NULL",
                         k + 1 < sqlite3_column_count(st) ? "|" : "\n");
            }
        if (rc != SQLITE_DONE)
            fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    return out;
}

void es_test_target_exec(const char *path_or_url, int pg, const char *sql)
{
    if (pg) {
        PGconn *c = PQconnectdb(path_or_url);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            fail_msg("%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
    } else {
        sqlite3 *db;
        char *msg = NULL;
        assert_int_equal(sqlite3_open(path_or_url, &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 10000);
        if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
            fail_msg("%s: %s", sql, msg);
        sqlite3_close(db);
    }
}
