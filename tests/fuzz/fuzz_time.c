/*
 * tests/fuzz/fuzz_time.c - ISO 8601 parsing and formatting (core/time.c)
 * on arbitrary text.
 *
 * The input is made a C string (it ends at its first NUL byte). Properties:
 * es_time_parse either fails with ES_EINVAL and a message, or gives a time
 * that es_time_format writes (into ES_TIME_BUFSZ, as promised) as text
 * that parses back to the same microsecond and formats to the same text.
 */
#include <string.h>

#include "esfold/esfold.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text, buf[ES_TIME_BUFSZ], again[ES_TIME_BUFSZ];
    int64_t us, back;
    es_error err;
    int rc, n;

    if ((text = malloc(size + 1)) == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&err, 0, sizeof err);
    rc = es_time_parse(&us, text, &err);
    if (rc != 0) {
        if (rc != ES_EINVAL)
            fuzz_fail("parse failed with %d, expected ES_EINVAL", rc);
        if (err.text[0] == '\0' || memchr(err.text, '\0', sizeof err.text) == NULL)
            fuzz_fail("failed parse without a message");
        free(text);
        return 0;
    }
    if ((n = es_time_format(buf, sizeof buf, us)) < 0)
        fuzz_fail("'%s' parsed to %lld, which does not format", text,
                  (long long)us);
    if ((size_t)n != strlen(buf))
        fuzz_fail("format returned %d for '%s'", n, buf);
    if (es_time_parse(&back, buf, &err) != 0)
        fuzz_fail("'%s' parsed to %lld, formatted as '%s', which does not "
                  "parse: %s", text, (long long)us, buf, err.text);
    if (back != us)
        fuzz_fail("'%s' parsed to %lld, formatted as '%s', which parses to "
                  "%lld", text, (long long)us, buf, (long long)back);
    if (es_time_format(again, sizeof again, back) != n || strcmp(buf, again) != 0)
        fuzz_fail("format is not stable: '%s' then '%s'", buf, again);
    free(text);
    return 0;
}
