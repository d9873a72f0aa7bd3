// tests/cxx_headers.cpp - the public headers as a C++ program sees them:
// included through esfold.h and every macro they define used, compiled
// by `make headers-check` with -std=c++11 -pedantic -Werror (not linked).
#include <esfold/esfold.h>

int cxx_uses_every_macro(void);

int cxx_uses_every_macro(void)
{
    es_range all = ES_RANGE_ALL;
    es_range to = ES_RANGE_TO_VERSION(3);
    es_range as_of = ES_RANGE_AS_OF(1700000000000000LL);
    es_read_options read = ES_READ_OPTIONS_INIT;
    es_repo_options repo = ES_REPO_OPTIONS_INIT;
    es_execute_options exec = ES_EXECUTE_OPTIONS_INIT;
    es_snapshot_policy policy = ES_SNAPSHOT_POLICY_INIT;
    es_app app = ES_APP_INIT;
    es_emit_options emit = ES_EMIT_OPTIONS_INIT;
    es_processor_options proc = ES_PROCESSOR_OPTIONS_INIT;
    es_projection_worker_options work = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_waiter_options waiter = ES_PROJECTION_WAITER_OPTIONS_INIT;
    es_sql_value params[] = {ES_SQL_NULLV, ES_SQL_STR("a"), ES_SQL_I64(1),
                             ES_SQL_F64(1.5), ES_SQL_BOOLV(1), ES_SQL_JSONV(NULL)};
    const char *v = ES_VERSION_STRING;
    (void)emit;
    (void)proc;
    (void)work;
    (void)waiter;
    (void)params;
    (void)read;
    (void)repo;
    (void)exec;
    (void)policy;
    (void)app;
    return (int)(all.kind + to.version + (as_of.time_us != 0)) +
           (v[0] != '\0') + ES_VERSION_NUMBER;
}
