/*
 * tests/harness.h - what the test programs share: temporary directories,
 * fresh logs, and capturing a command's output.
 */
#ifndef ESFOLD_TESTS_HARNESS_H
#define ESFOLD_TESTS_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "esfold/esfold.h"

/* A fresh directory under $TMPDIR (or /tmp), removed at exit. The string
 * is owned by the harness. */
const char *es_test_tmpdir(void);

/* A new path in that directory: "<tmpdir>/<name>-<n>" (a new n each call).
 * The string lives until exit. */
const char *es_test_path(const char *name);

/* "sqlite:<fresh path>.db", or with $ESFOLD_TEST_LOG_URI_BASE set (a kafka
 * URI) that URI with a fresh topic prefix. The string lives until exit. */
const char *es_test_fresh_log_uri(void);

/* Opens a fresh log (asserts success). */
es_log *es_test_open_fresh_log(void);

/* Runs fn(argc, argv) with stdout and stderr captured; returns its exit
 * status and sets *out / *err (owned by the harness, valid until the next
 * call). */
int es_test_capture(int (*fn)(int, char **, void *), int argc, char **argv,
                    void *user_data, const char **out, const char **err);

/* es_test_capture of fn with argv "bank --log LOG_URI" then the words
 * given (NULL-terminated, at most 20). */
int es_test_cli(int (*fn)(int, char **, void *), const char **out,
                const char **err, const char *log_uri, ...);

/* How many records of aggregate_type in the log every reader judges
 * `verdict` (ES_VERDICT_STALE: a zombie writer's; ES_VERDICT_MALFORMED),
 * over all partitions. */
int es_test_count_verdict(es_log *log, const char *aggregate_type,
                          es_verdict verdict);

/* Asserts that haystack contains needle, printing both when it does not. */
#define assert_contains(haystack, needle) \
    es_test_assert_contains((haystack), (needle), __FILE__, __LINE__)
void es_test_assert_contains(const char *haystack, const char *needle,
                             const char *file, int line);

#endif
