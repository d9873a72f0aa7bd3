/*
 * esfold/upcast.h - upcasters: old event payloads made new before apply.
 *
 * An upcaster maps (event type, schema) to a newer (event type, schema) with
 * a function on the payload. Upcasters chain: Deposited/1 -> Deposited/2 ->
 * MoneyDeposited/3. The repository runs the chain on every event before the
 * aggregate's apply sees it, so apply code only ever handles the newest
 * schema of each event.
 *
 * Moving an event type to a new schema, step by step:
 *   1. Declare the new schema on the aggregate type, so that decide writes
 *      it: es_aggregate_type.schemas = { {"ItemAdded", 2}, {NULL, 0} }
 *      (es_emit_new stamps it; es_emit_with can name another).
 *   2. Make apply handle the new payload only.
 *   3. Register the step from the old schema:
 *      es_upcasters_add(es_repo_upcasters(repo), "ItemAdded", 1, NULL, 2,
 *                       item_added_1_to_2, NULL);
 * Stored events keep the schema they were written with: the step runs on
 * the schema 1 events when they are read and never sees a schema 2 one
 * (an event is upcast only from the schema it is labelled with, which is
 * why decide must label what it writes).
 *
 * Ownership: the payload an es_upcast_fn gets is a private deep copy, and
 * it is the function's from the moment it is called, on every path:
 *   - success: return it modified, or return a new object after
 *     json_decref()ing it;
 *   - failure: json_decref() it and return NULL. esfold frees nothing that
 *     a failing upcaster was given (what it returns, a non-object, is
 *     json_decref()ed), so a failure that does not release the copy leaks
 *     it. The read then fails with ES_EINVAL naming the event and the
 *     step; the stored event is untouched.
 * user_data is borrowed: it must outlive the registry.
 */
#ifndef ESFOLD_UPCAST_H
#define ESFOLD_UPCAST_H

#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Turns a payload of the old schema into one of the new. `payload` is a
 * private copy that the function owns: modify and return it, or return a
 * new value (and json_decref the old). To fail the read, json_decref it
 * and return NULL (see Ownership above).
 */
typedef json_t *(*es_upcast_fn)(json_t *payload, void *user_data);

typedef struct es_upcasters es_upcasters;

int es_upcasters_new(es_upcasters **out);
void es_upcasters_free(es_upcasters *u); /* accepts NULL */

/*
 * Registers from (type, from_schema) to (to_type or type when NULL,
 * to_schema). to_schema must be greater than from_schema, so a chain always
 * ends. Registering the same (type, from_schema) twice is ES_EINVAL.
 */
int es_upcasters_add(es_upcasters *u, const char *type, int32_t from_schema,
                     const char *to_type, int32_t to_schema, es_upcast_fn fn,
                     void *user_data);

/*
 * Runs the chain on ev (a heap event: es_event_new/copy), replacing its
 * type, schema and payload in place. Returns 0 (also when nothing applies),
 * or ES_EINVAL when an upcaster returned NULL or a non-object (err names
 * the event and the step).
 */
int es_upcasters_apply(const es_upcasters *u, es_event *ev, es_error *err);

/* 1 when some upcaster applies to (type, schema). */
int es_upcasters_match(const es_upcasters *u, const char *type, int32_t schema);

#ifdef __cplusplus
}
#endif
#endif
