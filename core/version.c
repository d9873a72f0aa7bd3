/*
 * core/version.c - es_version: the version this library was built as.
 */
#include "esfold/version.h"

#include <stddef.h>

const char *es_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = ES_VERSION_MAJOR;
    if (minor)
        *minor = ES_VERSION_MINOR;
    if (patch)
        *patch = ES_VERSION_PATCH;
    return ES_VERSION_STRING;
}
