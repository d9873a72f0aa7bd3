/*
 * adapters/log_open.c - es_log_open: pick the log backend by URI scheme.
 *
 * Adding a backend is one line in `schemes` (and its object in the
 * Makefile); nothing else dispatches on the scheme.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log_backend.h"

extern const es__log_backend es__sqlite_log_backend;
extern const es__log_backend es__kafka_log_backend;

typedef struct scheme {
    const char *prefix;
    const es__log_backend *backend; /* NULL: known but not built in */
    const char *why_not;            /* then this says so */
} scheme;

static const scheme schemes[] = {
    {"sqlite:", &es__sqlite_log_backend, NULL},
    {"kafka://", &es__kafka_log_backend, NULL},
};

static const scheme *find_scheme(const char *uri)
{
    size_t i;
    for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strncmp(uri, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
            return &schemes[i];
    return NULL;
}

/*
 * A backend that only fails to open, with the reason. Running the URIs that
 * no backend takes through es__log_open_backend gives the caller a handle
 * whose es_errmsg() says what was wrong, as log.h promises for every
 * failure after which a handle can be made; core/log.c refuses every other
 * call on a handle whose open failed, so the other functions are never
 * reached.
 */
static int unavailable_open(es_log *log, void **self, const char *uri)
{
    const scheme *sc = find_scheme(uri);
    *self = NULL;
    if (sc && sc->why_not)
        return es__fail(&log->h, ES_EUNSUPPORTED, "%s: %s", uri, sc->why_not);
    return es__fail(&log->h, ES_EINVAL,
                    "unknown log URI scheme in '%s': expected sqlite:PATH or "
                    "kafka://HOST:PORT",
                    uri);
}

static void unavailable_close(void *self)
{
    (void)self;
}

static const es__log_backend unavailable_backend = {
    .name = "unavailable",
    .open = unavailable_open,
    .close = unavailable_close,
};

int es_log_open(es_log **out, const char *uri)
{
    const scheme *sc;

    if (out == NULL)
        return ES_EINVAL;
    if (uri == NULL) {
        uri = getenv("ESFOLD_LOG");
        if (uri == NULL || *uri == '\0')
            uri = ES_LOG_DEFAULT_URI;
    }
    sc = find_scheme(uri);
    return es__log_open_backend(out, sc && sc->backend ? sc->backend
                                                       : &unavailable_backend,
                                uri);
}
