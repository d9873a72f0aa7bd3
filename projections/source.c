/*
 * projections/source.c - the one place projections read the log.
 *
 * A worker resumes a partition at its checkpoint. A reader that applies
 * the acceptance rule (the Kafka log) needs each stream's state at that
 * offset to judge the events after it; the worker keeps it in
 * es_proj_resume and hands it here through seed_fn, so that a restarted
 * worker never reads a partition from its beginning
 * (es_log_read_partition_seeded).
 */
#include "projections/target_backend.h"

int es__proj_source_read(es_log *log, int64_t *next_offset,
                         const char *aggregate_type, int32_t partition,
                         int64_t from_offset, size_t max_events, int lean,
                         es_seed_fn seed_fn, void *seed_data,
                         es_event_cb cb, void *user_data)
{
    return (lean ? es__log_read_partition_lean : es_log_read_partition_seeded)(
        log, next_offset, aggregate_type, partition, from_offset, max_events,
        seed_fn, seed_data, cb, user_data);
}
