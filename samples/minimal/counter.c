/*
 * samples/minimal/counter.c - a counter aggregate and its `add` command.
 * The first ten minutes with esfold: read this file top to bottom.
 */
#include <stdio.h>
#include <stdlib.h>

#include "counter.h"

/* 1. The state, folded from the events. */
typedef struct counter {
    long long total;
} counter;

/* 2. One apply per event type: how an event changes the state. */
static int apply_added(void *state, const es_event *ev)
{
    json_t *n = json_object_get(ev->payload, "n");
    if (!json_is_integer(n))
        return ES_EINVAL; /* a payload this program cannot read */
    ((counter *)state)->total += json_integer_value(n);
    return 0;
}

static const es_handler counter_handlers[] = {
    { "Added", apply_added },
    { NULL, NULL }
};

/* The state as JSON: `minimal history counter ID` shows it. */
static json_t *counter_encode(const void *state)
{
    return json_pack("{sI}", "total", (json_int_t)((const counter *)state)->total);
}

const es_aggregate_type counter_type = {
    .name = "counter",
    .state_size = sizeof(counter),
    .handlers = counter_handlers,
    .state_schema = 1,
    .encode = counter_encode,
};

/* 3. decide: a command becomes events, or is refused. */
static int decide_add(const void *state, int64_t version, const void *command,
                      es_emitter *em, void *user_data)
{
    long long n = *(const long long *)command;
    (void)state, (void)version, (void)user_data;
    if (n <= 0)
        return es_refuse(em, "a counter only goes up: %lld is not > 0", n);
    return es_emit_new(em, "Added", json_pack("{sI}", "n", (json_int_t)n));
}

/* 4. The command line: `minimal add ID N`. es_cli_main has opened the log
 * and the repository; execute loads the counter, decides, appends (and
 * decides again if another writer got there first). */
static int add_run(const es_app_call *call)
{
    const char *id = call->argv[0];
    char *end;
    long long n = strtoll(call->argv[1], &end, 10);
    es_execute_result res;
    es_aggregate *agg = NULL;
    int rc;

    if (*call->argv[1] == '\0' || *end != '\0') {
        fprintf(stderr, "%s add: N '%s' is not a number\n", call->prog,
                call->argv[1]);
        return 2;
    }
    rc = es_repo_execute(call->repo, &res, &counter_type, id, decide_add, &n,
                         NULL, NULL);
    if (rc == 0)
        rc = es_repo_load(call->repo, &agg, &counter_type, id, ES_RANGE_ALL);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", call->prog, es_errmsg(call->repo));
        return 1;
    }
    printf("counter %s: %lld (version %lld)\n", id,
           ((const counter *)es_aggregate_state(agg))->total,
           (long long)es_aggregate_version(agg));
    es_aggregate_free(agg);
    return 0;
}

static const es_app_command counter_commands[] = {
    { "add", "ID N", "add N (> 0) to counter ID", NULL, NULL, 2, 2, 0, add_run },
    { NULL, NULL, NULL, NULL, NULL, 0, 0, 0, NULL }
};

static const es_aggregate_type *const counter_types[] = { &counter_type, NULL };

/* 5. The program: its command, and the esfold operations commands
 * (history, verify, streams, ...) with the counter type compiled in. */
const es_app counter_app = {
    .version = ES_APP_VERSION,
    .name = "minimal",
    .types = counter_types,
    .commands = counter_commands,
};
