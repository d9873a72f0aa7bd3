/*
 * cli/util.c - what the commands share: the log and repository, messages,
 * option parsing, help, and printing events and JSON.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/internal.h"

/* ---- The log and the repository ------------------------------------------ */

/* For a sqlite: URI naming a file, whether that file is missing. Other
 * backends create nothing by being read, so they are never "missing". */
static int sqlite_file_missing(const char *uri, char *path, size_t size)
{
    const char *rest, *q;
    size_t len;
    struct stat st;
    if (strncmp(uri, "sqlite:", 7) != 0)
        return 0;
    rest = uri + 7;
    q = strchr(rest, '?');
    len = q ? (size_t)(q - rest) : strlen(rest);
    if (len == 0 || len >= size)
        return 0; /* the backend explains what is wrong with the URI */
    memcpy(path, rest, len);
    path[len] = '\0';
    if (strcmp(path, ":memory:") == 0)
        return 0;
    return stat(path, &st) != 0 && errno == ENOENT;
}

char *es__cli_read_only_uri(const char *uri)
{
    const char *q = strchr(uri, '?');
    /* Not a file, or a mode given already (the URI's own word wins). */
    if (strncmp(uri, "sqlite:", 7) != 0 || strncmp(uri, "sqlite::memory:", 15) == 0 ||
        (q && (strncmp(q + 1, "mode=", 5) == 0 || strstr(q, "&mode="))))
        return es__strdup(uri);
    return es__sprintf("%s%smode=ro", uri, strchr(uri, '?') ? "&" : "?");
}

int es__cli_log(es__cli *cli, int must_exist, es_log **out)
{
    char path[4096];
    char *ro = NULL;
    int rc;
    *out = NULL;
    if (cli->log == NULL) {
        if (must_exist && sqlite_file_missing(cli->log_uri, path, sizeof path)) {
            es__cli_fail(cli, "%s: no such log file (give the log with "
                         "--log URI or $ESFOLD_LOG)", cli->log_uri);
            return es__cli_fail_code(cli, ES_ENOTFOUND, NULL);
        }
        /* A reading command opens a SQLite file read-only: it never
         * creates or changes a file (adapters/sqlite/schema.c). */
        if (must_exist && (ro = es__cli_read_only_uri(cli->log_uri)) == NULL)
            return es__cli_fail(cli, "out of memory");
        rc = es_log_open(&cli->log, ro ? ro : cli->log_uri);
        es__free(ro);
        if (rc != 0) {
            es__cli_fail(cli, "%s", cli->log ? es_errmsg(cli->log)
                                              : es_strerror(rc));
            es_log_close(cli->log);
            cli->log = NULL;
            return es__cli_fail_code(cli, rc, NULL);
        }
    }
    *out = cli->log;
    return ES__CLI_OK;
}

int es__cli_repo(es__cli *cli, int must_exist, es_repo **out)
{
    es_log *log;
    int rc;
    *out = NULL;
    if (cli->repo == NULL) {
        if ((rc = es__cli_log(cli, must_exist, &log)) != ES__CLI_OK)
            return rc;
        if ((rc = es_repo_new(&cli->repo, log, NULL)) != 0)
            return es__cli_fail(cli, "%s", es_strerror(rc));
        if (cli->app && cli->app->setup &&
            (rc = cli->app->setup(cli->repo, cli->app->user_data)) != 0) {
            const char *msg = es_errmsg(cli->repo);
            es__cli_fail(cli, "the program's setup failed: %s",
                         *msg ? msg : es_strerror(rc < 0 ? rc : ES_EUSER));
            es_repo_free(cli->repo);
            cli->repo = NULL;
            return ES__CLI_FAIL;
        }
    }
    *out = cli->repo;
    return ES__CLI_OK;
}

const es_aggregate_type *es__cli_find_type(const es__cli *cli, const char *name)
{
    if (cli->app == NULL || cli->app->types == NULL)
        return NULL;
    for (size_t i = 0; cli->app->types[i]; i++)
        if (cli->app->types[i]->name && strcmp(cli->app->types[i]->name, name) == 0)
            return cli->app->types[i];
    return NULL;
}

/* ---- Messages ------------------------------------------------------------ */

int es__cli_fail(es__cli *cli, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout); /* keep the order of what was printed before */
    va_start(ap, fmt);
    vsnprintf(cli->err, sizeof cli->err, fmt, ap);
    va_end(ap);
    cli->err_code = 0;
    json_decref(cli->err_extra);
    cli->err_extra = NULL;
    fprintf(stderr, "%s: %s\n", cli->prog, cli->err);
    return ES__CLI_FAIL;
}

int es__cli_fail_code(es__cli *cli, int code, json_t *extra)
{
    cli->err_code = code;
    if (extra) {
        if (cli->err_extra == NULL)
            cli->err_extra = extra;
        else {
            json_object_update(cli->err_extra, extra);
            json_decref(extra);
        }
    }
    return ES__CLI_FAIL;
}

const char *es__cli_error_name(int code)
{
    switch (code) {
    case ES__CLI_EUSAGE: return "usage";
    case ES_EINVAL: return "invalid";
    case ES_ENOMEM: return "out_of_memory";
    case ES_EIO: return "io";
    case ES_ENOTFOUND: return "not_found";
    case ES_ECONFLICT: return "conflict";
    case ES_ETRUNCATED: return "truncated";
    case ES_ECORRUPT: return "corrupt";
    case ES_EREFUSED: return "refused";
    case ES_EUSER: return "stopped";
    case ES_EUNHANDLED: return "unhandled";
    case ES_EUNSUPPORTED: return "unsupported";
    case ES_ETIMEDOUT: return "timed_out";
    case ES_EUNKNOWN: return "unknown";
    default: return "failed";
    }
}

json_t *es__cli_error_json(const es__cli *cli)
{
    json_t *e = json_pack("{s:s, s:s}", "code", es__cli_error_name(cli->err_code),
                          "message", cli->err);
    if (e && cli->err_extra)
        json_object_update(e, cli->err_extra);
    return e;
}

json_t *es__cli_json_doc(void)
{
    return json_pack("{s:i}", "format", ES__CLI_JSON_FORMAT);
}

int es__cli_usage(es__cli *cli, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    va_start(ap, fmt);
    vsnprintf(cli->err, sizeof cli->err, fmt, ap);
    va_end(ap);
    cli->err_code = ES__CLI_EUSAGE;
    json_decref(cli->err_extra);
    cli->err_extra = NULL;
    if (cli->cmd)
        fprintf(stderr, "%s %s: %s\n", cli->prog, cli->cmd->name, cli->err);
    else
        fprintf(stderr, "%s: %s\n", cli->prog, cli->err);
    if (cli->cmd)
        fprintf(stderr, "Try '%s %s --help'.\n", cli->prog, cli->cmd->name);
    else
        fprintf(stderr, "Try '%s --help'.\n", cli->prog);
    return ES__CLI_USAGE;
}

void es__cli_command_help(const es__cli *cli, const es__cli_command *cmd)
{
    const es__cli_opt *o;
    int width = 10; /* "--log URI" */
    printf("Usage: %s [--log URI] %s %s\n\n%s.\n", cli->prog, cmd->name,
           cmd->synopsis, cmd->summary);
    if (cmd->help)
        printf("\n%s", cmd->help);
    for (o = cmd->opts; o && o->name; o++) {
        int w = (int)strlen(o->name) + 2 + (o->arg ? (int)strlen(o->arg) + 1 : 0);
        if (w > width)
            width = w;
    }
    printf("\nOptions:\n");
    for (o = cmd->opts; o && o->name; o++) {
        char left[128];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
        printf("  %-*s  %s\n", width, left, o->help);
    }
    printf("  %-*s  %s\n", width, "--log URI", "the log (default: $ESFOLD_LOG, "
           "else " ES_LOG_DEFAULT_URI ")");
    printf("  %-*s  %s\n", width, "--help", "this text");
}

/* ---- Options ------------------------------------------------------------- */

int es__cli_parse(es__cli *cli, int argc, char **argv,
                  const char *values[ES__CLI_MAX_OPTS], char **args,
                  int *nargs)
{
    const es__cli_command *cmd = cli->cmd;
    int i, only_args = 0;

    for (i = 0; i < ES__CLI_MAX_OPTS; i++)
        values[i] = NULL;
    *nargs = 0;
    /* A command that takes --json answers in JSON from the start, usage
     * errors included. */
    for (i = 0; cmd->opts && cmd->opts[i].name; i++)
        if (strcmp(cmd->opts[i].name, "json") == 0)
            break;
    if (cmd->opts && cmd->opts[i].name)
        for (int k = 1; k < argc && strcmp(argv[k], "--") != 0; k++)
            if (strcmp(argv[k], "--json") == 0)
                cli->json = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq, *value;
        size_t len;
        int k;

        /* "-3" is a number, not an option. */
        if (only_args || a[0] != '-' || a[1] == '\0' ||
            (a[1] >= '0' && a[1] <= '9')) {
            if (*nargs == ES__CLI_MAX_ARGS)
                return es__cli_usage(cli, "too many arguments (at most %d)",
                                     ES__CLI_MAX_ARGS);
            args[(*nargs)++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            es__cli_command_help(cli, cmd);
            return ES__CLI_OK;
        }
        if (a[1] != '-')
            return es__cli_usage(cli, "unknown option '%s'", a);
        eq = strchr(a, '=');
        len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len == 3 && strncmp(a + 2, "log", 3) == 0) {
            value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (value == NULL || *value == '\0')
                return es__cli_usage(cli, "--log needs a URI");
            cli->log_uri = value;
            continue;
        }
        for (k = 0; cmd->opts && cmd->opts[k].name; k++)
            if (strlen(cmd->opts[k].name) == len &&
                strncmp(cmd->opts[k].name, a + 2, len) == 0)
                break;
        if (cmd->opts == NULL || cmd->opts[k].name == NULL)
            return es__cli_usage(cli, "unknown option '%.*s'", (int)len + 2, a);
        if (values[k] != NULL)
            return es__cli_usage(cli, "--%s is given twice", cmd->opts[k].name);
        if (cmd->opts[k].arg == NULL) {
            if (eq)
                return es__cli_usage(cli, "--%s takes no value",
                                     cmd->opts[k].name);
            values[k] = "";
            continue;
        }
        /* A value may start with '-' ("--expect -1" gets a clear
         * complaint about -1 rather than a missing value). */
        value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (value == NULL)
            return es__cli_usage(cli, "--%s needs a value (%s)",
                                 cmd->opts[k].name, cmd->opts[k].arg);
        values[k] = value;
    }
    if (*nargs < cmd->min_args || (cmd->max_args >= 0 && *nargs > cmd->max_args)) {
        if (*nargs < cmd->min_args)
            return es__cli_usage(cli, "missing arguments: expected %s",
                                 cmd->synopsis);
        return es__cli_usage(cli, "unexpected argument '%s'",
                             args[cmd->max_args]);
    }
    return -1;
}

/* ---- Output -------------------------------------------------------------- */

char *es__cli_json_compact(const json_t *value)
{
    return json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

void es__cli_json_free(char *text)
{
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    if (text)
        f(text);
}

int es__cli_print_json(es__cli *cli, const json_t *value)
{
    cli->json_printed = 1;
    if (json_dumpf(value, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                      JSON_ENCODE_ANY) != 0)
        return es__cli_fail(cli, "writing JSON: %s", strerror(errno));
    putchar('\n');
    return ES__CLI_OK;
}

static int print_json_line(es__cli *cli, FILE *f, const char *label,
                           const json_t *value)
{
    char *s = es__cli_json_compact(value);
    if (s == NULL)
        return es__cli_fail(cli, "out of memory");
    fprintf(f, "    %-5s %s\n", label, s);
    es__cli_json_free(s);
    return ES__CLI_OK;
}

int es__cli_print_event(es__cli *cli, FILE *f, const es_event *ev,
                        int32_t stored_schema, const json_t *state)
{
    char when[ES_TIME_BUFSZ], schema[64];
    int rc;
    es_time_format(when, sizeof when, ev->occurred_us);
    if (stored_schema > 0 && stored_schema != ev->schema)
        snprintf(schema, sizeof schema, "schema %d, stored %d", (int)ev->schema,
                 (int)stored_schema);
    else
        snprintf(schema, sizeof schema, "schema %d", (int)ev->schema);
    fprintf(f, "v%lld  %s  %s  (%s)  id %s  p%d@%lld\n",
            (long long)ev->version, when, ev->type, schema,
            ev->id ? ev->id : "-", (int)ev->position.partition,
            (long long)ev->position.offset);
    if ((rc = print_json_line(cli, f, "data", ev->payload)) != ES__CLI_OK)
        return rc;
    if (ev->meta && !json_is_null(ev->meta) &&
        (rc = print_json_line(cli, f, "meta", ev->meta)) != ES__CLI_OK)
        return rc;
    if (ev->correlation_id || ev->causation_id)
        fprintf(f, "    ids   correlation %s  causation %s\n",
                ev->correlation_id ? ev->correlation_id : "-",
                ev->causation_id ? ev->causation_id : "-");
    if (state && (rc = print_json_line(cli, f, "state", state)) != ES__CLI_OK)
        return rc;
    return ES__CLI_OK;
}

int es__cli_finish(es__cli *cli, int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno;
        clearerr(stdout);
        fprintf(stderr, "%s: writing the output: %s\n", cli->prog, strerror(e));
        fflush(stderr);
        return ES__CLI_FAIL;
    }
    fflush(stderr);
    return status;
}

/* ---- Stopping long commands on SIGINT / SIGTERM -------------------------- */

static volatile int stop_flag;
static struct sigaction old_int, old_term;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

volatile int *es__cli_stop_begin(void)
{
    struct sigaction sa;
    stop_flag = 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    return &stop_flag;
}

void es__cli_stop_end(void)
{
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
}
