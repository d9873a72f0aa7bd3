/*
 * projections/source.c - the one place projections read the log.
 *
 * A worker resumes a partition at its checkpoint. A reader that applies
 * the acceptance rule needs each stream's version at that offset to judge
 * the events after it; the worker keeps them in es_proj_resume and hands
 * them here through seed_fn. es_log_read_partition does not take them yet
 * (it rescans what it needs itself), so they are unused for now; a seeded
 * partition read takes this call's place without the worker changing.
 */
#include "projections/target_backend.h"

int es__proj_source_read(es_log *log, int64_t *next_offset,
                         const char *aggregate_type, int32_t partition,
                         int64_t from_offset, size_t max_events,
                         es__proj_seed_fn seed_fn, void *seed_data,
                         es_event_cb cb, void *user_data)
{
    (void)seed_fn;
    (void)seed_data;
    return es_log_read_partition(log, next_offset, aggregate_type, partition,
                                 from_offset, max_events, cb, user_data);
}
