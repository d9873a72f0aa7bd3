/*
 * bench/benchutil.h - what esfold's benchmarks share: a monotonic timer,
 * measuring esfold beside its limit in interleaved repetitions, a report
 * printed as a table or as JSON, progress on a terminal, a temporary
 * directory, peak RSS, command-line options and interruption.
 *
 * A benchmark measures an esfold operation and, in the same run on the same
 * data, the limit: the least work any program would do to get the same
 * result from the same backend (a raw SELECT plus parsing, a raw INSERT,
 * kcat reading the topic). Only the ratio esfold/limit is meaningful on a
 * shared machine; the absolute rates are printed for context.
 *
 * Not installed, not API. Everything here is for one thread.
 */
#ifndef ESFOLD_BENCH_BENCHUTIL_H
#define ESFOLD_BENCH_BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>

/* ---- Time ------------------------------------------------------------------ */

/* Seconds on the monotonic clock, from an arbitrary origin. */
double bu_now(void);

/* ---- Measuring esfold beside its limit ---------------------------------------- */

/*
 * One run of a measured operation. It does its own setup (a fresh file, a
 * prepared statement) untimed, times only the work with bu_now(), and
 * stores that in *seconds. Returns 0, or non-zero after printing why to
 * stderr (the benchmark then stops).
 */
typedef int (*bu_run_fn)(void *ctx, double *seconds);

#define BU_MAX_REPS 15

typedef struct bu_samples {
    int n;
    double s[BU_MAX_REPS]; /* seconds per run, in the order measured */
} bu_samples;

double bu_samples_best(const bu_samples *s);   /* the shortest */
double bu_samples_median(const bu_samples *s);

/*
 * Runs esfold_run and limit_run once each as a warm-up (not kept), then
 * `reps` times each, interleaved (esfold, limit, esfold, limit, ...) so that
 * a neighbour's load on the shared machine falls on both alike. Short runs
 * are noisy, so while either side has spent less than BU_MIN_SECONDS in
 * its kept runs, more pairs follow, up to BU_MAX_REPS. `what` names the
 * measurement in the progress line. Returns 0, the first non-zero return
 * of a run, or -1 when interrupted (bu_interrupted()).
 */
#define BU_MIN_SECONDS 1.0
int bu_measure_pair(const char *what, int reps, bu_run_fn esfold_run,
                    void *esfold_ctx, bu_run_fn limit_run, void *limit_ctx,
                    bu_samples *esfold_out, bu_samples *limit_out);

/* ---- The report ------------------------------------------------------------- */

#define BU_MAX_ROWS 16
#define BU_MAX_METRICS 3
#define BU_MAX_FACTS 16
#define BU_MAX_PARAMS 8

/* A rate of one unit: work / seconds, for esfold and for the limit. */
typedef struct bu_metric {
    char key[32];   /* JSON member: "events_per_s" */
    char unit[16];  /* in the table: "ev/s" */
    double esfold;
    double limit;
} bu_metric;

/*
 * One measurement: a line of the table. The first metric is the main one
 * and gives the ratio; further metrics (commits/s beside events/s) are
 * printed on continuation lines.
 */
typedef struct bu_row {
    char key[48];        /* JSON: "fold", "append_1" */
    char name[64];       /* table: "fold 1 stream x 100000 events" */
    char limit_desc[96]; /* what the limit is: "raw SELECT + json_loads" */
    double esfold_s;     /* the chosen (best) time of one run */
    double limit_s;
    double esfold_median_s;
    double limit_median_s;
    int reps;
    size_t nmetrics;
    bu_metric metrics[BU_MAX_METRICS];
} bu_row;

/* A number printed under the table and kept in the JSON (peak RSS...). */
typedef struct bu_fact {
    char key[48];
    char label[64];
    char unit[16];
    double value;
    int decimals;
} bu_fact;

typedef struct bu_report {
    char bench[32];     /* "sqlite" */
    char backend[32];   /* "SQLite 3.40.1" */
    char where[256];    /* the file or broker measured */
    char date[32];      /* UTC, filled by bu_report_init */
    size_t nrows;
    bu_row rows[BU_MAX_ROWS];
    size_t nfacts;
    bu_fact facts[BU_MAX_FACTS];
    int no_warmup;      /* 1: the rows were measured without a warm-up
                           round (the footer says so) */
    size_t nparams;
    struct {
        char key[32];
        long long value;
    } params[BU_MAX_PARAMS]; /* of the run: events, reps (JSON "params") */
} bu_report;

void bu_report_init(bu_report *r, const char *bench, const char *backend,
                    const char *where);

/*
 * Adds a row from the samples of one bu_measure_pair: the best run of each
 * side is kept (the least disturbed on a shared machine), the medians are
 * kept beside it in the JSON. `work` is how much one run did in the unit
 * of the first metric (events); add further metrics with bu_row_metric.
 * Returns the row (in r), or NULL when the report is full.
 */
bu_row *bu_report_row(bu_report *r, const char *key, const char *name,
                      const char *limit_desc, const bu_samples *esfold,
                      const bu_samples *limit, const char *metric_key,
                      const char *unit, double work);
/* Adds a further rate to row: work / the row's chosen times. */
void bu_row_metric(bu_row *row, const char *key, const char *unit, double work);

/* Adds a number shown under the table ("fold peak RSS: 12.5 MiB"). */
void bu_report_fact(bu_report *r, const char *key, const char *label,
                    double value, const char *unit, int decimals);

/* Records an integer parameter of the run (events, reps) for the JSON. */
void bu_report_param(bu_report *r, const char *key, long long value);

/* Prints the table on stdout. */
void bu_report_print(const bu_report *r);
/* Prints the JSON document on stdout. Returns 0 or -1 (out of memory). */
int bu_report_print_json(const bu_report *r);

/* Formats v with thousands separators ("1,900,000") into buf. */
const char *bu_fmt_count(char *buf, size_t size, double v);

/* ---- Progress on a terminal ----------------------------------------------- */

/*
 * Transient lines on stderr, only when stderr is a terminal (isatty(2)):
 * nothing at all otherwise, so logs and CI stay clean.
 */
typedef struct bu_progress {
    char label[128];
    uint64_t total;
    int last_pct;
    int active;
} bu_progress;

/* "loading 100000 events..." then a percentage as bu_progress_update goes. */
void bu_progress_begin(bu_progress *p, uint64_t total, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void bu_progress_update(bu_progress *p, uint64_t done);
/* Clears the line. */
void bu_progress_end(bu_progress *p);

/* A one-off transient status line ("fold: run 2 of 3"); NULL clears it. */
void bu_status(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* ---- Files ------------------------------------------------------------------ */

/*
 * Makes a private directory "esfold-bench-NAME.XXXXXX" under $TMPDIR (or
 * /tmp) into dir. Returns 0 or -1 (message on stderr).
 */
int bu_tmpdir_make(char *dir, size_t size, const char *name);
/* Removes dir and everything in it. Accepts "" (nothing made). */
void bu_tmpdir_remove(const char *dir);
/* Removes a SQLite database file and its -wal, -shm and -journal files. */
void bu_sqlite_files_remove(const char *path);
/* Size of a file in bytes, or -1. */
long long bu_file_size(const char *path);

/* ---- Memory ----------------------------------------------------------------- */

/*
 * Resets the peak RSS of the process to its current RSS (Linux:
 * /proc/self/clear_refs), so that the next bu_peak_rss_kib() is the peak of
 * what ran in between. Returns 1 when it could, 0 otherwise (then the peak
 * is that of the whole process so far). Right after a reset,
 * bu_peak_rss_kib() is the current RSS.
 */
int bu_peak_rss_reset(void);
/* Peak resident set size in KiB (getrusage ru_maxrss). */
long bu_peak_rss_kib(void);

/* ---- Options and interruption -------------------------------------------- */

typedef struct bu_options {
    long long events; /* --events N */
    int reps;         /* --reps N (1..BU_MAX_REPS) */
    int json;         /* --json, or ESFOLD_BENCH_JSON=1 */
} bu_options;

/*
 * Parses `--events N`, `--reps N`, `--json` and `--help` into opts (which
 * holds the defaults on entry); ESFOLD_BENCH_JSON=1 also sets json.
 * `min_events` is the least --events accepted. Returns 0 to go on, 1 when
 * --help was printed (exit 0), 2 on a usage error (printed; exit 2).
 */
int bu_options_parse(bu_options *opts, int argc, char **argv,
                     long long min_events, const char *usage_extra);

/* Installs SIGINT/SIGTERM/SIGHUP handlers that only record the signal, so
 * that a benchmark stops at the next check and removes its files. */
void bu_signals_install(void);
/* The signal received, or 0. */
int bu_interrupted(void);
/* After cleaning up: dies of the recorded signal with its default action,
 * so the exit status tells the caller (a shell, make). Returns when there
 * was none. */
void bu_reraise(void);

#endif
