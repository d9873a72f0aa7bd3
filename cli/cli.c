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
    &es__cli_broker,
    &es__cli_topics,
    &es__cli_snapshot,
    &es__cli_project,
    &es__cli_deadletters,
    &es__cli_status,
    NULL
};

static const es__cli_command *find_command(const char *name)
{
    for (size_t i = 0; commands[i]; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static void main_help(const es__cli *cli)
{
    size_t width = 0;
    printf("Usage: %s [--log URI] COMMAND [ARGS...]\n"
           "       %s COMMAND --help\n\n", cli->prog, cli->prog);
    printf("Operations on an esfold event log.\n\nCommands:\n");
    for (size_t i = 0; commands[i]; i++)
        if (strlen(commands[i]->name) > width)
            width = strlen(commands[i]->name);
    for (size_t i = 0; commands[i]; i++)
        printf("  %-*s  %s\n", (int)width, commands[i]->name,
               commands[i]->summary);
    printf("\nOptions:\n"
           "  --log URI   the log (default: $ESFOLD_LOG, else %s):\n"
           "              sqlite:PATH, sqlite::memory:, kafka://HOST:PORT?prefix=P\n"
           "  --help      this text\n"
           "  --version   the version\n\n",
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

int es_cli_main(int argc, char **argv, const es_app *app)
{
    es__cli cli;
    const es__cli_command *cmd;
    const char *env;
    int i, status;

    memset(&cli, 0, sizeof cli);
    cli.app = app;
    cli.prog = program_name(app, argc, argv);
    if (app && app->version != ES_APP_VERSION) {
        fprintf(stderr, "%s: es_app version %u is not supported (expected %u)\n",
                cli.prog, app->version, (unsigned)ES_APP_VERSION);
        return ES__CLI_FAIL;
    }
    if (argc < 0 || (argc > 0 && argv == NULL))
        argc = 0;
    env = getenv("ESFOLD_LOG");
    cli.log_uri = env && *env ? env : ES_LOG_DEFAULT_URI;

    /* Global options, up to the command name. */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            main_help(&cli);
            return es__cli_finish(&cli, ES__CLI_OK);
        }
        if (strcmp(a, "--version") == 0) {
            if (strcmp(cli.prog, "esfold") == 0)
                printf("esfold %s\n", ESFOLD_VERSION);
            else
                printf("%s (esfold %s)\n", cli.prog, ESFOLD_VERSION);
            return es__cli_finish(&cli, ES__CLI_OK);
        }
        if (strcmp(a, "--log") == 0) {
            if (i + 1 >= argc || *argv[i + 1] == '\0')
                return es__cli_usage(&cli, "--log needs a URI");
            cli.log_uri = argv[++i];
            continue;
        }
        if (strncmp(a, "--log=", 6) == 0) {
            if (a[6] == '\0')
                return es__cli_usage(&cli, "--log needs a URI");
            cli.log_uri = a + 6;
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
            if ((cmd = find_command(argv[i + 1])) == NULL)
                return es__cli_usage(&cli, "unknown command '%s'", argv[i + 1]);
            cli.cmd = cmd;
            es__cli_command_help(&cli, cmd);
        } else {
            main_help(&cli);
        }
        return es__cli_finish(&cli, ES__CLI_OK);
    }
    if ((cmd = find_command(argv[i])) == NULL)
        return es__cli_usage(&cli, "unknown command '%s'", argv[i]);
    cli.cmd = cmd;
    status = cmd->run(&cli, argc - i, argv + i);
    es_repo_free(cli.repo);
    es_log_close(cli.log);
    return es__cli_finish(&cli, status);
}
