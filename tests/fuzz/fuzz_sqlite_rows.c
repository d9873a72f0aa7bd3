/*
 * tests/fuzz/fuzz_sqlite_rows.c - the SQLite log (adapters/sqlite/log.c)
 * on es_events rows as a damaged or hand-edited file holds them: any bytes
 * in any column (tests/fuzz/rows.h says how the input becomes rows).
 *
 * Each input replaces the rows of a scratch file; the log then lists the
 * types, reads every partition and every stream it finds, checks the file
 * (es_log_check) and appends to a stream.
 *
 * Properties: every call returns 0 or an esfold code with a message (never
 * a crash, a leak or ES_ENOMEM); every event delivered has its names, ids
 * and a JSON object payload; offsets and versions delivered are the ones
 * asked for, in order.
 */
#include "rows.h"

static const char *const columns[] = {
    "thing", "0", "0", "s-1", "1", "Noted", "1772359200000000", "1", "e-1",
    "NULL", "NULL", "{}", "NULL", "c-1", "1",
};

#define INSERT \
    "INSERT INTO es_events (agg_type, partition_no, log_offset, stream_id," \
    " version, event_type, occurred_us, payload_schema, event_id," \
    " correlation_id, causation_id, payload, meta, commit_id, commit_size)" \
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"

/* The streams seen, to read each one. */
typedef struct seen {
    char type[8][ES_NAME_MAX + 1];
    char stream[8][ES_STREAM_ID_MAX + 1];
    int n;
    int64_t next; /* the offset or version the next event must have */
    int by_version;
} seen;

static int on_event(const es_event *ev, void *user_data)
{
    seen *s = user_data;
    if (ev->stream_id == NULL || ev->type == NULL || ev->id == NULL ||
        ev->commit_id == NULL || ev->aggregate_type == NULL)
        fuzz_fail("an event without its names or ids");
    if (!json_is_object(ev->payload))
        fuzz_fail("an event whose payload is not an object");
    if (ev->meta && !json_is_object(ev->meta))
        fuzz_fail("an event whose metadata is not an object");
    if (s->by_version ? ev->version != s->next : ev->position.offset != s->next)
        fuzz_fail("delivered %s %lld, expected %lld",
                  s->by_version ? "version" : "offset",
                  (long long)(s->by_version ? ev->version : ev->position.offset),
                  (long long)s->next);
    s->next++;
    if (!s->by_version && s->n < 8 && strlen(ev->stream_id) <= ES_STREAM_ID_MAX &&
        strlen(ev->aggregate_type) <= ES_NAME_MAX) {
        snprintf(s->type[s->n], sizeof s->type[s->n], "%s", ev->aggregate_type);
        snprintf(s->stream[s->n], sizeof s->stream[s->n], "%s", ev->stream_id);
        s->n++;
    }
    return 0;
}

static void expect(es_log *log, int rc, const char *what)
{
    if (rc == 0)
        return;
    if (rc == ES_ENOMEM || rc > 0)
        fuzz_fail("%s: %d (%s)", what, rc, es_errmsg(log));
    if (es_errmsg(log)[0] == '\0')
        fuzz_fail("%s failed (%s) without a message", what, es_strerror(rc));
}

typedef struct types {
    char name[4][ES_NAME_MAX + 1];
    int n;
} types;

static int on_type(const char *name, void *user_data)
{
    types *t = user_data;
    if (t->n < 4 && strlen(name) <= ES_NAME_MAX)
        snprintf(t->name[t->n++], sizeof t->name[0], "%s", name);
    return 0;
}

static int on_problem(const char *kind, const char *message, void *user_data)
{
    (void)user_data;
    if (kind == NULL || message == NULL || message[0] == '\0')
        fuzz_fail("a problem without a kind or message");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char uri[700];
    es_log *log = NULL;
    types t;
    seen s;
    int rc;

    rows_load(data, size, "DELETE FROM es_events; DELETE FROM es_streams;"
              " DELETE FROM es_partitions;"
              /* the partition heads as appends leave them */
              , INSERT, 15, columns);
    {
        sqlite3 *db = NULL;
        sqlite3_open(rows_path, &db);
        sqlite3_exec(db, "INSERT OR IGNORE INTO es_partitions SELECT agg_type,"
                     " partition_no, max(log_offset) + 1 FROM es_events"
                     " GROUP BY agg_type, partition_no;"
                     "INSERT OR IGNORE INTO es_streams SELECT agg_type,"
                     " stream_id, max(version) FROM es_events"
                     " GROUP BY agg_type, stream_id", NULL, NULL, NULL);
        sqlite3_close(db);
    }

    snprintf(uri, sizeof uri, "sqlite:%s?mode=ro", rows_path);
    if ((rc = es_log_open(&log, uri)) != 0)
        fuzz_fail("opening: %s", es_errmsg(log));
    memset(&t, 0, sizeof t);
    expect(log, es_log_types(log, on_type, &t), "listing types");
    memset(&s, 0, sizeof s);
    for (int i = 0; i < t.n; i++) {
        int32_t parts = 0;
        if ((rc = es_log_partition_count(log, &parts, t.name[i])) != 0) {
            expect(log, rc, "counting partitions");
            continue;
        }
        for (int32_t p = 0; p < parts && p < 8; p++) {
            int64_t next = 0, head = 0;
            expect(log, es_log_head(log, &head, t.name[i], p), "head");
            s.next = 0;
            s.by_version = 0;
            expect(log, es_log_read_partition(log, &next, t.name[i], p, 0, 64,
                                              on_event, &s), "reading a partition");
        }
    }
    for (int i = 0; i < s.n; i++) {
        s.next = 1;
        s.by_version = 1;
        expect(log, es_log_read_stream(log, s.type[i], s.stream[i], NULL,
                                       on_event, &s), "reading a stream");
    }
    expect(log, es_log_check(log, on_problem, NULL), "checking");
    es_log_close(log);

    /* An append on top of whatever is there. */
    snprintf(uri, sizeof uri, "sqlite:%s", rows_path);
    log = NULL;
    if ((rc = es_log_open(&log, uri)) != 0)
        fuzz_fail("opening for writing: %s", es_errmsg(log));
    {
        es_event ev;
        memset(&ev, 0, sizeof ev);
        ev.type = "Noted";
        ev.id = "e-1"; /* the default row's id: a retry, a reuse, or new */
        ev.payload = json_object();
        expect(log, es_log_append(log, NULL, "thing", "s-1", ES_EXPECT_ANY, &ev,
                                  1), "appending");
        json_decref(ev.payload);
    }
    es_log_close(log);
    return 0;
}
