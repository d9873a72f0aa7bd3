/*
 * cli/rebuild.c - `project rebuild NAME|--file F [--target URI]
 * [--as-of TIME] [--batch N] [--json] [--no-swap]` (esfold/rebuild.h).
 *
 * Progress: on a terminal (stderr) a bar with the rate and the time left;
 * otherwise, or with --json, one JSON line per report on stdout. Before
 * the swap, the comparison of old and new tables (rows, checksum) on
 * stdout. SIGINT/SIGTERM stop it after the current batch; run again, it
 * resumes.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/internal.h"
#include "esfold/rebuild.h"
#include "esfold/time.h"

enum { OPT_FILE, OPT_TARGET, OPT_AS_OF, OPT_BATCH, OPT_JSON, OPT_NO_SWAP };

static const es__cli_opt rebuild_opts[] = {
    { "file", "F", "a projection in a JSON file (docs/projections.md)" },
    { "target", "URI", "where the read models are (default: $ESFOLD_TARGET, "
                       "else a sqlite file next to the log)" },
    { "as-of", "TIME", "build the read model as it stood at TIME into "
                       "tables named after it (no swap)" },
    { "batch", "N", "events per batch and partition (default 1000)" },
    { "json", NULL, "JSON lines instead of a progress bar" },
    { "no-swap", NULL, "build and compare, leave the swap for a later run" },
    { NULL, NULL, NULL }
};

typedef struct show {
    const char *name;
    int json, tty, bar_drawn, no_swap;
} show;

static int on_progress(const es_rebuild_progress *p, void *ud)
{
    show *s = ud;
    double secs = (double)p->elapsed_us / 1e6;
    double rate = secs > 0 ? (double)(p->done - p->start) / secs : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : -1;
    if (s->json) {
        printf("{\"projection\":\"%s\",\"phase\":\"%s\",\"done\":%lld,"
               "\"total\":%lld,\"resumed_from\":%lld,\"applied\":%lld,"
               "\"rate\":%.0f,\"eta_s\":%.1f}\n", s->name, p->phase,
               (long long)p->done, (long long)p->total, (long long)p->start,
               (long long)p->applied, rate, eta);
        fflush(stdout);
    } else if (s->tty) {
        int width = 30, fill = p->total > 0 ? (int)(width * p->done / p->total) : width;
        char bar[64];
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(width - fill));
        bar[width] = '\0';
        char left[32];
        if (eta < 0)
            snprintf(left, sizeof left, "?");
        else
            snprintf(left, sizeof left, "%.0fs", eta);
        fprintf(stderr, "\r%s %s [%s] %lld/%lld  %.0f/s  ETA %s ", s->name,
                p->phase, bar, (long long)p->done, (long long)p->total, rate,
                left);
        s->bar_drawn = 1;
        if (strcmp(p->phase, "done") == 0)
            fputc('\n', stderr);
        fflush(stderr);
    }
    return 0;
}

static int on_compare(const es_rebuild_table *t, size_t n, void *ud)
{
    show *s = ud;
    if (s->bar_drawn) {
        fputc('\n', stderr);
        s->bar_drawn = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s->json)
            printf("{\"projection\":\"%s\",\"table\":\"%s\",\"shadow\":\"%s\","
                   "\"old_rows\":%lld,\"new_rows\":%lld,\"old_checksum\":\"%s\","
                   "\"new_checksum\":\"%s\",\"same\":%s}\n", s->name, t[i].table,
                   t[i].shadow, (long long)t[i].old_rows, (long long)t[i].new_rows,
                   t[i].old_sum, t[i].new_sum,
                   strcmp(t[i].old_sum, t[i].new_sum) == 0 &&
                   t[i].old_rows == t[i].new_rows ? "true" : "false");
        else
            printf("%-30s old %lld rows %s  new %lld rows %s  %s\n", t[i].table,
                   (long long)t[i].old_rows, t[i].old_sum,
                   (long long)t[i].new_rows, t[i].new_sum,
                   strcmp(t[i].old_sum, t[i].new_sum) == 0 &&
                   t[i].old_rows == t[i].new_rows ? "same" : "CHANGED");
    }
    fflush(stdout);
    return s->no_swap;
}


static const es__cli_command rebuild_cmd = {
    .name = "project rebuild",
    .summary = "rebuild a projection's tables while the old ones serve",
    .synopsis = "NAME|--file F [--target URI] [--as-of TIME] [--batch N] [--json]",
    .help =
        "Builds the projection's tables under shadow names (TABLE__v<version>_\n"
        "rebuild) from the log's origin, with checkpoints of their own, while\n"
        "the live tables serve and their workers go on; then prints old and new\n"
        "(rows, checksum) and swaps them in one transaction. Stopped or killed,\n"
        "it resumes when run again. With --as-of TIME it builds the read model\n"
        "as it stood at TIME into TABLE__asof_<yyyymmddthhmmssz> and leaves it.\n"
        "See docs/projections.md, \"Rebuilds\".",
    .opts = rebuild_opts,
    .min_args = 0,
    .max_args = 1,
    .run = es__cli_project_rebuild,
};

int es__cli_project_rebuild(es__cli *cli, int argc, char **argv)
{
    const char *v[ES__CLI_MAX_OPTS];
    char *args[ES__CLI_MAX_ARGS];
    es_rebuild_options o = ES_REBUILD_OPTIONS_INIT;
    volatile int *stop_flag;
    es_projection *from_file = NULL;
    const es_projection *proj = NULL;
    es_rebuild_progress p;
    show s;
    char *uri = NULL;
    es_log *log;
    es_error err;
    int nargs, st, rc;

    cli->cmd = &rebuild_cmd;
    if ((st = es__cli_parse(cli, argc, argv, v, args, &nargs)) >= 0)
        return st;
    if ((nargs == 1) == (v[OPT_FILE] != NULL))
        return es__cli_usage(cli, "give NAME or --file F");
    if (v[OPT_BATCH]) {
        int64_t b;
        if (es__parse_i64(&b, v[OPT_BATCH]) != 0 || b < 1 || b > 1000000)
            return es__cli_usage(cli, "--batch needs a number from 1 to 1000000");
        o.batch_size = (size_t)b;
    }
    if (v[OPT_AS_OF] && es_time_parse(&o.as_of_us, v[OPT_AS_OF], &err) != 0)
        return es__cli_usage(cli, "--as-of: %s", err.text);
    if (nargs == 1) {
        if (cli->app && cli->app->projections)
            for (size_t i = 0; cli->app->projections[i] && !proj; i++)
                if (strcmp(cli->app->projections[i]->name, args[0]) == 0)
                    proj = cli->app->projections[i];
        if (proj == NULL)
            return es__cli_fail(cli, "no projection '%s' is compiled into %s "
                                "(a JSON file rebuilds with --file)", args[0],
                                cli->prog);
    } else {
        if (es_projection_load_file(&from_file, v[OPT_FILE], &err) != 0)
            return es__cli_fail(cli, "%s", err.text);
        proj = from_file;
    }
    if ((st = es__cli_log(cli, 1, &log)) != ES__CLI_OK)
        goto done;
    if (v[OPT_TARGET])
        uri = es__strdup(v[OPT_TARGET]);
    else if (es_projection_default_target(&uri, cli->log_uri) != 0)
        uri = NULL;
    if (uri == NULL) {
        st = es__cli_fail(cli, "out of memory");
        goto done;
    }
    memset(&s, 0, sizeof s);
    s.name = proj->name;
    s.json = v[OPT_JSON] != NULL || !isatty(2);
    s.tty = !s.json;
    s.no_swap = v[OPT_NO_SWAP] != NULL;
    o.stop = stop_flag = es__cli_stop_begin();
    o.progress = on_progress;
    o.progress_data = &s;
    o.compare = on_compare;
    o.compare_data = &s;
    rc = es_projection_rebuild(&p, log, proj, uri, &o, &err);
    es__cli_stop_end();
    if (s.bar_drawn && rc != 0)
        fputc('\n', stderr);
    if (rc != 0) {
        st = es__cli_fail(cli, "%s", err.text);
        goto done;
    }
    if (!s.json) {
        char suffix[40];
        if (o.as_of_us)
            es_rebuild_asof_suffix(suffix, sizeof suffix, o.as_of_us);
        printf(o.as_of_us ? "%s: built as of %s into its tables with the suffix "
                            "%s\n" : "%s: rebuilt and swapped in%s%s\n",
               proj->name, o.as_of_us ? v[OPT_AS_OF] : "",
               o.as_of_us ? suffix : "");
    }
    st = ES__CLI_OK;
done:
    es_projection_free(from_file);
    es__free(uri);
    return st;
}
