/*
 * bench/benchutil.c - timer, paired measurements, report (table and JSON),
 * terminal progress, temporary files, RSS, options: see benchutil.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "benchutil.h"

/* ---- Time ------------------------------------------------------------------ */

double bu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Samples and paired measurement ----------------------------------------- */

double bu_samples_best(const bu_samples *s)
{
    double best = 0;
    int i;
    for (i = 0; i < s->n; i++)
        if (i == 0 || s->s[i] < best)
            best = s->s[i];
    return best;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bu_samples_median(const bu_samples *s)
{
    double v[BU_MAX_REPS];
    if (s->n == 0)
        return 0;
    memcpy(v, s->s, (size_t)s->n * sizeof v[0]);
    qsort(v, (size_t)s->n, sizeof v[0], cmp_double);
    return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

static double sum_of(const bu_samples *s)
{
    double t = 0;
    int i;
    for (i = 0; i < s->n; i++)
        t += s->s[i];
    return t;
}

static int run_one(bu_run_fn fn, void *ctx, bu_samples *keep)
{
    double t = 0;
    int rc;
    if (bu_interrupted())
        return -1;
    if ((rc = fn(ctx, &t)) != 0)
        return rc;
    if (keep && keep->n < BU_MAX_REPS)
        keep->s[keep->n++] = t;
    return 0;
}

int bu_measure_pair(const char *what, int reps, bu_run_fn esfold_run,
                    void *esfold_ctx, bu_run_fn limit_run, void *limit_ctx,
                    bu_samples *esfold_out, bu_samples *limit_out)
{
    int rc, i;

    memset(esfold_out, 0, sizeof *esfold_out);
    memset(limit_out, 0, sizeof *limit_out);
    if (reps > BU_MAX_REPS)
        reps = BU_MAX_REPS;
    /* The warm-up fills the OS page cache, SQLite's cache and the
     * allocator's free lists for both sides before anything counts. */
    bu_status("%s: warm-up", what);
    if ((rc = run_one(esfold_run, esfold_ctx, NULL)) != 0 ||
        (rc = run_one(limit_run, limit_ctx, NULL)) != 0)
        goto done;
    for (i = 0; i < BU_MAX_REPS; i++) {
        if (i >= reps && sum_of(esfold_out) >= BU_MIN_SECONDS &&
            sum_of(limit_out) >= BU_MIN_SECONDS)
            break;
        bu_status("%s: run %d of %d%s", what, i + 1, reps, i >= reps ? "+" : "");
        if ((rc = run_one(esfold_run, esfold_ctx, esfold_out)) != 0 ||
            (rc = run_one(limit_run, limit_ctx, limit_out)) != 0)
            goto done;
    }
done:
    bu_status(NULL);
    return rc;
}

/* ---- The report ------------------------------------------------------------- */

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

void bu_report_init(bu_report *r, const char *bench, const char *backend,
                    const char *where)
{
    time_t now = time(NULL);
    struct tm tm;

    memset(r, 0, sizeof *r);
    copy_str(r->bench, sizeof r->bench, bench);
    copy_str(r->backend, sizeof r->backend, backend);
    copy_str(r->where, sizeof r->where, where);
    if (gmtime_r(&now, &tm))
        strftime(r->date, sizeof r->date, "%Y-%m-%d %H:%M UTC", &tm);
}

bu_row *bu_report_row(bu_report *r, const char *key, const char *name,
                      const char *limit_desc, const bu_samples *esfold,
                      const bu_samples *limit, const char *metric_key,
                      const char *unit, double work)
{
    bu_row *row;
    if (r->nrows == BU_MAX_ROWS)
        return NULL;
    row = &r->rows[r->nrows++];
    memset(row, 0, sizeof *row);
    copy_str(row->key, sizeof row->key, key);
    copy_str(row->name, sizeof row->name, name);
    copy_str(row->limit_desc, sizeof row->limit_desc, limit_desc);
    row->esfold_s = bu_samples_best(esfold);
    row->limit_s = bu_samples_best(limit);
    row->esfold_median_s = bu_samples_median(esfold);
    row->limit_median_s = bu_samples_median(limit);
    row->reps = esfold->n < limit->n ? esfold->n : limit->n;
    bu_row_metric(row, metric_key, unit, work);
    return row;
}

void bu_row_metric(bu_row *row, const char *key, const char *unit, double work)
{
    bu_metric *m;
    if (row == NULL || row->nmetrics == BU_MAX_METRICS)
        return;
    m = &row->metrics[row->nmetrics++];
    copy_str(m->key, sizeof m->key, key);
    copy_str(m->unit, sizeof m->unit, unit);
    m->esfold = row->esfold_s > 0 ? work / row->esfold_s : 0;
    m->limit = row->limit_s > 0 ? work / row->limit_s : 0;
}

void bu_report_fact(bu_report *r, const char *key, const char *label,
                    double value, const char *unit, int decimals)
{
    bu_fact *f;
    if (r->nfacts == BU_MAX_FACTS)
        return;
    f = &r->facts[r->nfacts++];
    copy_str(f->key, sizeof f->key, key);
    copy_str(f->label, sizeof f->label, label);
    copy_str(f->unit, sizeof f->unit, unit);
    f->value = value;
    f->decimals = decimals;
}

void bu_report_param(bu_report *r, const char *key, long long value)
{
    if (r->nparams == BU_MAX_PARAMS)
        return;
    copy_str(r->params[r->nparams].key, sizeof r->params[0].key, key);
    r->params[r->nparams].value = value;
    r->nparams++;
}

const char *bu_fmt_count(char *buf, size_t size, double v)
{
    char digits[32];
    size_t len, i, o = 0;

    if (!isfinite(v) || v < 0) {
        copy_str(buf, size, "-");
        return buf;
    }
    if (v < 100 && v != floor(v)) { /* small rates keep some precision */
        snprintf(buf, size, "%.3g", v);
        return buf;
    }
    snprintf(digits, sizeof digits, "%.0f", v);
    len = strlen(digits);
    for (i = 0; i < len && o + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static double ratio_of(const bu_row *row)
{
    const bu_metric *m = &row->metrics[0];
    return m->limit > 0 ? m->esfold / m->limit : 0;
}

static void fmt_rate(char *buf, size_t size, double v, const char *unit)
{
    char n[48];
    snprintf(buf, size, "%s %s", bu_fmt_count(n, sizeof n, v), unit);
}

void bu_report_print(const bu_report *r)
{
    char cell[64];
    int wname = (int)strlen("measurement"), wes = (int)strlen("esfold"),
        wlim = (int)strlen("limit");
    size_t i, j;

    /* Column widths from the widest cell, so units of any length line up. */
    for (i = 0; i < r->nrows; i++) {
        const bu_row *row = &r->rows[i];
        if ((int)strlen(row->name) > wname)
            wname = (int)strlen(row->name);
        for (j = 0; j < row->nmetrics; j++) {
            int w;
            fmt_rate(cell, sizeof cell, row->metrics[j].esfold, row->metrics[j].unit);
            if ((w = (int)strlen(cell)) > wes)
                wes = w;
            fmt_rate(cell, sizeof cell, row->metrics[j].limit, row->metrics[j].unit);
            if ((w = (int)strlen(cell)) > wlim)
                wlim = w;
        }
    }
    wname += 3;
    wes += 3;
    wlim += 3;

    printf("esfold bench (%s, %s, %s)\n", r->backend, r->where, r->date);
    printf("%-*s%-*s%-*s%s\n", wname, "measurement", wes, "esfold", wlim,
           "limit", "ratio");
    for (i = 0; i < r->nrows; i++) {
        const bu_row *row = &r->rows[i];
        for (j = 0; j < row->nmetrics; j++) {
            char es[64], lim[64];
            fmt_rate(es, sizeof es, row->metrics[j].esfold, row->metrics[j].unit);
            fmt_rate(lim, sizeof lim, row->metrics[j].limit, row->metrics[j].unit);
            if (j == 0)
                printf("%-*s%-*s%-*s%.2f (%s)\n", wname, row->name, wes, es,
                       wlim, lim, ratio_of(row), row->limit_desc);
            else
                printf("%-*s%-*s%s\n", wname, "", wes, es, lim);
        }
    }
    for (i = 0; i < r->nfacts; i++)
        printf("%s: %.*f %s\n", r->facts[i].label, r->facts[i].decimals,
               r->facts[i].value, r->facts[i].unit);
    if (r->nrows > 0) {
        int lo = r->rows[0].reps, hi = lo;
        for (i = 1; i < r->nrows; i++) {
            if (r->rows[i].reps < lo)
                lo = r->rows[i].reps;
            if (r->rows[i].reps > hi)
                hi = r->rows[i].reps;
        }
        if (lo == hi)
            printf("best of %d runs of each", lo);
        else
            printf("best of %d to %d runs of each", lo, hi);
        printf("%s, esfold and limit interleaved; ratio = esfold / limit\n",
               r->no_warmup ? " (no warm-up)" : " after a warm-up");
    }
    fflush(stdout);
}

/* Adds to o; returns -1 when something could not be made. */
static int set_new(json_t *o, const char *key, json_t *v)
{
    return v == NULL || json_object_set_new(o, key, v) != 0 ? -1 : 0;
}

static json_t *side_json(double best, double median, const bu_row *row,
                         int limit)
{
    json_t *o = json_object();
    size_t j;
    if (o == NULL)
        return NULL;
    if (set_new(o, "seconds", json_real(best)) ||
        set_new(o, "median_seconds", json_real(median)))
        goto fail;
    /* Whole units per second: more digits would be noise. */
    for (j = 0; j < row->nmetrics; j++)
        if (set_new(o, row->metrics[j].key,
                    json_integer((json_int_t)llround(
                        limit ? row->metrics[j].limit : row->metrics[j].esfold))))
            goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* Makes a container, adds it to parent under key (which then owns it) and
 * returns it borrowed; NULL when either failed. */
static json_t *add_container(json_t *parent, const char *key, json_t *c)
{
    return set_new(parent, key, c) == 0 ? c : NULL;
}

int bu_report_print_json(const bu_report *r)
{
    json_t *doc = json_object(), *params, *rows, *facts;
    char *text = NULL;
    size_t i;
    int rc = -1;

    if (doc == NULL || set_new(doc, "bench", json_string(r->bench)) ||
        set_new(doc, "backend", json_string(r->backend)) ||
        set_new(doc, "where", json_string(r->where)) ||
        set_new(doc, "date", json_string(r->date)) ||
        (params = add_container(doc, "params", json_object())) == NULL ||
        (rows = add_container(doc, "results", json_array())) == NULL ||
        (facts = add_container(doc, "facts", json_object())) == NULL)
        goto done;
    for (i = 0; i < r->nparams; i++)
        if (set_new(params, r->params[i].key, json_integer(r->params[i].value)))
            goto done;
    for (i = 0; i < r->nrows; i++) {
        const bu_row *row = &r->rows[i];
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(rows, o) != 0)
            goto done;
        if (set_new(o, "key", json_string(row->key)) ||
            set_new(o, "name", json_string(row->name)) ||
            set_new(o, "limit_is", json_string(row->limit_desc)) ||
            set_new(o, "reps", json_integer(row->reps)) ||
            set_new(o, "esfold", side_json(row->esfold_s, row->esfold_median_s,
                                           row, 0)) ||
            set_new(o, "limit", side_json(row->limit_s, row->limit_median_s,
                                          row, 1)) ||
            set_new(o, "ratio", json_real(round(ratio_of(row) * 1000) / 1000)))
            goto done;
    }
    for (i = 0; i < r->nfacts; i++)
        if (set_new(facts, r->facts[i].key, json_real(r->facts[i].value)))
            goto done;
    text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                               JSON_REAL_PRECISION(6));
    if (text == NULL)
        goto done;
    printf("%s\n", text);
    fflush(stdout);
    rc = 0;
done:
    if (text) {
        json_malloc_t jm;
        json_free_t jf;
        json_get_alloc_funcs(&jm, &jf);
        jf(text);
    }
    json_decref(doc);
    return rc;
}

/* ---- Progress ---------------------------------------------------------------- */

static int on_tty(void)
{
    static int tty = -1;
    if (tty < 0)
        tty = isatty(STDERR_FILENO) ? 1 : 0;
    return tty;
}

void bu_progress_begin(bu_progress *p, uint64_t total, const char *fmt, ...)
{
    va_list ap;
    memset(p, 0, sizeof *p);
    p->total = total;
    p->last_pct = -1;
    va_start(ap, fmt);
    vsnprintf(p->label, sizeof p->label, fmt, ap);
    va_end(ap);
    p->active = on_tty();
    bu_progress_update(p, 0);
}

void bu_progress_update(bu_progress *p, uint64_t done)
{
    int pct;
    if (!p->active)
        return;
    pct = p->total ? (int)(done * 100 / p->total) : 100;
    if (pct == p->last_pct)
        return;
    p->last_pct = pct;
    fprintf(stderr, "\r\033[K%s... %d%%", p->label, pct);
    fflush(stderr);
}

void bu_progress_end(bu_progress *p)
{
    if (!p->active)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->active = 0;
}

void bu_status(const char *fmt, ...)
{
    va_list ap;
    if (!on_tty())
        return;
    fputs("\r\033[K", stderr);
    if (fmt) {
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fflush(stderr);
}

/* ---- Files ------------------------------------------------------------------ */

int bu_tmpdir_make(char *dir, size_t size, const char *name)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    if ((size_t)snprintf(dir, size, "%s/esfold-bench-%s.XXXXXX", base, name) >= size) {
        fprintf(stderr, "bench: temporary directory name too long under %s\n",
                base);
        dir[0] = '\0';
        return -1;
    }
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "bench: cannot make a directory under %s: %s\n", base,
                strerror(errno));
        dir[0] = '\0';
        return -1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    if (remove(path) != 0)
        fprintf(stderr, "bench: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

void bu_tmpdir_remove(const char *dir)
{
    if (dir == NULL || *dir == '\0')
        return;
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void bu_sqlite_files_remove(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char name[4096];
    size_t i;
    for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(name, sizeof name, "%s%s", path, suffixes[i]);
        if (unlink(name) != 0 && errno != ENOENT)
            fprintf(stderr, "bench: cannot remove %s: %s\n", name,
                    strerror(errno));
    }
}

long long bu_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* ---- Memory ----------------------------------------------------------------- */

int bu_peak_rss_reset(void)
{
    /* "5" resets the peak RSS (VmHWM, which getrusage reports) to the
     * current RSS: Linux 4.0 and later. */
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    int ok;
    if (fd < 0)
        return 0;
    ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

long bu_peak_rss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss; /* KiB on Linux */
}

/* ---- Options and interruption -------------------------------------------- */

static int parse_ll(long long *out, const char *s)
{
    char *end;
    long long v;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static void usage(FILE *to, const char *prog, const bu_options *defaults,
                  const char *extra)
{
    fprintf(to,
            "usage: %s [--events N] [--reps N] [--json]\n"
            "  --events N  events of the measured workload (default %lld)\n"
            "  --reps N    timed runs of each side after the warm-up, at least "
            "(more while a\n"
            "              side has run under %.0f s, up to %d); the best is kept "
            "(default %d)\n"
            "  --json      print a JSON document instead of the table (also "
            "ESFOLD_BENCH_JSON=1)\n"
            "%s",
            prog, defaults->events, BU_MIN_SECONDS, BU_MAX_REPS, defaults->reps,
            extra ? extra : "");
}

int bu_options_parse(bu_options *opts, int argc, char **argv,
                     long long min_events, const char *usage_extra)
{
    const bu_options defaults = *opts;
    const char *prog = argc > 0 ? argv[0] : "bench";
    const char *env = getenv("ESFOLD_BENCH_JSON");
    int i;

    if (env && strcmp(env, "") != 0 && strcmp(env, "0") != 0)
        opts->json = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        long long v;
        int is_events = strncmp(a, "--events", 8) == 0 && (a[8] == '\0' || a[8] == '=');
        int is_reps = strncmp(a, "--reps", 6) == 0 && (a[6] == '\0' || a[6] == '=');

        if (strcmp(a, "--json") == 0) {
            opts->json = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout, prog, &defaults, usage_extra);
            return 1;
        }
        if (!is_events && !is_reps) {
            fprintf(stderr, "%s: unknown argument '%s'\n", prog, a);
            usage(stderr, prog, &defaults, usage_extra);
            return 2;
        }
        val = strchr(a, '=') ? strchr(a, '=') + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (parse_ll(&v, val) != 0) {
            fprintf(stderr, "%s: %s needs a whole number\n", prog,
                    is_events ? "--events" : "--reps");
            return 2;
        }
        if (is_events) {
            if (v < min_events) {
                fprintf(stderr, "%s: --events must be at least %lld\n", prog,
                        min_events);
                return 2;
            }
            opts->events = v;
        } else {
            if (v < 1 || v > BU_MAX_REPS) {
                fprintf(stderr, "%s: --reps must be from 1 to %d\n", prog,
                        BU_MAX_REPS);
                return 2;
            }
            opts->reps = (int)v;
        }
    }
    return 0;
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

void bu_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int bu_interrupted(void)
{
    return (int)got_signal;
}

void bu_reraise(void)
{
    int sig = (int)got_signal;
    if (sig == 0)
        return;
    signal(sig, SIG_DFL);
    raise(sig);
}
