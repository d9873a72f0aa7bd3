/*
 * adapters/kafka/uri.c - kafka:// URIs and client configurations.
 */
#include <stdlib.h>
#include <string.h>

#include "kafka.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A %-decoded copy of s[0..n), or NULL (ENOMEM, or a bad escape: *bad). */
static char *decode(const char *s, size_t n, int *bad)
{
    char *out = es__malloc(n + 1), *o = out;
    size_t i;
    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                es__free(out);
                *bad = 1;
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

void es__kafka_uri_free(es__kafka_uri *u)
{
    size_t i;
    if (u == NULL)
        return;
    es__free(u->brokers);
    es__free(u->prefix);
    for (i = 0; i < u->nconf; i++) {
        es__free(u->conf[i].name);
        es__free(u->conf[i].value);
    }
    memset(u, 0, sizeof *u);
}

static int parse_int(int64_t *out, const char *v, int64_t min, int64_t max)
{
    return es__parse_i64(out, v) == 0 && *out >= min && *out <= max ? 0 : -1;
}

int es__kafka_uri_parse(es__kafka_uri *out, const char *uri, es__handle *h)
{
    const char *p, *q, *end;
    int rc = ES_ENOMEM, bad = 0;

    memset(out, 0, sizeof *out);
    out->partitions = 4;
    out->replication = -1;
    out->timeout_ms = 10000;
    out->transactions = 1;
    if (strncmp(uri, "kafka://", 8) != 0)
        return es__fail(h, ES_EINVAL, "%s: not a kafka:// URI", uri);
    p = uri + 8;
    q = strchr(p, '?');
    end = q ? q : p + strlen(p);
    if (end > p && end[-1] == '/')
        end--;
    if (end == p) {
        const char *env = getenv("ESFOLD_KAFKA_BROKERS");
        if (env == NULL || *env == '\0')
            return es__fail(h, ES_EINVAL,
                            "%s: no brokers in the URI and $ESFOLD_KAFKA_BROKERS "
                            "is not set",
                            uri);
        out->brokers = es__strdup(env);
    } else {
        out->brokers = es__strndup(p, (size_t)(end - p));
    }
    if ((out->prefix = es__strdup("")) == NULL || out->brokers == NULL)
        goto fail;

    for (p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&'), *eq;
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        char *key, *val;
        int64_t n;
        eq = memchr(p, '=', len);
        if (eq == NULL) {
            rc = es__fail(h, ES_EINVAL, "%s: '%.*s' is not key=value", uri,
                          (int)len, p);
            goto fail_msg;
        }
        key = decode(p, (size_t)(eq - p), &bad);
        val = decode(eq + 1, len - (size_t)(eq - p) - 1, &bad);
        if (key == NULL || val == NULL) {
            es__free(key);
            es__free(val);
            if (bad) {
                rc = es__fail(h, ES_EINVAL, "%s: bad %%-escape in '%.*s'", uri,
                              (int)len, p);
                goto fail_msg;
            }
            goto fail;
        }
        if (strcmp(key, "prefix") == 0) {
            es__free(out->prefix);
            out->prefix = val;
            val = NULL;
        } else if (strcmp(key, "partitions") == 0 ||
                   strcmp(key, "replication") == 0 ||
                   strcmp(key, "timeout_ms") == 0 ||
                   strcmp(key, "transactions") == 0 ||
                   strcmp(key, "owner") == 0) {
            int flag = (key[0] == 't' && key[1] == 'r') || key[0] == 'o';
            int64_t max = flag ? 1 : 1000000000;
            int64_t min = flag ? 0 : 1;
            if (parse_int(&n, val, min, max) != 0) {
                rc = es__fail(h, ES_EINVAL, "%s: %s=%s is not a number from "
                              "%lld to %lld", uri, key, val, (long long)min,
                              (long long)max);
                es__free(key);
                es__free(val);
                goto fail_msg;
            }
            if (key[0] == 'p')
                out->partitions = (int32_t)n, out->partitions_given = 1;
            else if (key[0] == 'r')
                out->replication = (int32_t)n;
            else if (key[1] == 'i')
                out->timeout_ms = (int)n;
            else if (key[0] == 'o')
                out->owner = (int)n;
            else
                out->transactions = (int)n;
        } else if (strncmp(key, "kafka.", 6) == 0 && key[6]) {
            if (out->nconf == ES__KAFKA_URI_MAX_CONF) {
                rc = es__fail(h, ES_EINVAL, "%s: more than %d kafka.* settings",
                              uri, ES__KAFKA_URI_MAX_CONF);
                es__free(key);
                es__free(val);
                goto fail_msg;
            }
            out->conf[out->nconf].name = es__strdup(key + 6);
            out->conf[out->nconf].value = val;
            val = NULL;
            if (out->conf[out->nconf++].name == NULL) {
                es__free(key);
                goto fail;
            }
        } else {
            rc = es__fail(h, ES_EINVAL,
                          "%s: unknown parameter '%s' (known: prefix, "
                          "partitions, replication, timeout_ms, transactions, owner, "
                          "kafka.<librdkafka property>)",
                          uri, key);
            es__free(key);
            es__free(val);
            goto fail_msg;
        }
        es__free(key);
        es__free(val);
        p = amp ? amp + 1 : NULL;
    }
    return 0;
fail:
    rc = es__fail(h, ES_ENOMEM, "out of memory");
fail_msg:
    es__kafka_uri_free(out);
    return rc;
}

/* librdkafka's own lines go to esfold's diagnostics, not to stderr. */
static void log_line(const rd_kafka_t *rk, int level, const char *fac,
                     const char *buf)
{
    es__diagnostic("kafka", level, "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

rd_kafka_conf_t *es__kafka_conf(const es__kafka_uri *u, const char *const *extra,
                                char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    size_t i;
    rd_kafka_conf_set_log_cb(conf, log_line);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", u->brokers, errstr,
                          errstr_size) != RD_KAFKA_CONF_OK)
        goto fail;
    /* Quiet by default: errors reach the caller through esfold messages. */
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, errstr_size) !=
        RD_KAFKA_CONF_OK)
        goto fail;
    for (i = 0; extra && extra[i]; i += 2)
        if (rd_kafka_conf_set(conf, extra[i], extra[i + 1], errstr,
                              errstr_size) != RD_KAFKA_CONF_OK)
            goto fail;
    for (i = 0; i < u->nconf; i++)
        if (rd_kafka_conf_set(conf, u->conf[i].name, u->conf[i].value, errstr,
                              errstr_size) != RD_KAFKA_CONF_OK)
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}
