/*
 * tests/target_harness.h - running a projection test case on both kinds
 * of target: a fresh SQLite file and a fresh database on the test's
 * PostgreSQL server (tests/pg_harness.h). For the cmocka tests that link
 * tests/pg_harness.o.
 */
#ifndef ESFOLD_TESTS_TARGET_HARNESS_H
#define ESFOLD_TESTS_TARGET_HARNESS_H

/* A case: fn(target URI, the file or URL to read rows from, is_pg). */
typedef void (*es_test_target_case)(const char *target, const char *path_or_url,
                                    int pg);

/* Runs fn on a new SQLite file named after name in the test directory. */
void es_test_on_sqlite(es_test_target_case fn, const char *name);

/* Runs fn on a new database PREFIX_PID_N; skips the test when there is no
 * server, fails it when the database cannot be made. */
void es_test_on_postgres(es_test_target_case fn, const char *prefix);

/* A new database PREFIX_PID_N (es_test_pg_fresh_db) or NULL when there is
 * no server; a server that refuses it fails the test. */
const char *es_test_pg_fresh_db_or_fail(const char *prefix);

/* The rows of sql in a target (a SQLite file, or with pg a libpq URL),
 * read straight with sqlite3 / libpq, as "a|b|c\n" lines (SQL NULL as
 * NULL). The caller frees the string; a failing query fails the test. */
char *es_test_target_rows(const char *path_or_url, int pg, const char *sql);

/* Runs one statement (not a query) on a target, beside the worker, on a
 * connection of its own; fails the test when it fails. */
void es_test_target_exec(const char *path_or_url, int pg, const char *sql);

#endif
