/*
 * adapters/sqlite/schema.c - opening an esfold SQLite file, its es_meta
 * table and per-component migrations, and SQLite error messages.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sqlite.h"

#define SCHEME "sqlite:"

/* ---- URIs ---------------------------------------------------------------- */

void es__sqlite_uri_free(es__sqlite_uri *u)
{
    size_t i;
    if (u == NULL)
        return;
    es__free(u->path);
    for (i = 0; i < u->nparams; i++) {
        es__free(u->params[i].key);
        es__free(u->params[i].value);
    }
    memset(u, 0, sizeof *u);
}

const char *es__sqlite_uri_param(const es__sqlite_uri *u, const char *key)
{
    size_t i;
    for (i = 0; i < u->nparams; i++)
        if (strcmp(u->params[i].key, key) == 0)
            return u->params[i].value;
    return NULL;
}

int es__sqlite_uri_read_only(const es__sqlite_uri *u, es__handle *h)
{
    const char *mode = es__sqlite_uri_param(u, "mode");
    if (mode == NULL || strcmp(mode, "rw") == 0)
        return 0;
    if (strcmp(mode, "ro") == 0)
        return 1;
    return es__fail(h, ES_EINVAL, "sqlite:%s: mode must be ro or rw, not '%s'",
                    u->path, mode);
}

static int is_known(const char *const *known, const char *key, size_t len)
{
    for (; known && *known; known++)
        if (strlen(*known) == len && memcmp(*known, key, len) == 0)
            return 1;
    return 0;
}

int es__sqlite_uri_parse(es__sqlite_uri *out, const char *uri,
                         const char *const *known, es__handle *h)
{
    const char *rest, *q, *p;
    int rc = 0;

    memset(out, 0, sizeof *out);
    if (uri == NULL || strncmp(uri, SCHEME, strlen(SCHEME)) != 0)
        return es__fail(h, ES_EINVAL, "'%s' is not a sqlite: URI",
                        uri ? uri : "(null)");
    rest = uri + strlen(SCHEME);
    q = strchr(rest, '?');
    if ((q ? (size_t)(q - rest) : strlen(rest)) == 0)
        return es__fail(h, ES_EINVAL,
                        "%s: no file name (expected sqlite:PATH or "
                        "sqlite::memory:)", uri);
    out->path = es__strndup(rest, q ? (size_t)(q - rest) : strlen(rest));
    if (out->path == NULL) {
        rc = es__fail(h, ES_ENOMEM, "%s: out of memory", uri);
        goto done;
    }
    for (p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;

        if (eq == NULL || klen == 0) {
            rc = es__fail(h, ES_EINVAL, "%s: '%.*s' is not key=value", uri,
                          (int)len, p);
            goto done;
        }
        if (!is_known(known, p, klen)) {
            rc = es__fail(h, ES_EINVAL, "%s: unknown parameter '%.*s'", uri,
                          (int)klen, p);
            goto done;
        }
        if (out->nparams == ES__SQLITE_URI_MAX_PARAMS) {
            rc = es__fail(h, ES_EINVAL, "%s: too many parameters", uri);
            goto done;
        }
        out->params[out->nparams].key = es__strndup(p, klen);
        out->params[out->nparams].value = es__strndup(eq + 1, len - klen - 1);
        out->nparams++;
        if (!out->params[out->nparams - 1].key ||
            !out->params[out->nparams - 1].value) {
            rc = es__fail(h, ES_ENOMEM, "%s: out of memory", uri);
            goto done;
        }
        /* A repeated key would make "which one wins" a guess. */
        if (es__sqlite_uri_param(out, out->params[out->nparams - 1].key) !=
            out->params[out->nparams - 1].value) {
            rc = es__fail(h, ES_EINVAL, "%s: parameter '%.*s' given twice", uri,
                          (int)klen, p);
            goto done;
        }
        p = amp ? amp + 1 : NULL;
    }
done:
    if (rc != 0)
        es__sqlite_uri_free(out);
    return rc;
}

/* ---- Errors -------------------------------------------------------------- */

int es__sqlite_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_NOMEM:
        return ES_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return ES_ECORRUPT;
    default:
        return ES_EIO;
    }
}

int es__sqlite_fail(es__handle *h, sqlite3 *db, int rc, const char *fmt, ...)
{
    char what[ES__ERRMSG_MAX];
    va_list ap;
    int code = es__sqlite_code(rc);

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (code == 0) /* a step that returned ROW/DONE where it should not */
        code = ES_EIO;
    /* "disk I/O error" hides the usual cause: say it. */
    if ((rc & 0xff) == SQLITE_FULL ||
        (db && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN) &&
         (sqlite3_system_errno(db) == ENOSPC ||
          sqlite3_system_errno(db) == EDQUOT)))
        return es__fail(h, code, "%s: disk full: no space left on the device "
                        "of %s (%s)", what, db ? es__sqlite_name(db) : "the file",
                        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return es__fail(h, code, "%s: %s", what,
                    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

const char *es__sqlite_name(sqlite3 *db)
{
    const char *name = sqlite3_db_filename(db, "main");
    return name && *name ? name : ":memory:";
}

int es__sqlite_exec(sqlite3 *db, es__handle *h, const char *what,
                    const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return es__sqlite_fail(h, db, rc, "sqlite:%s: %s", es__sqlite_name(db),
                               what);
    return 0;
}

/* ---- es_meta ------------------------------------------------------------- */

/* One integer out of a one-row query with an optional text parameter. */
static int query_i64(sqlite3 *db, es__handle *h, const char *what,
                     const char *sql, const char *param, int64_t *out,
                     int *found)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *found = 0;
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && param)
        rc = sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        /* Values are text in es_meta; read them strictly so that a
         * tampered '7x' is reported, not taken as 7. */
        const char *text = (const char *)sqlite3_column_text(st, 0);
        if (sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
            *out = sqlite3_column_int64(st, 0);
        } else if (text == NULL || es__parse_i64(out, text) != 0) {
            rc = es__fail(h, ES_ECORRUPT, "sqlite:%s: %s: '%s' is not an integer",
                          es__sqlite_name(db), what, text ? text : "NULL");
            goto done;
        }
        *found = 1;
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = es__sqlite_fail(h, db, rc, "sqlite:%s: %s", es__sqlite_name(db),
                             what);
    }
done:
    sqlite3_finalize(st);
    return rc;
}

int es__sqlite_meta_get_i64(sqlite3 *db, es__handle *h, const char *key,
                            int64_t *out, int *found)
{
    char what[128];
    snprintf(what, sizeof what, "reading es_meta '%s'", key);
    return query_i64(db, h, what, "SELECT value FROM es_meta WHERE key = ?1",
                     key, out, found);
}

int es__sqlite_meta_set_i64(sqlite3 *db, es__handle *h, const char *key,
                            int64_t value)
{
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO es_meta(key, value) VALUES(?1, ?2) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, value);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        rc = es__sqlite_fail(h, db, rc, "sqlite:%s: writing es_meta '%s'",
                             es__sqlite_name(db), key);
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

/* ---- Opening ------------------------------------------------------------- */

void es__sqlite_close(sqlite3 *db)
{
    /* close_v2: a statement someone forgot to finalize must not make the
     * close fail and leak the connection. */
    if (db)
        sqlite3_close_v2(db);
}

/* Why a path cannot be opened, when the file system can tell: a missing
 * folder, a directory, a missing file for a read-only open. */
static void explain_open(char *why, size_t size, const char *path, int read_only)
{
    struct stat st;
    char dir[4096];
    const char *slash = strrchr(path, '/');

    why[0] = '\0';
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            snprintf(why, size, "it is a directory, not a file");
        return;
    }
    if (errno != ENOENT && errno != ENOTDIR)
        return;
    if (slash && (size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
        if (dir[0] != '\0' && stat(dir, &st) != 0 && errno == ENOENT) {
            snprintf(why, size, "the folder %.400s does not exist", dir);
            return;
        }
        if (dir[0] != '\0' && stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
            snprintf(why, size, "%.400s is not a folder", dir);
            return;
        }
    }
    if (read_only)
        snprintf(why, size, "no such file");
}

/* What a file holds, read in one transaction so that a concurrent creator
 * is seen either before or after, never half-way. */
enum { FILE_EMPTY, FILE_ESFOLD, FILE_FOREIGN };

static int classify(sqlite3 *db, es__handle *h, const char *path, int *kind,
                    char *why, size_t whysize)
{
    sqlite3_stmt *st = NULL;
    int64_t tables = 0, meta = 0;
    int rc;

    *kind = FILE_FOREIGN;
    why[0] = '\0';
    rc = sqlite3_prepare_v2(db,
                            "SELECT count(*), coalesce(sum(name = 'es_meta'), 0)"
                            " FROM sqlite_master WHERE type = 'table'",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        rc = es__sqlite_fail(h, db, rc, "sqlite:%s: reading the schema", path);
        if (rc == ES_ECORRUPT)
            es__fail(h, rc, "%s (not a SQLite database, or a damaged one)",
                     h->errmsg);
        goto done;
    }
    tables = sqlite3_column_int64(st, 0);
    meta = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    rc = 0;
    if (tables == 0) {
        *kind = FILE_EMPTY;
        goto done;
    }
    if (meta == 0) {
        snprintf(why, whysize, "it has tables but no es_meta table");
        goto done;
    }
    /* An es_meta of someone else's: other columns, or other tables and no
     * esfold schema version among its keys. */
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM es_meta"
                           " WHERE key LIKE 'schema.%' AND value IS NOT NULL",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(why, whysize, "its es_meta table is not esfold's (%s)",
                 sqlite3_errmsg(db));
        goto done;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        rc = es__sqlite_fail(h, db, rc, "sqlite:%s: reading es_meta", path);
        goto done;
    }
    rc = 0;
    if (sqlite3_column_int64(st, 0) == 0 && tables > 1) {
        snprintf(why, whysize, "its es_meta table has no esfold schema "
                 "versions");
        goto done;
    }
    *kind = FILE_ESFOLD;
done:
    sqlite3_finalize(st);
    return rc;
}

/* PRAGMA journal_mode = WAL needs the file to itself for an instant: SQLite
 * answers BUSY at once, without the busy handler, while another connection
 * holds a lock, so wait here, up to the busy timeout. */
static int set_wal(sqlite3 *db, es__handle *h, const char *path)
{
    sqlite3_stmt *st = NULL;
    int rc, waited_ms = 0;

    for (;;) {
        rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            /* "wal", or the mode SQLite keeps where WAL cannot work (a
             * file system without shared memory): as before, go on. */
            rc = 0;
            break;
        }
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) {
            rc = es__sqlite_fail(h, db, rc, "sqlite:%s: setting WAL mode", path);
            break;
        }
        if (waited_ms >= ES__SQLITE_BUSY_TIMEOUT_MS) {
            rc = es__fail(h, ES_EIO, "sqlite:%s: setting WAL mode: the file "
                          "stayed locked for %d ms", path, waited_ms);
            break;
        }
        sqlite3_finalize(st);
        st = NULL;
        sqlite3_sleep(5);
        waited_ms += 5;
    }
    sqlite3_finalize(st);
    return rc;
}

int es__sqlite_open(sqlite3 **out, const char *path, es__handle *h)
{
    return es__sqlite_open_mode(out, path, 0, h);
}

int es__sqlite_open_mode(sqlite3 **out, const char *path, int read_only,
                         es__handle *h)
{
    sqlite3 *db = NULL;
    char why[512];
    int kind, rc, memory = strcmp(path, ":memory:") == 0;

    *out = NULL;
    rc = sqlite3_open_v2(path, &db,
                         (read_only ? SQLITE_OPEN_READONLY
                                    : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                             SQLITE_OPEN_NOMUTEX,
                         NULL);
    if (rc != SQLITE_OK) {
        explain_open(why, sizeof why, path, read_only);
        if (why[0])
            rc = es__fail(h, rc == SQLITE_NOMEM ? ES_ENOMEM : ES_EIO,
                          "sqlite:%s: cannot open: %s", path, why);
        else
            rc = es__sqlite_fail(h, db, rc, "sqlite:%s: cannot open", path);
        goto done;
    }
    /* Before anything that may wait on another handle's lock. */
    sqlite3_busy_timeout(db, ES__SQLITE_BUSY_TIMEOUT_MS);
    /* A directory opens and fails at the first read. */
    explain_open(why, sizeof why, path, read_only);
    if (why[0]) {
        rc = es__fail(h, ES_EIO, "sqlite:%s: cannot open: %s", path, why);
        goto done;
    }

    /* The first read of the file: this is where "file is not a database"
     * shows, before any pragma could change someone else's file. One read
     * transaction sees the schema whole. */
    if ((rc = es__sqlite_exec(db, h, "reading the schema", "BEGIN")) != 0)
        goto done;
    rc = classify(db, h, path, &kind, why, sizeof why);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != 0)
        goto done;
    if (kind == FILE_EMPTY && read_only) {
        rc = es__fail(h, ES_ECORRUPT, "sqlite:%s: not an esfold database: the "
                      "file is empty (it holds no log)", path);
        goto done;
    }
    if (kind == FILE_EMPTY) {
        /* Create es_meta under the write lock, checking again: another
         * process may have created the file's schema meanwhile. */
        if ((rc = es__sqlite_exec(db, h, "creating es_meta",
                                  "BEGIN IMMEDIATE")) != 0)
            goto done;
        if ((rc = classify(db, h, path, &kind, why, sizeof why)) == 0 &&
            kind == FILE_EMPTY)
            rc = es__sqlite_exec(db, h, "creating es_meta",
                                 "CREATE TABLE es_meta ("
                                 " key TEXT PRIMARY KEY,"
                                 " value TEXT NOT NULL"
                                 ") WITHOUT ROWID");
        if (rc == 0)
            rc = es__sqlite_exec(db, h, "creating es_meta", "COMMIT");
        if (rc != 0) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            goto done;
        }
        if (kind == FILE_EMPTY)
            kind = FILE_ESFOLD;
    }
    if (kind == FILE_FOREIGN) {
        rc = es__fail(h, ES_ECORRUPT, "sqlite:%s: not an esfold database: %s "
                      "(left untouched)", path, why);
        goto done;
    }

    if (!memory && !read_only) {
        /* WAL: readers never block the writer nor the other way round.
         * NORMAL is durable in WAL mode except for the last transactions
         * before a power cut, never corrupting. */
        if ((rc = set_wal(db, h, path)) != 0)
            goto done;
    }
    if ((rc = es__sqlite_exec(db, h, "setting pragmas",
                              "PRAGMA synchronous = NORMAL;"
                              "PRAGMA foreign_keys = ON")) != 0)
        goto done;
    *out = db;
    db = NULL;
done:
    es__sqlite_close(db);
    return rc;
}

/* ---- Migrations ---------------------------------------------------------- */

int es__sqlite_migrate(sqlite3 *db, es__handle *h, const char *component,
                       const char *const *steps, size_t nsteps)
{
    char key[128], what[192];
    int64_t version = 0;
    int found, rc, in_tx = 0;

    snprintf(key, sizeof key, "schema.%s", component);
    /* Read outside a transaction first: an up-to-date file (the usual case)
     * costs no write lock. */
    if ((rc = es__sqlite_meta_get_i64(db, h, key, &version, &found)) != 0)
        goto done;
    for (;;) {
        if (version < 0 || (uint64_t)version > nsteps) {
            rc = es__fail(h, ES_ECORRUPT,
                          "sqlite:%s: the %s schema is version %lld, newer than "
                          "this esfold knows (%zu): open it with a newer esfold",
                          es__sqlite_name(db), component, (long long)version,
                          nsteps);
            goto done;
        }
        if ((uint64_t)version == nsteps)
            break;
        if (sqlite3_db_readonly(db, "main") == 1) {
            /* A reading command must not change the file. */
            if (version == 0)
                rc = es__fail(h, ES_ENOTFOUND, "sqlite:%s: the file has no %s "
                              "tables (opened read-only: nothing is created)",
                              es__sqlite_name(db), component);
            else
                rc = es__fail(h, ES_EUNSUPPORTED, "sqlite:%s: the %s schema is "
                              "version %lld, older than this esfold's (%zu): "
                              "open the file for writing once to upgrade it",
                              es__sqlite_name(db), component,
                              (long long)version, nsteps);
            goto done;
        }
        if ((rc = es__sqlite_exec(db, h, "starting a migration",
                                  "BEGIN IMMEDIATE")) != 0)
            goto done;
        in_tx = 1;
        /* Another process may have migrated while we waited for the lock. */
        if ((rc = es__sqlite_meta_get_i64(db, h, key, &version, &found)) != 0)
            goto done;
        if (version >= 0 && (uint64_t)version < nsteps) {
            snprintf(what, sizeof what, "migrating the %s schema to version %lld",
                     component, (long long)version + 1);
            if ((rc = es__sqlite_exec(db, h, what, steps[version])) != 0)
                goto done;
            if ((rc = es__sqlite_meta_set_i64(db, h, key, version + 1)) != 0)
                goto done;
            version++;
        }
        if ((rc = es__sqlite_exec(db, h, "committing a migration", "COMMIT")) != 0)
            goto done;
        in_tx = 0;
    }
done:
    if (in_tx)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}
