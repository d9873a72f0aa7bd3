/*
 * esfold/status.h - where the projections of a target are: per projection
 * and partition the checkpoint, the log head, the lag in events and in
 * seconds; dead letters, the last error, heartbeats, rebuilds in progress.
 * As JSON, and as Prometheus text (what `esfold status` prints).
 */
#ifndef ESFOLD_STATUS_H
#define ESFOLD_STATUS_H

#include <jansson.h>

#include "error.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The status of every projection in the target at target_uri (NULL:
 * $ESFOLD_TARGET), with the heads read from log (may be NULL: no heads and
 * no lags). *out (json_decref) is
 *   {"target": URI, "now_us": N, "projections": [
 *     {"name", "version", "dead_letters": N (failed + waiting + retry),
 *      "last_error": TEXT|null (of the newest failed dead letter, after
 *                    its event: "BidPlaced auction/A v2: ..."),
 *      "heartbeat_age_s": S|null (the freshest worker),
 *      "workers": [{"worker", "state", "batches", "age_s"}],
 *      "partitions": [{"type", "partition", "checkpoint", "head",
 *                      "lag_events", "lag_seconds"}],
 *      "rebuild": null | {"name": "NAME#rebuild", "version", "done",
 *                         "total", "progress": 0..1, "partitions": [..]}}]}
 * lag_events counts log offsets (rejected records too); lag_seconds is the
 * age of the oldest event not applied yet (0 when caught up). Builds as of
 * a time ("NAME#asof-...") are listed as projections of their own.
 * Returns 0, ES_EIO, ES_EINVAL, ES_ENOMEM (err says why).
 */
int es_projection_status(json_t **out, es_log *log, const char *target_uri,
                         es_error *err);

/*
 * status (from es_projection_status) in the Prometheus text exposition
 * format: HELP and TYPE lines, then esfold_projection_checkpoint,
 * _head, _lag_events, _lag_seconds {projection,type,partition},
 * _dead_letters, _heartbeat_age_seconds, _rebuild_progress, _version
 * {projection}. *out is freed with es_free(). Returns 0, ES_EINVAL,
 * ES_ENOMEM.
 */
int es_projection_status_prometheus(char **out, const json_t *status);

#ifdef __cplusplus
}
#endif
#endif
