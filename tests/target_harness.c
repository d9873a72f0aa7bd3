/*
 * tests/target_harness.c - see target_harness.h.
 */
#include <stdio.h>

#include "harness.h"
#include "pg_harness.h"
#include "target_harness.h"

const char *es_test_pg_fresh_db_or_fail(const char *prefix)
{
    const char *url = es_test_pg_fresh_db(prefix);
    if (url == NULL && es_test_pg_url() != NULL)
        fail_msg("%s", es_test_pg_why());
    return url;
}

void es_test_on_sqlite(es_test_target_case fn, const char *name)
{
    const char *path = es_test_path(name);
    char uri[600];
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    fn(uri, path, 0);
}

void es_test_on_postgres(es_test_target_case fn, const char *prefix)
{
    const char *url = es_test_pg_fresh_db_or_fail(prefix);
    if (url == NULL) {
        print_message("no PostgreSQL: %s\n", es_test_pg_why());
        skip();
    }
    fn(url, url, 1);
}
