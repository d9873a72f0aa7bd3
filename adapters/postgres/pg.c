/*
 * adapters/postgres/pg.c - what esfold's PostgreSQL adapters share.
 */
#include "pg.h"

const char *es__pg_message(char *buf, size_t size, const char *msg)
{
    size_t n = 0;
    if (msg == NULL || *msg == '\0')
        msg = "unknown error";
    for (; *msg && n + 1 < size; msg++) {
        char c = *msg == '\n' || *msg == '\t' ? ' ' : *msg;
        if (c == ' ' && (n == 0 || buf[n - 1] == ' '))
            continue;
        buf[n++] = c;
    }
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return buf;
}

void es__pg_quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int es__pg_connect(PGconn **out, const char *uri, const char *name,
                   es__handle *h)
{
    static const char *const keys[] = {"connect_timeout", "application_name",
                                       "dbname", NULL};
    const char *values[4];
    char msg[512];
    PGconn *conn;
    int rc;

    *out = NULL;
    /* Later keywords win, so the URI's own connect_timeout does. */
    values[0] = "5";
    values[1] = "esfold";
    values[2] = uri;
    values[3] = NULL;
    if ((conn = PQconnectdbParams(keys, values, 1)) == NULL)
        return es__fail(h, ES_ENOMEM, "out of memory");
    if (PQstatus(conn) != CONNECTION_OK) {
        rc = es__fail(h, ES_EIO, "%s: cannot connect: %s", name,
                      es__pg_message(msg, sizeof msg, PQerrorMessage(conn)));
        PQfinish(conn);
        return rc;
    }
    PQsetNoticeProcessor(conn, es__pg_quiet_notices, NULL);
    *out = conn;
    return 0;
}

int es__pg_check_uri(const char *uri, const char *name, es__handle *h)
{
    PQconninfoOption *opts;
    char *err = NULL, msg[512];

    if ((opts = PQconninfoParse(uri, &err)) == NULL) {
        es__fail(h, ES_EINVAL, "%s: not a valid PostgreSQL URI: %s", name,
                 es__pg_message(msg, sizeof msg, err ? err : "out of memory"));
        PQfreemem(err);
        return ES_EINVAL;
    }
    PQconninfoFree(opts);
    return 0;
}
