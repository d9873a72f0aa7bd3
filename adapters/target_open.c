/*
 * adapters/target_open.c - es__target_open: pick the projection target
 * backend by URI scheme.
 *
 * Adding a backend is one line in `schemes` (and its object in the
 * Makefile); nothing else dispatches on the scheme.
 */
#include <string.h>

#include "projections/target_backend.h"

extern const es__target_backend es__sqlite_target_backend;
extern const es__target_backend es__pg_target_backend;

static const struct {
    const char *prefix;
    const es__target_backend *backend;
} schemes[] = {
    {"sqlite:", &es__sqlite_target_backend},
    {"postgresql://", &es__pg_target_backend},
    {"postgres://", &es__pg_target_backend},
};

static int unknown_open(es__target *t, void **self, const char *uri)
{
    *self = NULL;
    if (*uri == '\0')
        return es__fail(&t->h, ES_EINVAL,
                        "no projection target URI (give --target, or set "
                        "ESFOLD_TARGET): expected sqlite:PATH or "
                        "postgresql://...");
    return es__fail(&t->h, ES_EINVAL,
                    "unknown projection target URI scheme in '%s': expected "
                    "sqlite:PATH or postgresql://...", t->name);
}

static void unknown_close(void *self)
{
    (void)self;
}

static const es__target_backend unknown_backend = {
    .version = ES__TARGET_BACKEND_VERSION,
    .name = "unknown",
    .open = unknown_open,
    .close = unknown_close,
};

int es__target_open(es__target **out, const char *uri)
{
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strncmp(uri, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
            return es__target_open_backend(out, schemes[i].backend, uri);
    return es__target_open_backend(out, &unknown_backend, uri);
}
