/*
 * esfold/version.h - the version of esfold, the one place it is written.
 *
 * The Makefile reads ES_VERSION_MAJOR/MINOR/PATCH from this file (for the
 * shared library's file name and esfold.pc), so a release changes these
 * three lines and nothing else.
 *
 * The macros are the version of the headers a program was compiled
 * against; es_version() is the version of the library it runs with. They
 * differ when a program built against one release loads another
 * libesfold.so.0.
 */
#ifndef ESFOLD_VERSION_H
#define ESFOLD_VERSION_H

#define ES_VERSION_MAJOR 0
#define ES_VERSION_MINOR 1
#define ES_VERSION_PATCH 0

#define ES__VERSION_STR2(x) #x
#define ES__VERSION_STR(x) ES__VERSION_STR2(x)
/* "0.1.0" */
#define ES_VERSION_STRING                                                    \
    ES__VERSION_STR(ES_VERSION_MAJOR) "." ES__VERSION_STR(ES_VERSION_MINOR) \
    "." ES__VERSION_STR(ES_VERSION_PATCH)
/* One number that compares: 0x000100 for 0.1.0. */
#define ES_VERSION_NUMBER \
    ((ES_VERSION_MAJOR << 16) | (ES_VERSION_MINOR << 8) | ES_VERSION_PATCH)

/* The earlier name of ES_VERSION_STRING. */
#define ESFOLD_VERSION ES_VERSION_STRING

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The version of the library linked at run time, "0.1.0": a static string.
 * When major, minor or patch are not NULL they get its parts.
 */
const char *es_version(int *major, int *minor, int *patch);

#ifdef __cplusplus
}
#endif
#endif
