/*
 * projections/assign.h - which (type, partition) pairs a projection worker
 * owns now (docs/projections.md, "Scale-out"). Internal: not installed.
 *
 * Three ways, by es_projection_share:
 *   NONE   every partition, always (the worker of old);
 *   group  a consumer group of the log (Kafka), used for membership only:
 *          the log's group_* backend ops;
 *   lease  one row per projection in the target's es_proj_leases, taken
 *          and renewed with a compare-and-set; its holder owns every
 *          partition, the others none.
 * es__assign_poll is called by the worker between batches only, so a
 * revocation (or a lost lease) never falls inside a batch's transaction;
 * the checkpoint CAS still keeps two owners that overlap exactly once.
 */
#ifndef ESFOLD_PROJECTIONS_ASSIGN_H
#define ESFOLD_PROJECTIONS_ASSIGN_H

#include "projections/target_backend.h"

typedef struct es__assign es__assign;

/*
 * Opens the assignment of worker `worker` of projection proj (borrowed,
 * like log and t: they outlive it). Failures are set on h (the worker's
 * handle). *out is NULL on failure.
 */
int es__assign_open(es__assign **out, es__handle *h, es_log *log, es__target *t,
                    const es_projection *proj, const char *worker,
                    es_projection_share share, int lease_ms);
/* Renews the lease / serves the group when it is time; *changed = 1 when
 * what the worker owns changed (it then re-reads its checkpoints). */
int es__assign_poll(es__assign *a, int *changed);
/* 1 when the worker owns (agg, partition) now. NULL a: always. */
int es__assign_owns(const es__assign *a, const char *agg, int32_t partition);
/* NULL (no sharing), or what a worker that owns nothing waits for. */
const char *es__assign_waiting(const es__assign *a);
/* Leaves the group / gives the lease up (expires now). Accepts NULL. */
void es__assign_close(es__assign *a);

#endif
