/*
 * tests/harness.c - see harness.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static char tmpdir[512];
static char *paths[4096];
static size_t npaths;
static char *cap_out, *cap_err;

static void cleanup(void)
{
    char cmd[600];
    for (size_t i = 0; i < npaths; i++)
        free(paths[i]);
    free(cap_out);
    free(cap_err);
    if (tmpdir[0] && getenv("ESFOLD_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: could not remove %s\n", tmpdir);
    }
}

const char *es_test_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/esfold-test-XXXXXX",
                 base && *base ? base : "/tmp");
        if (mkdtemp(tmpdir) == NULL) {
            perror("mkdtemp");
            abort();
        }
        atexit(cleanup);
    }
    return tmpdir;
}

static const char *keep(char *s)
{
    if (s == NULL || npaths == sizeof paths / sizeof *paths)
        abort();
    paths[npaths++] = s;
    return s;
}

const char *es_test_path(const char *name)
{
    static unsigned n;
    char *p = malloc(strlen(es_test_tmpdir()) + strlen(name) + 32);
    if (p == NULL)
        abort();
    sprintf(p, "%s/%s-%u", es_test_tmpdir(), name, n++);
    return keep(p);
}

const char *es_test_fresh_log_uri(void)
{
    static unsigned n;
    const char *base = getenv("ESFOLD_TEST_LOG_URI_BASE");
    char *u;
    if (base && *base) {
        u = malloc(strlen(base) + 64);
        if (u == NULL)
            abort();
        sprintf(u, "%s%sprefix=t%ld.%u.", base, strchr(base, '?') ? "&" : "?",
                (long)getpid(), n++);
        return keep(u);
    }
    {
        const char *p = es_test_path("log");
        u = malloc(strlen(p) + 16);
        if (u == NULL)
            abort();
        sprintf(u, "sqlite:%s.db", p);
        return keep(u);
    }
}

es_log *es_test_open_fresh_log(void)
{
    es_log *log = NULL;
    const char *uri = es_test_fresh_log_uri();
    int rc = es_log_open(&log, uri);
    if (rc != 0)
        fprintf(stderr, "opening %s: %s\n", uri, es_errmsg(log));
    assert_int_equal(rc, 0);
    return log;
}

static char *slurp(FILE *f)
{
    long n;
    char *s;
    fflush(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    s = malloc((size_t)n + 1);
    if (s == NULL)
        abort();
    if (n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n)
        abort();
    s[n] = '\0';
    return s;
}

int es_test_capture(int (*fn)(int, char **, void *), int argc, char **argv,
                    void *user_data, const char **out, const char **err)
{
    FILE *fo = tmpfile(), *fe = tmpfile();
    int saved_out, saved_err, status;
    if (fo == NULL || fe == NULL)
        abort();
    fflush(stdout);
    fflush(stderr);
    saved_out = dup(1);
    saved_err = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    status = fn(argc, argv, user_data);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    free(cap_out);
    free(cap_err);
    cap_out = slurp(fo);
    cap_err = slurp(fe);
    fclose(fo);
    fclose(fe);
    if (out)
        *out = cap_out;
    if (err)
        *err = cap_err;
    return status;
}

void es_test_assert_contains(const char *haystack, const char *needle,
                             const char *file, int line)
{
    if (haystack == NULL || strstr(haystack, needle) == NULL) {
        print_error("%s:%d: expected to find\n  \"%s\"\nin\n  \"%s\"\n", file,
                    line, needle, haystack ? haystack : "(null)");
        _fail(file, line);
    }
}

int es_test_cli(int (*fn)(int, char **, void *), const char **out,
                const char **err, const char *log_uri, ...)
{
    char *argv[24];
    int argc = 0;
    va_list ap;
    argv[argc++] = "bank";
    argv[argc++] = "--log";
    argv[argc++] = (char *)log_uri;
    va_start(ap, log_uri);
    while (argc < 23 && (argv[argc] = va_arg(ap, char *)) != NULL)
        argc++;
    va_end(ap);
    argv[argc] = NULL;
    return es_test_capture(fn, argc, argv, NULL, out, err);
}

typedef struct verdict_count {
    es_verdict verdict;
    int n;
} verdict_count;

static int count_verdict_cb(const es_event *ev, es_verdict verdict,
                            const char *why, void *ud)
{
    verdict_count *c = ud;
    (void)ev;
    (void)why;
    c->n += verdict == c->verdict;
    return 0;
}

int es_test_count_verdict(es_log *log, const char *aggregate_type,
                          es_verdict verdict)
{
    verdict_count c = {verdict, 0};
    int32_t count = 0;
    assert_int_equal(es_log_partition_count(log, &count, aggregate_type), 0);
    for (int32_t p = 0; p < count; p++) {
        int64_t next = 0;
        assert_int_equal(es_log_scan_partition(log, &next, aggregate_type, p, 0, 0,
                                               count_verdict_cb, &c), 0);
    }
    return c.n;
}
