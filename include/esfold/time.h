/*
 * esfold/time.h - timestamps: microseconds since the Unix epoch, UTC.
 */
#ifndef ESFOLD_TIME_H
#define ESFOLD_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The times esfold accepts: 0000-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999999Z, the ones ISO 8601 writes with four year
 * digits and so the ones es_time_format's text parses back.
 */
#define ES_TIME_MIN_US (INT64_C(-62167219200) * 1000000)
#define ES_TIME_MAX_US (INT64_C(253402300800) * 1000000 - 1)

/* The current time (CLOCK_REALTIME) in microseconds since the epoch. */
int64_t es_time_now_us(void);

/*
 * Parses ISO 8601 in UTC or with an offset: "2026-03-01T10:00:00Z",
 * "2026-03-01T10:00:00.25Z", "2026-03-01T11:00:00+01:00", "2026-03-01"
 * (midnight UTC). Up to 6 fraction digits are kept; more are truncated.
 * Returns 0, or ES_EINVAL with err->text naming the offending character.
 */
int es_time_parse(int64_t *out, const char *text, es_error *err);

/*
 * Formats `us` as "2026-03-01T10:00:00.123456Z" (fraction omitted when it
 * is zero) into buf. Returns the length written, or -1 if buf is too small
 * (ES_TIME_BUFSZ is always enough).
 */
#define ES_TIME_BUFSZ 40
int es_time_format(char *buf, size_t size, int64_t us);

#ifdef __cplusplus
}
#endif
#endif
