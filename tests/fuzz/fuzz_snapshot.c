/*
 * tests/fuzz/fuzz_snapshot.c - snapshots as a store holds them
 * (adapters/sqlite/snapshot.c, snapshots/store.c, snapshots/select.c), and
 * the state a snapshot carries as the bank account's decode reads it.
 *
 * The scratch file's log holds account/acct-1 at version 1. An input whose
 * first byte is even is a state: saved (with a checksum that matches) as
 * the snapshot of acct-1 at version 1. Otherwise the rest are rows of
 * es_snapshots (tests/fuzz/rows.h), checksums and all.
 *
 * Properties: listing gives each row, and es_snapshot_verify says 0 or
 * ES_ECORRUPT with a message; a load with the store attached always
 * succeeds at version 1 whatever the store holds (a bad snapshot is a
 * warning, never an error, never a crash or a leak).
 */
#include "rows.h"
#include "samples/bank/account.h"

#define EVENT_ID "01900000-0000-7000-8000-000000000001"
#define T_US "1772359200000000"

static char partition_text[16];
static const char *columns[] = {
    "account", "acct-1", "1", partition_text, "0", EVENT_ID, T_US, T_US, "1",
    "{}", "crc32c:00000000", "0",
};

#define INSERT \
    "INSERT INTO es_snapshots (agg_type, stream_id, version, partition_no," \
    " log_offset, event_id, time_us, horizon_us, state_schema, state," \
    " checksum, taken_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10," \
    " ?11, ?12)"

static void setup(const char *uri)
{
    es_log *log = NULL;
    es_event ev;
    es_append_result ar;
    if (partition_text[0])
        return;
    if (es_log_open(&log, uri) != 0)
        fuzz_fail("opening: %s", es_errmsg(log));
    memset(&ev, 0, sizeof ev);
    ev.type = "AccountOpened";
    ev.id = EVENT_ID;
    ev.occurred_us = 1772359200000000;
    ev.payload = json_pack("{s:s,s:s}", "owner", "Ada", "currency", "EUR");
    if (es_log_append(log, &ar, "account", "acct-1", ES_EXPECT_ANY, &ev, 1) != 0)
        fuzz_fail("appending: %s", es_errmsg(log));
    json_decref(ev.payload);
    snprintf(partition_text, sizeof partition_text, "%d", (int)ar.first.partition);
    es_log_close(log);
}

static int on_snapshot(const es_snapshot *snap, void *user_data)
{
    es_error err;
    int rc;
    (void)user_data;
    memset(&err, 0, sizeof err);
    rc = es_snapshot_verify(snap, &err);
    if (rc != 0 && (rc != ES_ECORRUPT || err.text[0] == '\0'))
        fuzz_fail("verify: %d without a message", rc);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char uri[700];
    es_snapshot_store *store = NULL;
    es_log *log = NULL;
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    int rc;

    rows_file();
    snprintf(uri, sizeof uri, "sqlite:%s", rows_path);
    setup(uri);
    rows_load(size ? data + 1 : data, size ? size - 1 : 0,
              "DELETE FROM es_snapshots", size && !(data[0] & 1) ? "SELECT 1"
                                                                : INSERT,
              size && !(data[0] & 1) ? 0 : 12, columns);
    if (es_snapshot_store_open(&store, uri) != 0)
        fuzz_fail("opening the store: %s", es_errmsg(store));
    if (size && !(data[0] & 1)) {
        /* The state as the program would have saved it. */
        char *state = malloc(size);
        es_snapshot snap;
        if (state == NULL)
            fuzz_fail("out of memory");
        memcpy(state, data + 1, size - 1);
        state[size - 1] = '\0';
        memset(&snap, 0, sizeof snap);
        snap.aggregate_type = "account";
        snap.stream_id = "acct-1";
        snap.version = 1;
        snap.position.partition = atoi(partition_text);
        snap.event_id = EVENT_ID;
        snap.time_us = snap.horizon_us = 1772359200000000;
        snap.state_schema = bank_account_type.state_schema;
        snap.state = state;
        rc = es_snapshot_save(store, &snap);
        if (rc != 0 && (rc != ES_EINVAL || es_errmsg(store)[0] == '\0'))
            fuzz_fail("save: %d (%s)", rc, es_errmsg(store));
        free(state);
    }
    rc = es_snapshot_list(store, "account", "acct-1", ES_RANGE_ALL, on_snapshot,
                          NULL);
    if (rc != 0)
        fuzz_fail("list: %s", es_errmsg(store));

    if (es_log_open(&log, uri) != 0 || es_repo_new(&repo, log, NULL) != 0)
        fuzz_fail("opening the log: %s", es_errmsg(log));
    if (es_repo_add_snapshots(repo, &bank_account_type, store, NULL) != 0)
        fuzz_fail("attaching: %s", es_errmsg(repo));
    rc = es_repo_load(repo, &agg, &bank_account_type, "acct-1", ES_RANGE_ALL);
    if (rc != 0)
        fuzz_fail("a load with snapshots failed: %s", es_errmsg(repo));
    if (es_aggregate_version(agg) != 1)
        fuzz_fail("loaded version %lld", (long long)es_aggregate_version(agg));
    es_aggregate_free(agg);
    es_repo_free(repo);
    es_log_close(log);
    es_snapshot_store_close(store);
    return 0;
}
