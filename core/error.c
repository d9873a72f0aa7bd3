/*
 * core/error.c - error codes, and the message every handle carries.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *es_strerror(int code)
{
    switch (code) {
    case ES_OK: return "success";
    case ES_EINVAL: return "invalid argument or malformed input";
    case ES_ENOMEM: return "out of memory";
    case ES_EIO: return "input/output error";
    case ES_ENOTFOUND: return "not found";
    case ES_ECONFLICT: return "version conflict";
    case ES_ETRUNCATED: return "log truncated";
    case ES_ECORRUPT: return "corrupt data";
    case ES_EREFUSED: return "command refused";
    case ES_EUSER: return "stopped by callback";
    case ES_EUNHANDLED: return "unhandled event type";
    case ES_EUNSUPPORTED: return "not supported by this backend";
    case ES_ETIMEDOUT: return "timed out";
    case ES_EUNKNOWN: return "outcome unknown (may or may not have been written)";
    default: return "unknown error";
    }
}

const char *es_errmsg(const void *handle)
{
    const es__handle *h = handle;
    if (h == NULL)
        return "no handle (the call failed before one could be made)";
    if (h->magic != ES__MAGIC)
        return "not an esfold handle";
    return h->errmsg;
}

void es__handle_init(es__handle *h)
{
    h->magic = ES__MAGIC;
    h->errmsg[0] = '\0';
}

void es__clear(es__handle *h)
{
    h->errmsg[0] = '\0';
}

int es__vfail(es__handle *h, int code, const char *fmt, va_list ap)
{
    char tmp[ES__ERRMSG_MAX];
    /* Format into a copy: the arguments may point into h->errmsg itself. */
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    memcpy(h->errmsg, tmp, sizeof tmp);
    return code;
}

int es__fail(es__handle *h, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es__vfail(h, code, fmt, ap);
    va_end(ap);
    return code;
}

int es__err(es_error *err, int code, const char *fmt, ...)
{
    char tmp[sizeof err->text];
    va_list ap;
    if (err == NULL)
        return code;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(err->text, tmp, sizeof tmp);
    return code;
}

/* ---- Diagnostics ----------------------------------------------------------- */

static pthread_mutex_t diag_lock = PTHREAD_MUTEX_INITIALIZER;
static es_diagnostic_fn diag_fn;
static void *diag_user_data;

void es_set_diagnostic_fn(es_diagnostic_fn fn, void *user_data)
{
    pthread_mutex_lock(&diag_lock);
    diag_fn = fn;
    diag_user_data = user_data;
    pthread_mutex_unlock(&diag_lock);
}

void es__diagnostic(const char *source, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    pthread_mutex_lock(&diag_lock);
    if (diag_fn) {
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        diag_fn(source, level, line, diag_user_data);
    }
    pthread_mutex_unlock(&diag_lock);
}
