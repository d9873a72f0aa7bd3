/*
 * adapters/snapshot_open.c - es_snapshot_store_open: pick the snapshot
 * store backend by URI scheme.
 *
 * Adding a backend is one line in `schemes` (and its object in the
 * Makefile); nothing else dispatches on the scheme.
 */
#include <stdlib.h>
#include <string.h>

#include "snapshots/store_backend.h"

extern const es__snapshot_backend es__sqlite_snapshot_backend;
extern const es__snapshot_backend es__pg_snapshot_backend;
extern const es__snapshot_backend es__kafka_snapshot_backend;

typedef struct scheme {
    const char *prefix;
    const es__snapshot_backend *backend; /* NULL: known but not built in */
    const char *why_not;                 /* then this says so */
} scheme;

static const scheme schemes[] = {
    {"sqlite:", &es__sqlite_snapshot_backend, NULL},
    {"postgresql://", &es__pg_snapshot_backend, NULL},
    {"postgres://", &es__pg_snapshot_backend, NULL},
    {"kafka://", &es__kafka_snapshot_backend, NULL},
};

static const scheme *find_scheme(const char *uri)
{
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strncmp(uri, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
            return &schemes[i];
    return NULL;
}

/* A backend that only fails to open, with the reason, so that the caller
 * gets a handle whose es_errmsg() says what was wrong (snapshot.h). */
static int unavailable_open(es_snapshot_store *store, void **self,
                            const char *uri)
{
    const scheme *sc = find_scheme(uri);
    *self = NULL;
    if (*uri == '\0')
        return es__fail(&store->h, ES_EINVAL,
                        "no snapshot store URI (give one, or set "
                        "ESFOLD_SNAPSHOTS): expected sqlite:PATH or "
                        "postgresql://...");
    if (sc)
        return es__fail(&store->h, ES_EUNSUPPORTED, "%s: %s",
                        es__snapshot_store_name(store), sc->why_not);
    return es__fail(&store->h, ES_EINVAL,
                    "unknown snapshot store URI scheme in '%s': expected "
                    "sqlite:PATH or postgresql://...",
                    es__snapshot_store_name(store));
}

static void unavailable_close(void *self)
{
    (void)self;
}

static const es__snapshot_backend unavailable_backend = {
    .name = "unavailable",
    .open = unavailable_open,
    .close = unavailable_close,
};

int es_snapshot_store_open(es_snapshot_store **out, const char *uri)
{
    const scheme *sc;

    if (out == NULL)
        return ES_EINVAL;
    if (uri == NULL) {
        uri = getenv("ESFOLD_SNAPSHOTS");
        if (uri == NULL)
            uri = "";
    }
    sc = find_scheme(uri);
    return es__snapshot_store_open_backend(
        out, sc && sc->backend ? sc->backend : &unavailable_backend, uri);
}
