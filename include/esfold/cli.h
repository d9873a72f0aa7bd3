/*
 * esfold/cli.h - the esfold command, as a library call.
 *
 * A user's own binary with its aggregate types compiled in becomes its
 * operations tool:
 *
 *     static const es_aggregate_type *types[] = { &account_type, NULL };
 *     int main(int argc, char **argv) {
 *         es_app app = ES_APP_INIT;
 *         app.name = "bank";
 *         app.types = types;
 *         return es_cli_main(argc, argv, &app);
 *     }
 *
 * Commands: history, append, verify, streams, project, deadletters, ...
 * (see `esfold --help`).
 * The form is `PROG [--log URI] [--snapshots URI] COMMAND ...`; --log
 * defaults to $ESFOLD_LOG, else sqlite:./esfold.db.
 *
 * The program's own commands go in app.commands, a table ended by an
 * entry whose name is NULL: es_cli_main parses their options, opens the
 * log and the repository (with app.setup run and, when app.snapshots is
 * set, a snapshot store attached) and calls run with them ready. `PROG
 * --help` lists them first, `PROG COMMAND --help` describes one:
 *
 *     static int add(const es_app_call *call) {
 *         ... es_repo_execute(call->repo, ...) on call->argv[0] ...
 *     }
 *     static const es_app_command commands[] = {
 *         { "add", "ID N", "add N to counter ID", NULL, NULL, 2, 2, 0, add },
 *         { NULL }
 *     };
 *     app.commands = commands;
 *
 * samples/minimal/ is a whole program in this form.
 */
#ifndef ESFOLD_CLI_H
#define ESFOLD_CLI_H

#include "aggregate.h"
#include "projection.h"
#include "repo.h"
#include "snapshot.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One option of a program's command: `--name ARG`, or a flag when arg is
 * NULL. Every command also takes --help and --log URI. */
typedef struct es_app_option {
    const char *name; /* without the dashes: "as-of" */
    const char *arg;  /* the argument's name in help ("TIME"); NULL: a flag */
    const char *help; /* one line */
} es_app_option;

#define ES_APP_MAX_OPTIONS 16

/*
 * What a program's command gets, all borrowed for the duration of run.
 * values follows the command's opts: values[i] is the value of opts[i],
 * "" for a flag that is given, NULL for an option that is not.
 */
typedef struct es_app_call {
    const char *prog;              /* program name, for messages */
    const char *log_uri;           /* the log's URI, as given (--log, $ESFOLD_LOG
                                      or the default) */
    const char *snapshots_uri;     /* --snapshots or $ESFOLD_SNAPSHOTS; NULL
                                      when neither was given */
    es_log *log;                   /* open */
    es_repo *repo;                 /* on log, app->setup run */
    es_snapshot_store *snapshots;  /* attached to repo; NULL: none */
    int argc;                      /* positional arguments, without the */
    char **argv;                   /* command's name: argv[0] is the first */
    const char *const *values;     /* ES_APP_MAX_OPTIONS entries */
    void *user_data;               /* app->user_data */
} es_app_call;

/* es_app_command.flags */
#define ES_APP_READ_ONLY 1u /* reads only: the log must exist already, and a
                               sqlite: file is opened read-only */

typedef struct es_app_command {
    const char *name;     /* "deposit" */
    const char *synopsis; /* what follows the name: "ID AMOUNT" */
    const char *summary;  /* one line for `PROG --help` */
    const char *help;     /* paragraphs for `PROG NAME --help`; may be NULL */
    const es_app_option *opts; /* ended by {NULL}; may be NULL */
    int min_args, max_args;    /* positional arguments; max -1 = any number */
    unsigned flags;            /* ES_APP_READ_ONLY */
    /* Runs the command; returns the exit status (0, 1 failure, 2 usage).
     * Print messages to stderr, prefixed with call->prog. */
    int (*run)(const es_app_call *call);
} es_app_command;

typedef struct es_app {
    unsigned version;                      /* ES_APP_VERSION */
    const char *name;                      /* program name in messages */
    const es_aggregate_type *const *types; /* NULL-terminated; may be NULL */
    /* Called once on the repository the commands use, to register
     * upcasters; may be NULL. Non-zero fails the command. */
    int (*setup)(es_repo *repo, void *user_data);
    void *user_data;
    /* The projections `project run NAME` knows, NULL-terminated; may be
     * NULL (esfold/projection.h). */
    const es_projection *const *projections;
    /* Since ES_APP_VERSION 2. */
    const es_app_command *commands;        /* ended by a NULL name; may be NULL */
    /* When not NULL, the repository of the program's commands gets a
     * snapshot store with this policy for each of types: --snapshots URI,
     * else $ESFOLD_SNAPSHOTS (either must open), else the log's own file or
     * cluster (when that cannot be opened, a warning, and loads fold every
     * event). */
    const es_snapshot_policy *snapshots;
} es_app;

#define ES_APP_VERSION 2
#define ES_APP_INIT { ES_APP_VERSION, "esfold", NULL, NULL, NULL, NULL, NULL, NULL }

/*
 * Runs one command. Output goes to stdout, errors to stderr. Returns the
 * process exit status: 0 success, 1 the command failed (or verify found
 * problems), 2 usage error. app may be NULL (no types compiled in); an app
 * of version 1 has no commands and no snapshots fields.
 */
int es_cli_main(int argc, char **argv, const es_app *app);

#ifdef __cplusplus
}
#endif
#endif
