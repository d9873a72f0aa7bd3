/*
 * core/time.c - UTC microsecond timestamps and ISO 8601.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "esfold/time.h"
#include "internal.h"

int64_t es_time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void es__sleep_ms(int ms)
{
    struct timespec ts;
    if (ms <= 0)
        return;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

int es__backoff_ms(int ms, int first, int max)
{
    if (ms <= 0)
        return first;
    return ms > max / 2 ? max : ms * 2;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Reads exactly n digits at *p. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* `at` is where the offending field or character starts, so that the
 * message points at it ("bad month at character 6" for 2026-13-01). */
#define BAD(what) \
    es__err(err, ES_EINVAL, "invalid time '%s': %s at character %d " \
            "(expected ISO 8601 like 2026-03-01T10:00:00Z)", \
            text, what, (int)(at - text) + 1)

int es_time_parse(int64_t *out, const char *text, es_error *err)
{
    const char *p = text, *at = text;
    int y, mo, d, hh = 0, mi = 0, ss = 0, oh = 0, om = 0;
    int64_t frac = 0, us;
    int sign = 0;

    if (out == NULL || text == NULL)
        return es__err(err, ES_EINVAL, "no time given");
    if (digits(&p, 4, &y))
        return BAD("bad year");
    at = p;
    if (*p != '-')
        return BAD("expected '-'");
    at = ++p;
    if (digits(&p, 2, &mo) || mo < 1 || mo > 12)
        return BAD("bad month");
    at = p;
    if (*p != '-')
        return BAD("expected '-'");
    at = ++p;
    if (digits(&p, 2, &d) || d < 1 || d > days_in_month(y, mo))
        return BAD("bad day");
    if (*p == 'T' || *p == 't' || *p == ' ') {
        at = ++p;
        if (digits(&p, 2, &hh) || hh > 23)
            return BAD("bad hour");
        at = p;
        if (*p != ':')
            return BAD("expected ':'");
        at = ++p;
        if (digits(&p, 2, &mi) || mi > 59)
            return BAD("bad minute");
        if (*p == ':') {
            at = ++p;
            if (digits(&p, 2, &ss) || ss > 60)
                return BAD("bad second");
            if (ss == 60)
                ss = 59; /* a leap second folds into the one before */
            if (*p == '.' || *p == ',') {
                int n = 0;
                at = ++p;
                if (*p < '0' || *p > '9')
                    return BAD("expected fraction digits");
                for (; *p >= '0' && *p <= '9'; p++, n++)
                    if (n < 6)
                        frac = frac * 10 + (*p - '0');
                for (; n < 6; n++)
                    frac *= 10;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p++ == '-' ? -1 : 1;
            at = p;
            if (digits(&p, 2, &oh) || oh > 23)
                return BAD("bad offset hours");
            if (*p == ':')
                p++;
            at = p;
            if (digits(&p, 2, &om) || om > 59)
                return BAD("bad offset minutes");
        }
    }
    at = p;
    if (*p != '\0')
        return BAD("unexpected text");
    us = ((days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss) -
          (int64_t)sign * (oh * 3600 + om * 60)) * 1000000 + frac;
    /* An offset can carry 0000-01-01 or 9999-12-31 over a year end, out
     * of what can be written back ("-001-12-31T19:00:00Z"). */
    if (us < ES_TIME_MIN_US || us > ES_TIME_MAX_US)
        return es__err(err, ES_EINVAL, "invalid time '%s': in UTC it is "
                       "outside the years 0000 to 9999", text);
    *out = us;
    return 0;
}

int es_time_format(char *buf, size_t size, int64_t us)
{
    int64_t secs = us / 1000000, frac = us % 1000000, days, y;
    int m, d, n;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    days = secs / 86400;
    if (secs % 86400 < 0)
        days -= 1;
    secs -= days * 86400;
    civil_from_days(days, &y, &m, &d);
    if (frac)
        n = snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02d.%06lldZ",
                     (long long)y, m, d, (int)(secs / 3600),
                     (int)(secs / 60 % 60), (int)(secs % 60), (long long)frac);
    else
        n = snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02dZ",
                     (long long)y, m, d, (int)(secs / 3600),
                     (int)(secs / 60 % 60), (int)(secs % 60));
    return n < 0 || (size_t)n >= size ? -1 : n;
}
