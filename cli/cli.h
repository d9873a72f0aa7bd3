/*
 * cli/cli.h - what the files of the esfold command share.
 *
 * es_cli_main (cli/cli.c) parses the global options, finds the command in
 * its table and calls it. A command is one es__cli_command, defined in its
 * own file (cli/history.c, cli/append.c, cli/verify.c, ...) and listed in
 * the table of cli/cli.c: adding a command is one file and one table line.
 *
 * The command gets its own argv (argv[0] is the command name) and parses it
 * with es__cli_parse against the option specs of its entry, which also
 * drive its --help. It returns an exit status: ES__CLI_OK, ES__CLI_FAIL
 * (printed with es__cli_fail) or ES__CLI_USAGE (es__cli_usage).
 *
 * Internal: not installed, not API.
 */
#ifndef ESFOLD_CLI_CLI_H
#define ESFOLD_CLI_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "esfold/esfold.h"

/* Exit statuses. */
#define ES__CLI_OK 0
#define ES__CLI_FAIL 1
#define ES__CLI_USAGE 2
#define ES__CLI_UNKNOWN 3 /* append: the outcome is unknown (ES_EUNKNOWN) */

/* The context of one es_cli_main call. */
typedef struct es__cli es__cli;

/* One option of a command, the same as a program's own commands use
 * (esfold/cli.h). Every command also takes --help (-h) and --log URI,
 * which need no spec. */
typedef es_app_option es__cli_opt;

#define ES__CLI_MAX_OPTS ES_APP_MAX_OPTIONS
#define ES__CLI_MAX_ARGS 256 /* positional arguments of one command */

typedef struct es__cli_command {
    const char *name;     /* "history" */
    const char *summary;  /* one line for `PROG --help` */
    const char *synopsis; /* what follows the name: "TYPE STREAM [options]" */
    const char *help;     /* paragraphs for `PROG COMMAND --help`; may be NULL */
    const es__cli_opt *opts; /* ended by {NULL}; may be NULL */
    int min_args, max_args;  /* positional arguments; max -1 = any number */
    /* Runs the command; argv[0] is its name. Returns an exit status. */
    int (*run)(es__cli *cli, int argc, char **argv);
} es__cli_command;

/* The commands (each defined in its own file). */
extern const es__cli_command es__cli_history;
extern const es__cli_command es__cli_append;
extern const es__cli_command es__cli_verify;
extern const es__cli_command es__cli_streams;  /* cli/streams.c */
extern const es__cli_command es__cli_broker; /* cli/broker.c */
extern const es__cli_command es__cli_topics; /* cli/topics.c */
extern const es__cli_command es__cli_snapshot; /* cli/snapshot.c */
extern const es__cli_command es__cli_project; /* cli/project.c */
extern const es__cli_command es__cli_deadletters; /* cli/project.c */
extern const es__cli_command es__cli_status; /* cli/status.c */
/* `project rebuild ...` (cli/rebuild.c); argv[0] is "rebuild". */
int es__cli_project_rebuild(es__cli *cli, int argc, char **argv);

/* ---- The context --------------------------------------------------------- */

struct es__cli {
    const char *prog;            /* program name in messages */
    const es_app *app;           /* may be NULL */
    const char *log_uri;         /* --log, $ESFOLD_LOG or the default */
    const char *snapshots_uri;   /* --snapshots, $ESFOLD_SNAPSHOTS, or NULL */
    const es__cli_command *cmd;  /* the running command */
    es_log *log;                 /* opened by es__cli_log */
    es_repo *repo;               /* made by es__cli_repo */
    es_snapshot_store *store;    /* opened by es__cli_attach_snapshots */
    /* A program's own command (app->commands), and the entry that runs it
     * like a built-in one. */
    const es_app_command *app_cmd;
    es__cli_command app_entry;
    /* The JSON contract (docs/cli.md, "JSON output"): with --json, one
     * object on stdout, also on failure. json is set by es__cli_parse when
     * the command's --json is given; json_printed by es__cli_print_json.
     * When a command in JSON mode fails without printing, es_cli_main
     * prints {"format": 1, "error": {...}} from the last failure: its code
     * (err_code, an ES_E* code, ES__CLI_EUSAGE, or 0 for "failed"), its
     * message (err) and err_extra's fields. */
    int json, json_printed;
    int err_code;
    char err[1024];
    json_t *err_extra;
};

/* The version of the JSON documents the commands print ("format"). */
#define ES__CLI_JSON_FORMAT 1

/* err_code of a usage error. */
#define ES__CLI_EUSAGE 1

/* A new JSON object whose first field is "format": ES__CLI_JSON_FORMAT;
 * NULL when out of memory. */
json_t *es__cli_json_doc(void);

/* The name of an error code in JSON ("conflict", "not_found", "usage",
 * ...; "failed" for 0). */
const char *es__cli_error_name(int code);

/* The error object of the last failure: {"code", "message", + err_extra},
 * a new reference or NULL when out of memory. */
json_t *es__cli_error_json(const es__cli *cli);

/* Sets the code of the last failure (and adds to err_extra the fields of
 * extra, a reference stolen; may be NULL); returns ES__CLI_FAIL. Call it
 * after es__cli_fail. */
int es__cli_fail_code(es__cli *cli, int code, json_t *extra);

/* The program's commands of an app, or NULL (an app of version 1 has
 * none). */
const es_app_command *es__cli_app_commands(const es_app *app);

/* Runs cli->app_cmd (the run of cli->app_entry). */
int es__cli_run_app_command(es__cli *cli, int argc, char **argv);

/*
 * The log of --log, opened on first use. With must_exist, a sqlite: file
 * that is not there is a failure instead of a new empty log (reading
 * commands must not create logs where an operator mistyped a path).
 * Returns ES__CLI_OK with *out set, or ES__CLI_FAIL (message printed).
 */
int es__cli_log(es__cli *cli, int must_exist, es_log **out);

/* uri for opening without writing: a sqlite: file URI with mode=ro added,
 * any other a copy. es__free it; NULL when out of memory. */
char *es__cli_read_only_uri(const char *uri);

/* The repository on that log with app->setup run on it (upcasters). */
int es__cli_repo(es__cli *cli, int must_exist, es_repo **out);

/* The aggregate type compiled in under name, or NULL. */
const es_aggregate_type *es__cli_find_type(const es__cli *cli, const char *name);

/* ---- Messages ------------------------------------------------------------ */

/* "PROG: <message>" on stderr; returns ES__CLI_FAIL. */
int es__cli_fail(es__cli *cli, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* "PROG COMMAND: <message>" and a hint to --help on stderr; returns
 * ES__CLI_USAGE. */
int es__cli_usage(es__cli *cli, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The --help text of cmd on stdout. */
void es__cli_command_help(const es__cli *cli, const es__cli_command *cmd);

/* ---- Options ------------------------------------------------------------- */

/*
 * Parses argv[1..argc) of the running command against its option specs:
 * `--name VALUE`, `--name=VALUE`, `--flag`, `--` ending the options, and
 * the positionals anywhere else. values[i] gets the value of opts[i] (""
 * for a flag that is given, NULL for an absent option); args/nargs the
 * positionals (args has room for ES__CLI_MAX_ARGS). Commands name their
 * options by an enum that follows the order of their specs. An option given twice is a
 * usage error. --log URI is taken here too.
 *
 * Returns -1 to go on, or the exit status to return at once: ES__CLI_OK
 * after printing --help, ES__CLI_USAGE after a usage message.
 */
int es__cli_parse(es__cli *cli, int argc, char **argv,
                  const char *values[ES__CLI_MAX_OPTS], char **args,
                  int *nargs);

/* ---- Output -------------------------------------------------------------- */

/* value as compact JSON (any value) into a string owned by the caller
 * (es__cli_json_free: jansson's allocator made it), or NULL when out of
 * memory. */
char *es__cli_json_compact(const json_t *value);
void es__cli_json_free(char *text);

/* value as indented JSON and a newline on stdout; ES__CLI_OK or
 * ES__CLI_FAIL. Marks the command's JSON document as printed. */
int es__cli_print_json(es__cli *cli, const json_t *value);

/* "v3  2026-03-01T10:00:00Z  Deposited  (schema 1)  id ...  p0@4" and the
 * indented data/meta/ids lines of ev, then "state" when state is not NULL.
 * stored_schema, when > 0 and not ev's, is the schema the log holds, ev's
 * being that of an upcaster: "(schema 2, stored 1)".
 * Returns ES__CLI_OK or ES__CLI_FAIL (out of memory). */
int es__cli_print_event(es__cli *cli, FILE *f, const es_event *ev,
                        int32_t stored_schema, const json_t *state);

/* Flushes stdout; a failed write is ES__CLI_FAIL with a message. */
int es__cli_finish(es__cli *cli, int status);

/*
 * SIGINT and SIGTERM set *es__cli_stop_begin()'s flag (a long command
 * stops after its current batch) until es__cli_stop_end() puts the
 * previous handlers back. One pair at a time.
 */
volatile int *es__cli_stop_begin(void);
void es__cli_stop_end(void);

#endif
