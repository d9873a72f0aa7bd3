/*
 * cli/cli.c - es_cli_main: global options, the command table, help.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* The commands, in the order `--help` lists them. A new command is its own
 * file defining an es__cli_command, and one line here. */
static const es__cli_command *const commands[] = {
    &es__cli_history,
    &es__cli_append,
    &es__cli_verify,
    &es__cli_streams,
    &es__cli_broker,
    &es__cli_topics,
    &es__cli_snapshot,
    &es__cli_project,
    &es__cli_deadletters,
    &es__cli_status,
    NULL
};

/* The command called name: the program's own first (es_app.commands),
 * run through cli->app_entry, then the built-in ones. */
static const es__cli_command *find_command(es__cli *cli, const char *name)
{
    const es_app_command *own = es__cli_app_commands(cli->app);
    for (; own && own->name; own++)
        if (strcmp(own->name, name) == 0) {
            es__cli_command *e = &cli->app_entry;
            cli->app_cmd = own;
            e->name = own->name;
            e->summary = own->summary ? own->summary : "";
            e->synopsis = own->synopsis ? own->synopsis : "";
            e->help = own->help;
            e->opts = own->opts;
            e->min_args = own->min_args;
            e->max_args = own->max_args;
            e->run = es__cli_run_app_command;
            return e;
        }
    for (size_t i = 0; commands[i]; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static size_t name_width(const es_app_command *own)
{
    size_t width = 0;
    for (; own && own->name; own++)
        if (strlen(own->name) > width)
            width = strlen(own->name);
    for (size_t i = 0; commands[i]; i++)
        if (strlen(commands[i]->name) > width)
            width = strlen(commands[i]->name);
    return width;
}

static void main_help(const es__cli *cli)
{
    const es_app_command *own = es__cli_app_commands(cli->app);
    int width = (int)name_width(own);
    printf("Usage: %s [--log URI] [--snapshots URI] COMMAND [ARGS...]\n"
           "       %s COMMAND --help\n\n", cli->prog, cli->prog);
    if (own && own->name) {
        printf("Commands of %s:\n", cli->prog);
        for (; own->name; own++)
            printf("  %-*s  %s\n", width, own->name,
                   own->summary ? own->summary : "");
        printf("\nOperations on the event log:\n");
    } else {
        printf("Operations on an esfold event log.\n\nCommands:\n");
    }
    for (size_t i = 0; commands[i]; i++)
        printf("  %-*s  %s\n", width, commands[i]->name,
               commands[i]->summary);
    printf("\nOptions:\n"
           "  --log URI        the log (default: $ESFOLD_LOG, else %s):\n"
           "                   sqlite:PATH, sqlite::memory:, kafka://HOST:PORT?prefix=P\n"
           "  --snapshots URI  the snapshot store (default: $ESFOLD_SNAPSHOTS, else\n"
           "                   the log's sqlite: file or kafka:// cluster)\n"
           "  --verbose        also show what the libraries under esfold say\n"
           "                   (librdkafka's log lines)\n"
           "  --help           this text\n"
           "  --version        the version\n\n",
           ES_LOG_DEFAULT_URI);
    if (cli->app && cli->app->types && cli->app->types[0]) {
        printf("Aggregate types compiled in:");
        for (size_t i = 0; cli->app->types[i]; i++)
            printf(" %s", cli->app->types[i]->name);
        printf("\n\n");
    } else {
        printf("No aggregate types are compiled in: history shows events "
               "without state.\n\n");
    }
    printf("Exit status: 0 success, 1 failure (or problems found by verify),\n"
           "2 usage error.\n");
}

/* --verbose: what librdkafka says, on stderr (from its threads too). */
static void show_diagnostic(const char *source, int level, const char *message,
                            void *user_data)
{
    const es__cli *cli = user_data;
    fprintf(stderr, "%s: %s (level %d): %s\n", cli->prog, source, level,
            message);
}

static const char *program_name(const es_app *app, int argc, char **argv)
{
    const char *slash;
    if (app && app->name && *app->name)
        return app->name;
    if (app == NULL || argc < 1 || argv[0] == NULL || *argv[0] == '\0')
        return "esfold";
    slash = strrchr(argv[0], '/');
    return slash ? slash + 1 : argv[0];
}

/*
 * `--NAME URI` or `--NAME=URI` at argv[*i], a global option: 1 taken into
 * *dst (and *i past it), 0 not this option, -1 a usage error (printed).
 */
static int uri_option(es__cli *cli, int argc, char **argv, int *i,
                      const char *name, const char **dst)
{
    const char *a = argv[*i], *value;
    size_t len = strlen(name);
    if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, len) != 0)
        return 0;
    if (a[2 + len] == '=')
        value = a + 3 + len;
    else if (a[2 + len] == '\0')
        value = *i + 1 < argc ? argv[++*i] : NULL;
    else
        return 0;
    if (value == NULL || *value == '\0') {
        es__cli_usage(cli, "--%s needs a URI", name);
        return -1;
    }
    *dst = value;
    return 1;
}

int es_cli_main(int argc, char **argv, const es_app *app)
{
    es__cli cli;
    const es__cli_command *cmd;
    const char *env;
    int i, status, taken, verbose = 0;

    memset(&cli, 0, sizeof cli);
    cli.app = app;
    cli.prog = program_name(app, argc, argv);
    if (app && (app->version < 1 || app->version > ES_APP_VERSION)) {
        fprintf(stderr, "%s: es_app version %u is not supported (expected %u)\n",
                cli.prog, app->version, (unsigned)ES_APP_VERSION);
        return ES__CLI_FAIL;
    }
    if (argc < 0 || (argc > 0 && argv == NULL))
        argc = 0;
    env = getenv("ESFOLD_LOG");
    cli.log_uri = env && *env ? env : ES_LOG_DEFAULT_URI;
    env = getenv("ESFOLD_SNAPSHOTS");
    cli.snapshots_uri = env && *env ? env : NULL;

    /* Global options, up to the command name. */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            main_help(&cli);
            return es__cli_finish(&cli, ES__CLI_OK);
        }
        if (strcmp(a, "--version") == 0) {
            if (strcmp(cli.prog, "esfold") == 0)
                printf("esfold %s\n", es_version(NULL, NULL, NULL));
            else
                printf("%s (esfold %s)\n", cli.prog, es_version(NULL, NULL, NULL));
            return es__cli_finish(&cli, ES__CLI_OK);
        }
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            verbose = 1;
            continue;
        }
        if ((taken = uri_option(&cli, argc, argv, &i, "log", &cli.log_uri)) ||
            (taken = uri_option(&cli, argc, argv, &i, "snapshots",
                                &cli.snapshots_uri))) {
            if (taken < 0)
                return ES__CLI_USAGE;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0')
            return es__cli_usage(&cli, "unknown option '%s'", a);
        break;
    }
    if (i >= argc) {
        fprintf(stderr, "%s: no command given\n", cli.prog);
        fprintf(stderr, "Try '%s --help'.\n", cli.prog);
        return ES__CLI_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        /* `PROG help [COMMAND]`, the way git and go spell it. */
        if (i + 1 < argc) {
            if ((cmd = find_command(&cli, argv[i + 1])) == NULL)
                return es__cli_usage(&cli, "unknown command '%s'", argv[i + 1]);
            cli.cmd = cmd;
            es__cli_command_help(&cli, cmd);
        } else {
            main_help(&cli);
        }
        return es__cli_finish(&cli, ES__CLI_OK);
    }
    if ((cmd = find_command(&cli, argv[i])) == NULL)
        return es__cli_usage(&cli, "unknown command '%s'", argv[i]);
    cli.cmd = cmd;
    if (verbose)
        es_set_diagnostic_fn(show_diagnostic, &cli);
    status = cmd->run(&cli, argc - i, argv + i);
    if (cli.json && status != ES__CLI_OK && !cli.json_printed) {
        /* The JSON contract: one object on stdout, also on failure. */
        json_t *doc = es__cli_json_doc();
        json_t *e = es__cli_error_json(&cli);
        if (doc && e && json_object_set_new(doc, "error", e) == 0) {
            e = NULL;
            es__cli_print_json(&cli, doc);
        }
        json_decref(e);
        json_decref(doc);
    }
    json_decref(cli.err_extra);
    es_repo_free(cli.repo); /* before the store it borrows */
    es_snapshot_store_close(cli.store);
    es_log_close(cli.log);
    if (verbose)
        es_set_diagnostic_fn(NULL, NULL);
    return es__cli_finish(&cli, status);
}
