/*
 * adapters/sqlite/sqlite.h - what esfold's SQLite adapters share: parsing a
 * sqlite: URI, opening a database file the esfold way, per-component schema
 * migrations, and turning SQLite errors into esfold codes and messages.
 *
 * Every esfold SQLite file has a table es_meta(key, value). Each component
 * that keeps tables in the file (the log, the snapshot store, projection
 * checkpoints, ...) stores its schema version there under "schema.<name>"
 * and brings its tables up to date with es__sqlite_migrate(), so that any
 * mix of components can share one file.
 *
 * Internal: not installed, not API.
 */
#ifndef ESFOLD_ADAPTERS_SQLITE_H
#define ESFOLD_ADAPTERS_SQLITE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "core/log_backend.h"

/* How long a handle waits for another one's write lock before ES_EIO. */
#define ES__SQLITE_BUSY_TIMEOUT_MS 10000

/* ---- URIs: sqlite:PATH[?key=value&key=value] ---------------------------- */

#define ES__SQLITE_URI_MAX_PARAMS 8

typedef struct es__sqlite_uri {
    char *path; /* as given; ":memory:" for sqlite::memory: */
    size_t nparams;
    struct {
        char *key;
        char *value;
    } params[ES__SQLITE_URI_MAX_PARAMS];
} es__sqlite_uri;

/*
 * Splits uri ("sqlite:" PATH, then an optional "?" and key=value pairs
 * joined by "&"; the first "?" starts the query, so a PATH cannot contain
 * one). Keys not in the NULL-terminated list `known` are ES_EINVAL, so a
 * typo does not silently create a log with default settings. On success
 * *out holds copies (es__sqlite_uri_free); on failure *out needs no free.
 * Returns 0, ES_EINVAL or ES_ENOMEM with h's message set.
 */
int es__sqlite_uri_parse(es__sqlite_uri *out, const char *uri,
                         const char *const *known, es__handle *h);
/* The value of key (borrowed from u), or NULL when the URI has none. */
const char *es__sqlite_uri_param(const es__sqlite_uri *u, const char *key);
void es__sqlite_uri_free(es__sqlite_uri *u);

/* ---- Opening ------------------------------------------------------------ */

/*
 * Opens (creating if needed) the database at path (":memory:" for a private
 * in-memory one) for esfold: busy timeout, WAL (files only),
 * synchronous=NORMAL, foreign keys, and the es_meta table. A file that is
 * not a SQLite database, or a database that has tables but no es_meta (not
 * esfold's), is ES_ECORRUPT and left untouched; an unopenable path is
 * ES_EIO. Messages start with "sqlite:PATH: ". *db is NULL on failure;
 * close with es__sqlite_close(). The connection is for one thread at a time.
 */
int es__sqlite_open(sqlite3 **db, const char *path, es__handle *h);
/*
 * The same, and with read_only the file is opened read-only: it must exist
 * and be an esfold database (an empty file is ES_ECORRUPT), nothing in it
 * is created or changed (no es_meta, no WAL switch), and
 * es__sqlite_migrate fails instead of writing. URIs ask for it with
 * mode=ro (es__sqlite_uri_read_only).
 */
int es__sqlite_open_mode(sqlite3 **db, const char *path, int read_only,
                         es__handle *h);
/* Whether u says mode=ro: 1, 0 (absent or mode=rw), or ES_EINVAL with h's
 * message set for another value. */
int es__sqlite_uri_read_only(const es__sqlite_uri *u, es__handle *h);
/* Closes db (finalize its statements first). Accepts NULL. */
void es__sqlite_close(sqlite3 *db);

/* ---- Migrations --------------------------------------------------------- */

/*
 * Brings component's tables from the version stored in es_meta
 * ("schema.<component>", absent = 0) up to nsteps: steps[i] is the SQL
 * (one or more statements) that goes from version i to i + 1. Each step
 * runs in its own BEGIN IMMEDIATE transaction together with the version
 * bump, and re-reads the version inside it, so that two processes opening
 * a file at once migrate it once. Append new steps; never edit old ones.
 * A stored version above nsteps (a file written by a newer esfold) is
 * ES_ECORRUPT; a failing step ES_EIO, with that step rolled back.
 */
int es__sqlite_migrate(sqlite3 *db, es__handle *h, const char *component,
                       const char *const *steps, size_t nsteps);

/* ---- es_meta ------------------------------------------------------------ */

/* Reads an integer setting: 0 with *found = 1 and *out set, 0 with
 * *found = 0 when absent, ES_ECORRUPT when the value is not an integer,
 * ES_EIO. */
int es__sqlite_meta_get_i64(sqlite3 *db, es__handle *h, const char *key,
                            int64_t *out, int *found);
/* Writes (inserts or replaces) an integer setting. */
int es__sqlite_meta_set_i64(sqlite3 *db, es__handle *h, const char *key,
                            int64_t value);

/* ---- Errors and small helpers ------------------------------------------- */

/* The esfold code for a SQLite result code (primary or extended). */
int es__sqlite_code(int rc);

/*
 * Sets h's message to "<fmt...>: <what SQLite said>" and returns the esfold
 * code for rc. Call it before any other call on db (which would replace
 * SQLite's message), e.g. before rolling back. By convention fmt starts
 * with the "sqlite:PATH" context.
 */
int es__sqlite_fail(es__handle *h, sqlite3 *db, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* db's file name as SQLite knows it (absolute), or ":memory:". Borrowed,
 * lives as long as db. For messages: "sqlite:%s". */
const char *es__sqlite_name(sqlite3 *db);

/* Runs sql (one or more statements, no results). On failure sets
 * "sqlite:<name>: <what>: <SQLite's message>" and returns the code. */
int es__sqlite_exec(sqlite3 *db, es__handle *h, const char *what,
                    const char *sql);

/* The log backend of adapters/sqlite/log.c. */
extern const es__log_backend es__sqlite_log_backend;

#endif
