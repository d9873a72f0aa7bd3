/*
 * tests/fuzz/fuzz_uri.c - the URI parsers (adapters/sqlite/schema.c,
 * adapters/kafka/uri.c, es_snapshot_default_uri) and the one redaction
 * every handle shows its URI through (es__uri_redact, core/log.c), on
 * arbitrary text (up to the first NUL).
 *
 * Properties: each parser succeeds or fails with a message; the redaction
 * is a fixed point (redacting twice changes nothing); and no secret gets
 * through it: the Kafka URI parser, reading the redacted text, finds "***"
 * as the value of every property whose name holds "password", "secret" or
 * "token".
 */
#include <string.h>
#include <strings.h>

#include "esfold/esfold.h"

#include "adapters/kafka/kafka.h"
#include "adapters/sqlite/sqlite.h"
#include "core/internal.h"
#include "fuzz.h"

static int secret_name(const char *name)
{
    static const char *const words[] = {"password", "secret", "token"};
    for (size_t w = 0; w < 3; w++)
        for (const char *p = name; *p; p++)
            if (strncasecmp(p, words[w], strlen(words[w])) == 0)
                return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const known[] = {"partitions", "mode", NULL};
    char *uri = malloc(size + 1), *shown, *again, *def = NULL;
    es__handle h;
    es__sqlite_uri su;
    es__kafka_uri ku;
    int rc;

    if (uri == NULL)
        fuzz_fail("out of memory");
    memcpy(uri, data, size);
    uri[size] = '\0';
    es__handle_init(&h);

    if ((shown = es__uri_redact(uri)) == NULL)
        fuzz_fail("redaction failed");
    if ((again = es__uri_redact(shown)) == NULL)
        fuzz_fail("redaction failed");
    if (strcmp(shown, again) != 0)
        fuzz_fail("redaction is not a fixed point:\n  %s\n  %s", shown, again);

    rc = es__sqlite_uri_parse(&su, uri, known, &h);
    if (rc == 0)
        es__sqlite_uri_free(&su);
    else if (h.errmsg[0] == '\0')
        fuzz_fail("sqlite URI refused without a message");

    es__handle_init(&h);
    unsetenv("ESFOLD_KAFKA_BROKERS");
    rc = es__kafka_uri_parse(&ku, uri, &h);
    if (rc == 0) {
        /* The parser, reading the redacted text, finds *** as the value of
         * every secret property. */
        es__kafka_uri shown_ku;
        es__kafka_uri_free(&ku);
        es__handle_init(&h);
        if (es__kafka_uri_parse(&shown_ku, shown, &h) != 0)
            fuzz_fail("the redacted URI no longer parses: %s (%s)", shown,
                      h.errmsg);
        for (size_t i = 0; i < shown_ku.nconf; i++)
            if (secret_name(shown_ku.conf[i].name) &&
                strcmp(shown_ku.conf[i].value, "***") != 0)
                fuzz_fail("the value of %s shows through the redaction: %s",
                          shown_ku.conf[i].name, shown);
        es__kafka_uri_free(&shown_ku);
    } else if (h.errmsg[0] == '\0') {
        fuzz_fail("kafka URI refused without a message");
    }

    unsetenv("ESFOLD_SNAPSHOTS");
    rc = es_snapshot_default_uri(&def, uri);
    if (rc == 0 && def == NULL)
        fuzz_fail("a default store URI that is NULL");
    es_free(def);

    es_free(again);
    es_free(shown);
    free(uri);
    return 0;
}
