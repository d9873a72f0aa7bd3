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
 * Commands: history, append, verify, project, deadletters, ... (see
 * `esfold --help`). The form is
 * `PROG [--log URI] COMMAND ...`; --log defaults to $ESFOLD_LOG, else
 * sqlite:./esfold.db.
 */
#ifndef ESFOLD_CLI_H
#define ESFOLD_CLI_H

#include "aggregate.h"
#include "projection.h"
#include "repo.h"

#ifdef __cplusplus
extern "C" {
#endif

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
} es_app;

#define ES_APP_VERSION 1
#define ES_APP_INIT { ES_APP_VERSION, "esfold", NULL, NULL, NULL, NULL }

/*
 * Runs one command. Output goes to stdout, errors to stderr. Returns the
 * process exit status: 0 success, 1 the command failed (or verify found
 * problems), 2 usage error. app may be NULL (no types compiled in).
 */
int es_cli_main(int argc, char **argv, const es_app *app);

#ifdef __cplusplus
}
#endif
#endif
