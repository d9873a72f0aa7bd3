/*
 * adapters/postgres/pg.h - what esfold's PostgreSQL adapters share.
 *
 * Internal: not installed, not API.
 */
#ifndef ESFOLD_ADAPTERS_POSTGRES_PG_H
#define ESFOLD_ADAPTERS_POSTGRES_PG_H

#include <stddef.h>

#include <libpq-fe.h>

#include "core/internal.h"

/* libpq's message on one line (its lines joined by a space) into buf. */
const char *es__pg_message(char *buf, size_t size, const char *msg);

/* A notice processor that drops notices (NOTICE: relation exists...). */
void es__pg_quiet_notices(void *arg, const char *message);

/* Checks the syntax of a libpq URI (no connection): 0, or ES_EINVAL with
 * "<name>: not a valid PostgreSQL URI: ..." in h. */
int es__pg_check_uri(const char *uri, const char *name, es__handle *h);

/*
 * Connects to uri with connect_timeout 5 (the URI may say otherwise) and
 * application_name esfold, notices dropped. On failure sets h's message
 * ("<name>: cannot connect: ...") and returns ES_EIO; *out is then NULL.
 */
int es__pg_connect(PGconn **out, const char *uri, const char *name,
                   es__handle *h);

#endif
