/*
 * tests/soak.c - a bounded soak of the SQLite log: several writer processes
 * race on a few shared streams with expected versions, for a time and an
 * event count, on a file in a fresh directory (loopback only: nothing but
 * the file).
 *
 *     soak [--seconds N] [--events N] [--writers N] [--streams N]
 *
 * Each writer appends commits of 1 to 3 events to a random stream at the
 * version it last saw. An append that succeeds is acknowledged (its ids
 * written to the writer's ack file); one that conflicts is refused (its ids
 * written to the refused file) and the writer reads the stream to catch
 * up; now and then it retries its last acknowledged commit, which must
 * come back as a duplicate. At the end: every acknowledged event is in the
 * log exactly once, no refused one is, every stream reads back dense,
 * es_log_check and `verify` find nothing; each writer's RSS at start and
 * end is printed. Exits 0 when all of that holds.
 *
 * `make soak` runs it (SOAK_SECONDS, SOAK_WRITERS); .ci/run a short form.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "esfold/esfold.h"
#include "harness.h"

#define MAX_STREAMS 64

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_cb(const es_event *ev, void *user_data)
{
    *(int64_t *)user_data = ev->version;
    return 0;
}

typedef struct writer_stats {
    long rss_start, rss_end;
    long acked, refused, duplicates, errors;
} writer_stats;

static void put_ids(int fd, char ids[][48], size_t n)
{
    char line[256];
    int len = 0;
    for (size_t i = 0; i < n; i++)
        len += snprintf(line + len, sizeof line - (size_t)len, "%s\n", ids[i]);
    if (write(fd, line, (size_t)len) != len)
        _exit(3);
}

static void writer(const char *uri, int w, int streams, double until,
                   long max_events, int ack_fd, int refused_fd, int stats_fd)
{
    es_log *log = NULL;
    int64_t seen[MAX_STREAMS] = {0};
    char last_ids[3][48];
    size_t last_n = 0;
    int last_stream = 0;
    long written = 0;
    writer_stats st;
    unsigned seed = (unsigned)(w * 7919 + 17);

    memset(&st, 0, sizeof st);
    if (es_log_open(&log, uri) != 0) {
        fprintf(stderr, "soak: writer %d: %s\n", w, es_errmsg(log));
        _exit(2);
    }
    st.rss_start = rss_kb();
    for (unsigned k = 0; now_s() < until && written < max_events; k++) {
        char sid[16], ids[3][48];
        es_event evs[3];
        es_append_result ar;
        int s = (int)(rand_r(&seed) % (unsigned)streams), rc;
        size_t n = 1 + rand_r(&seed) % 3;
        json_t *p = json_pack("{s:i,s:i}", "writer", w, "k", (int)k);

        if (last_n && rand_r(&seed) % 16 == 0) {
            /* A retry of the last acknowledged commit: a duplicate. */
            memset(evs, 0, sizeof evs);
            for (size_t i = 0; i < last_n; i++) {
                evs[i].type = "Noted";
                evs[i].payload = p;
                evs[i].id = last_ids[i];
            }
            snprintf(sid, sizeof sid, "s-%d", last_stream);
            rc = es_log_append(log, &ar, "soak", sid, ES_EXPECT_ANY, evs, last_n);
            if (rc != 0 || !ar.duplicate) {
                fprintf(stderr, "soak: writer %d: a retry was not a duplicate "
                        "(%d: %s)\n", w, rc, es_errmsg(log));
                st.errors++;
            } else {
                st.duplicates++;
            }
        }
        memset(evs, 0, sizeof evs);
        snprintf(sid, sizeof sid, "s-%d", s);
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "w%d-k%u-%zu", w, k, i);
            evs[i].type = "Noted";
            evs[i].payload = p;
            evs[i].id = ids[i];
        }
        rc = es_log_append(log, &ar, "soak", sid, seen[s], evs, n);
        if (rc == 0) {
            put_ids(ack_fd, ids, n);
            seen[s] = ar.version;
            st.acked += (long)n;
            written += (long)n;
            memcpy(last_ids, ids, sizeof ids);
            last_n = n;
            last_stream = s;
        } else if (rc == ES_ECONFLICT) {
            es_read_options ro = ES_READ_OPTIONS_INIT;
            put_ids(refused_fd, ids, n);
            st.refused += (long)n;
            ro.from_version = seen[s] + 1;
            if (es_log_read_stream(log, "soak", sid, &ro, count_cb, &seen[s]) != 0) {
                fprintf(stderr, "soak: writer %d: %s\n", w, es_errmsg(log));
                st.errors++;
            }
        } else {
            fprintf(stderr, "soak: writer %d: %s\n", w, es_errmsg(log));
            st.errors++;
        }
        json_decref(p);
    }
    st.rss_end = rss_kb();
    es_log_close(log);
    if (write(stats_fd, &st, sizeof st) != (ssize_t)sizeof st)
        _exit(3);
    _exit(st.errors ? 1 : 0);
}

typedef struct idset {
    char (*v)[48];
    size_t n, cap;
} idset;

static void idset_add(idset *s, const char *id)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        if ((s->v = realloc(s->v, s->cap * sizeof *s->v)) == NULL)
            abort();
    }
    snprintf(s->v[s->n++], sizeof s->v[0], "%.47s", id);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int gather(const es_event *ev, void *user_data)
{
    idset_add(user_data, ev->id);
    return 0;
}

static void read_ids(const char *path, idset *s)
{
    char line[128];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        idset_add(s, line);
    }
    fclose(f);
}

static int on_problem(const char *kind, const char *message, void *user_data)
{
    fprintf(stderr, "soak: %s: %s\n", kind, message);
    ++*(int *)user_data;
    return 0;
}

static int cli(int argc, char **argv, void *user_data)
{
    return es_cli_main(argc, argv, user_data);
}

int main(int argc, char **argv)
{
    double seconds = 30, start;
    long events = 1000000;
    int writers = 6, streams = 4, problems = 0, failed = 0;
    const char *path, *acks, *refusals;
    char uri[700];
    pid_t pids[64];
    idset logged = {0}, acked = {0}, refused = {0};
    writer_stats total, st;
    int ack_fd, refused_fd, stats[2];
    es_log *log = NULL;
    long parent_rss_start = rss_kb();

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--events") == 0)
            events = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--writers") == 0)
            writers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--streams") == 0)
            streams = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: soak [--seconds N] [--events N] "
                    "[--writers N] [--streams N]\n");
            return 2;
        }
    }
    if (writers < 1 || writers > 64 || streams < 1 || streams > MAX_STREAMS ||
        seconds <= 0 || events < 1) {
        fprintf(stderr, "soak: writers 1..64, streams 1..%d, seconds and "
                "events > 0\n", MAX_STREAMS);
        return 2;
    }
    path = es_test_path("soak.db");
    acks = es_test_path("acks");
    refusals = es_test_path("refused");
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    ack_fd = open(acks, O_WRONLY | O_CREAT | O_APPEND, 0600);
    refused_fd = open(refusals, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (ack_fd < 0 || refused_fd < 0 || pipe(stats) != 0) {
        perror("soak");
        return 1;
    }
    printf("soak: %d writers on %d streams of %s for %.0f s or %ld events "
           "each\n", writers, streams, uri, seconds, events);
    fflush(stdout);
    start = now_s();
    for (int w = 0; w < writers; w++) {
        if ((pids[w] = fork()) < 0) {
            perror("fork");
            return 1;
        }
        if (pids[w] == 0)
            writer(uri, w, streams, start + seconds, events, ack_fd, refused_fd,
                   stats[1]);
    }
    close(stats[1]);
    memset(&total, 0, sizeof total);
    for (int w = 0; w < writers; w++) {
        int status;
        if (waitpid(pids[w], &status, 0) != pids[w] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "soak: writer %d failed (status %d)\n", w, status);
            failed++;
        }
    }
    for (int w = 0; read(stats[0], &st, sizeof st) == (ssize_t)sizeof st; w++) {
        printf("soak: writer: %ld acknowledged, %ld refused, %ld duplicate "
               "retries, RSS %ld kB at start, %ld kB at end\n", st.acked,
               st.refused, st.duplicates, st.rss_start, st.rss_end);
        total.acked += st.acked;
        total.refused += st.refused;
        total.duplicates += st.duplicates;
        total.errors += st.errors;
    }
    close(ack_fd);
    close(refused_fd);

    /* What the log holds. */
    if (es_log_open(&log, uri) != 0) {
        fprintf(stderr, "soak: %s\n", es_errmsg(log));
        return 1;
    }
    for (int32_t p = 0; p < 4; p++)
        if (es_log_read_partition(log, NULL, "soak", p, 0, 0, gather, &logged)) {
            fprintf(stderr, "soak: %s\n", es_errmsg(log));
            failed++;
        }
    for (int s = 0; s < streams; s++) {
        char sid[16];
        int64_t v = 0;
        snprintf(sid, sizeof sid, "s-%d", s);
        if (es_log_read_stream(log, "soak", sid, NULL, count_cb, &v) != 0) {
            fprintf(stderr, "soak: %s\n", es_errmsg(log));
            failed++;
        }
    }
    if (es_log_check(log, on_problem, &problems) != 0) {
        fprintf(stderr, "soak: %s\n", es_errmsg(log));
        failed++;
    }
    es_log_close(log);

    read_ids(acks, &acked);
    read_ids(refusals, &refused);
    qsort(logged.v, logged.n, sizeof *logged.v, cmp_id);
    for (size_t i = 1; i < logged.n; i++)
        if (strcmp(logged.v[i - 1], logged.v[i]) == 0) {
            fprintf(stderr, "soak: %s is in the log twice\n", logged.v[i]);
            failed++;
        }
    for (size_t i = 0; i < acked.n; i++)
        if (!bsearch(acked.v[i], logged.v, logged.n, sizeof *logged.v, cmp_id)) {
            fprintf(stderr, "soak: acknowledged but not in the log: %s\n",
                    acked.v[i]);
            failed++;
        }
    for (size_t i = 0; i < refused.n; i++)
        if (bsearch(refused.v[i], logged.v, logged.n, sizeof *logged.v, cmp_id)) {
            fprintf(stderr, "soak: refused but in the log: %s\n", refused.v[i]);
            failed++;
        }
    if (logged.n != acked.n) {
        fprintf(stderr, "soak: %zu events in the log, %zu acknowledged\n",
                logged.n, acked.n);
        failed++;
    }
    {
        char *vargv[] = {"esfold", "--log", uri, "verify", NULL};
        const char *out, *err;
        int status = es_test_capture(cli, 4, vargv, NULL, &out, &err);
        if (status != 0) {
            fprintf(stderr, "soak: verify: %s%s", out, err);
            failed++;
        }
    }
    printf("soak: %.1f s, %zu events in the log, %ld acknowledged, %ld refused "
           "(conflicts), %ld duplicate retries, %d storage problems, %ld "
           "writer errors; RSS of the checker %ld kB at start, %ld kB at end\n",
           now_s() - start, logged.n, total.acked, total.refused,
           total.duplicates, problems, total.errors, parent_rss_start, rss_kb());
    failed += problems + (int)total.errors;
    printf("soak: %s\n", failed ? "FAILED" : "OK: nothing lost, nothing refused "
           "written, verify clean");
    free(logged.v);
    free(acked.v);
    free(refused.v);
    return failed ? 1 : 0;
}
