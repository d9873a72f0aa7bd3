/*
 * tests/pg_harness.c - see pg_harness.h.
 */
#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pg_harness.h"

static char url[256];
static char why[1024];
static char dir[256];
static char bin[256];
static int port;
static int owned, running, tried;

/* Runs a shell command as the postgres user when we are root, in dir, with
 * its output into dir/<logname>. Returns the exit status. */
static int run_pg(const char *logname, const char *command)
{
    char cmd[4096];
    int rc;
    snprintf(cmd, sizeof cmd, "cd '%s' && %s%s/%s >>'%s/%s' 2>&1", dir,
             geteuid() == 0 ? "runuser -u postgres -- " : "", bin, command, dir,
             logname);
    rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static void cleanup(void)
{
    char cmd[1024];
    if (!owned)
        return;
    if (running) {
        snprintf(cmd, sizeof cmd, "pg_ctl -D '%s/data' -m immediate -w stop", dir);
        run_pg("pg_ctl.log", cmd);
        running = 0;
    }
    if (getenv("ESFOLD_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "pg_harness: could not remove %s\n", dir);
    }
}

static int find_bin(void)
{
    const char *env = getenv("ESFOLD_PG_BIN");
    glob_t g;
    if (env && *env) {
        snprintf(bin, sizeof bin, "%s", env);
        return 0;
    }
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0) {
        snprintf(why, sizeof why, "no PostgreSQL server binaries (set "
                 "ESFOLD_PG_URL or ESFOLD_PG_BIN)");
        return -1;
    }
    /* glob sorts: the last is the newest (for one-digit-count versions). */
    snprintf(bin, sizeof bin, "%.*s", (int)(strlen(g.gl_pathv[g.gl_pathc - 1]) -
             strlen("/initdb")), g.gl_pathv[g.gl_pathc - 1]);
    globfree(&g);
    return 0;
}

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), p = -1;
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        p = ntohs(a.sin_port);
    close(fd);
    return p;
}

int es_test_pg_start(void)
{
    char cmd[1024];
    if (!owned)
        return -1;
    if (running)
        return 0;
    snprintf(cmd, sizeof cmd,
             "pg_ctl -D '%s/data' -l '%s/server.log' -w -t 60 -o "
             "\"-p %d -k '%s' -c listen_addresses=127.0.0.1 -c fsync=off "
             "-c synchronous_commit=off -c full_page_writes=off\" start",
             dir, dir, port, dir);
    if (run_pg("pg_ctl.log", cmd) != 0) {
        snprintf(why, sizeof why, "pg_ctl start failed: see %s/pg_ctl.log and "
                 "%s/server.log", dir, dir);
        return -1;
    }
    running = 1;
    return 0;
}

int es_test_pg_stop(void)
{
    char cmd[1024];
    if (!owned || !running)
        return -1;
    snprintf(cmd, sizeof cmd, "pg_ctl -D '%s/data' -m fast -w stop", dir);
    if (run_pg("pg_ctl.log", cmd) != 0)
        return -1;
    running = 0;
    return 0;
}

static int start_throwaway(void)
{
    const char *base = "/tmp"; /* the postgres user must reach it */
    char cmd[1024];
    struct passwd *pw = NULL;

    if (find_bin() != 0)
        return -1;
    snprintf(dir, sizeof dir, "%s/esfold-pg-XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        snprintf(why, sizeof why, "mkdtemp %s failed", dir);
        return -1;
    }
    owned = 1;
    atexit(cleanup);
    if (geteuid() == 0) {
        if ((pw = getpwnam("postgres")) == NULL ||
            chown(dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(why, sizeof why, "running as root and there is no "
                     "postgres user to run the server as");
            return -1;
        }
    }
    snprintf(cmd, sizeof cmd, "initdb -D '%s/data' -A trust -U postgres "
             "-E UTF8 --no-sync", dir);
    if (run_pg("initdb.log", cmd) != 0) {
        snprintf(why, sizeof why, "initdb failed: see %s/initdb.log", dir);
        return -1;
    }
    if ((port = free_port()) < 0) {
        snprintf(why, sizeof why, "no free loopback port");
        return -1;
    }
    if (es_test_pg_start() != 0)
        return -1;
    snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%d/postgres",
             port);
    return 0;
}

const char *es_test_pg_url(void)
{
    const char *env = getenv("ESFOLD_PG_URL");
    if (env && *env)
        return env;
    if (!tried) {
        tried = 1;
        if (start_throwaway() != 0)
            url[0] = '\0';
    }
    return url[0] ? url : NULL;
}

const char *es_test_pg_why(void)
{
    return why[0] ? why : "no reason recorded";
}

int es_test_pg_owned(void)
{
    return owned && url[0];
}

const char *es_test_pg_fresh_db(const char *prefix)
{
    static char urls[8][300];
    static int n;
    const char *base = es_test_pg_url();
    char sql[160], *slash, *u;
    PGconn *c;
    PGresult *r;
    int ok;
    if (base == NULL)
        return NULL;
    u = urls[n++ % 8];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s_%ld_%d", prefix, (long)getpid(), n);
    c = PQconnectdb(base);
    r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(why, sizeof why, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    if (!ok)
        return NULL;
    snprintf(u, 300, "%s", base);
    slash = strrchr(u, '/');
    snprintf(slash + 1, 300 - (size_t)(slash + 1 - u), "%s_%ld_%d", prefix,
             (long)getpid(), n);
    return u;
}
