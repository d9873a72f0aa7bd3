/*
 * esfold/rebuild.h - rebuilding a projection's tables without downtime,
 * and building them as of a time.
 *
 * es_projection_rebuild() builds the projection's tables under shadow
 * names from the log's origin, with checkpoints of their own (the name
 * "NAME#rebuild" in the es_proj_ tables), while the live tables keep
 * serving and the live workers keep updating them. When the rebuild has
 * caught up with the log it compares old and new (rows and a checksum per
 * table) and swaps them in ONE target transaction, with the live
 * checkpoints: readers see the complete old tables until the commit and
 * the complete new ones after it. A live worker's next batch finds its
 * checkpoint moved (ES_ECONFLICT inside its run, not an error) and goes on
 * from the rebuild's. Interrupted (stop, a kill, a lost connection), a
 * rebuild started again resumes from its checkpoints.
 *
 * With as_of_us, it writes the read model as it stood at that time (each
 * stream's events before its first one later than the time, the rule of
 * es_repo_load as of a time) into tables named after it, left in place.
 *
 * Names (docs/projections.md): a table T of the setup is built as
 * T__v<version>_rebuild, or T__asof_<yyyymmddthhmmssz> (time to the
 * second, UTC, in lower case so that PostgreSQL's unquoted names match);
 * its indexes likewise. The table names come from the
 * setup's CREATE TABLE / CREATE INDEX statements; the setup and handler
 * statements run with those names rewritten (outside string literals and
 * comments).
 */
#ifndef ESFOLD_REBUILD_H
#define ESFOLD_REBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "log.h"
#include "projection.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Old and new of one table, before the swap. */
typedef struct es_rebuild_table {
    const char *table;   /* the live name */
    const char *shadow;  /* the rebuilt table */
    int64_t old_rows;    /* -1: there is no live table of that name */
    int64_t new_rows;
    char old_sum[17];    /* 64-bit hash of the multiset of rows, hex */
    char new_sum[17];
} es_rebuild_table;

/* Where a rebuild is. Offsets: sums over the followed partitions. */
typedef struct es_rebuild_progress {
    const char *phase;   /* "build", "swap", "done" */
    int64_t done;        /* the rebuild's checkpoints */
    int64_t total;       /* the log heads (read now and then) */
    int64_t start;       /* the checkpoints when this call began (> 0: it
                            resumed an interrupted rebuild) */
    int64_t applied;     /* events applied by this call */
    int64_t elapsed_us;  /* since this call began */
} es_rebuild_progress;

/* Called after batches (at most every 200 ms) and at each phase; non-zero
 * stops the rebuild (resumable). */
typedef int (*es_rebuild_progress_cb)(const es_rebuild_progress *p, void *ud);
/* Called with every table before the swap; non-zero: no swap (the shadow
 * tables stay; a later rebuild resumes them). */
typedef int (*es_rebuild_compare_cb)(const es_rebuild_table *tables, size_t n,
                                     void *ud);

typedef struct es_rebuild_options {
    unsigned version;            /* ES_REBUILD_OPTIONS_VERSION */
    int64_t as_of_us;            /* 0: a full rebuild and swap; else bounded */
    size_t batch_size;           /* 0: 1000 */
    volatile int *stop;          /* checked between batches */
    es_rebuild_progress_cb progress;
    void *progress_data;
    es_rebuild_compare_cb compare;
    void *compare_data;
    int lock_timeout_ms;         /* PostgreSQL swap: per attempt (0: 2000) */
    int swap_attempts;           /* (0: 5) */
} es_rebuild_options;

#define ES_REBUILD_OPTIONS_VERSION 1
#define ES_REBUILD_OPTIONS_INIT \
    { ES_REBUILD_OPTIONS_VERSION, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, 0 }

/*
 * Rebuilds proj (borrowed) from log into the target at target_uri (NULL:
 * $ESFOLD_TARGET). *out (may be NULL) gets the last progress. Returns 0;
 * ES_EUSER when stopped or the compare callback declined (resumable);
 * ES_EINVAL (no table names in the setup, a name too long); ES_EIO (the
 * target or the log failed; the swap failed its attempts: err says why);
 * ES_ENOMEM.
 */
int es_projection_rebuild(es_rebuild_progress *out, es_log *log,
                          const es_projection *proj, const char *target_uri,
                          const es_rebuild_options *opts, es_error *err);

/* The suffix of the tables of a rebuild as of as_of_us:
 * "__asof_20260301t100000z" (buf of 32 bytes at least). */
void es_rebuild_asof_suffix(char *buf, size_t size, int64_t as_of_us);

#ifdef __cplusplus
}
#endif
#endif
