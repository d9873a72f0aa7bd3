/*
 * cli/app.c - a program's own commands (es_app.commands): each runs like a
 * built-in command, with its options parsed, the log and the repository
 * opened, app->setup run and, when the program asks for them, snapshots
 * attached.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/internal.h"

const es_app_command *es__cli_app_commands(const es_app *app)
{
    return app && app->version >= 2 ? app->commands : NULL;
}

static const es_snapshot_policy *app_policy(const es_app *app)
{
    return app && app->version >= 2 ? app->snapshots : NULL;
}

static void on_warning(int code, const char *message, void *user_data)
{
    const es__cli *cli = user_data;
    (void)code;
    fprintf(stderr, "%s: warning: %s\n", cli->prog, message);
}

/*
 * Attaches the store of --snapshots / $ESFOLD_SNAPSHOTS (it must open) or
 * of the log's default (an optimisation: when it cannot be opened, a
 * warning, and loads fold every event) to the repository, for each type.
 */
static int attach_snapshots(es__cli *cli, const es_snapshot_policy *policy)
{
    int explicit = cli->snapshots_uri != NULL;
    char *uri = NULL;
    int rc;

    es_repo_set_warning_cb(cli->repo, on_warning, cli);
    if (explicit)
        rc = (uri = es__strdup(cli->snapshots_uri)) ? 0 : ES_ENOMEM;
    else
        rc = es_snapshot_default_uri(&uri, cli->log_uri);
    if (rc == ES_ENOTFOUND)
        return ES__CLI_OK; /* no default store for this kind of log */
    if (rc != 0)
        return es__cli_fail(cli, "%s", es_strerror(rc));
    rc = es_snapshot_store_open(&cli->store, uri);
    es__free(uri);
    if (rc != 0) {
        fprintf(stderr, "%s: %s: cannot open the snapshot store: %s%s\n",
                cli->prog, explicit ? "error" : "warning",
                cli->store ? es_errmsg(cli->store) : es_strerror(rc),
                explicit ? "" : " (loads fold every event)");
        es_snapshot_store_close(cli->store);
        cli->store = NULL;
        return explicit ? ES__CLI_FAIL : ES__CLI_OK;
    }
    for (size_t i = 0; cli->app->types && cli->app->types[i]; i++)
        if ((rc = es_repo_add_snapshots(cli->repo, cli->app->types[i],
                                        cli->store, policy)) != 0)
            return es__cli_fail(cli, "%s", es_errmsg(cli->repo));
    return ES__CLI_OK;
}

int es__cli_run_app_command(es__cli *cli, int argc, char **argv)
{
    const es_app_command *cmd = cli->app_cmd;
    const char *values[ES__CLI_MAX_OPTS];
    char *args[ES__CLI_MAX_ARGS];
    const es_snapshot_policy *policy = app_policy(cli->app);
    es_app_call call;
    es_repo *repo;
    int rc, nargs;

    size_t nopts = 0;

    /* The program's table is input too: values has room for
     * ES_APP_MAX_OPTIONS. */
    while (cmd->opts && cmd->opts[nopts].name)
        nopts++;
    if (nopts > ES_APP_MAX_OPTIONS || cmd->run == NULL)
        return es__cli_fail(cli, "command '%s' of the program is not valid: %s",
                            cmd->name, cmd->run == NULL ? "it has no run function"
                                                        : "more than 16 options");
    if ((rc = es__cli_parse(cli, argc, argv, values, args, &nargs)) >= 0)
        return rc;
    if ((rc = es__cli_repo(cli, (cmd->flags & ES_APP_READ_ONLY) != 0, &repo)) !=
        ES__CLI_OK)
        return rc;
    if (policy && (rc = attach_snapshots(cli, policy)) != ES__CLI_OK)
        return rc;
    memset(&call, 0, sizeof call);
    call.prog = cli->prog;
    call.log_uri = cli->log_uri;
    call.snapshots_uri = cli->snapshots_uri;
    call.log = cli->log;
    call.repo = repo;
    call.snapshots = cli->store;
    call.argc = nargs;
    call.argv = args;
    call.values = values;
    call.user_data = cli->app->user_data;
    rc = cmd->run(&call);
    return rc == ES__CLI_OK || rc == ES__CLI_USAGE ? rc : ES__CLI_FAIL;
}
