/*
 * tests/pg_harness.h - a PostgreSQL server for the tests that need one.
 *
 * With ESFOLD_PG_URL set, that server is used (and never stopped). Without
 * it, the first call starts a throwaway one: initdb into a temporary
 * directory (owned by the postgres user when the tests run as root, since
 * the server refuses to run as root), a free loopback port, its unix socket
 * in that directory, `pg_ctl start -w`; it is stopped and its directory
 * removed at exit. The binaries are found in $ESFOLD_PG_BIN, else the
 * newest /usr/lib/postgresql/(version)/bin.
 */
#ifndef ESFOLD_TESTS_PG_HARNESS_H
#define ESFOLD_TESTS_PG_HARNESS_H

/* The server's libpq URL (owned by the harness), or NULL when there is no
 * server to be had: es_test_pg_why() then says why (tests skip). */
const char *es_test_pg_url(void);
const char *es_test_pg_why(void);

/* A new database PREFIX_PID_N on the server, its URL (static storage, the
 * last 8 calls' stay valid), or NULL when there is no server (or the
 * CREATE DATABASE failed: es_test_pg_why() says why). */
const char *es_test_pg_fresh_db(const char *prefix);

/* 1 when the harness started the server itself (so it may stop it). */
int es_test_pg_owned(void);

/* Stops / starts again the throwaway server (same port and data), to test
 * an unreachable store. 0, or -1 (not owned, or pg_ctl failed). */
int es_test_pg_stop(void);
int es_test_pg_start(void);

#endif
