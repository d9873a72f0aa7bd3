/*
 * bench/bench_kafka.c - esfold on Kafka beside kcat on the same local
 * broker (`esfold broker`, librdkafka's mock cluster, started here).
 *
 *   append_1    es_log_append, commits of 1 with exact expected versions,
 *               round-robin over 64 streams, beside `kcat -P` producing
 *               records of the same key, value and header sizes.
 *   append_100  the same with commits of 100 events.
 *   append_1_confirmed, append_100_confirmed
 *               the same appends beside a plain librdkafka program that
 *               produces synchronously and confirmed: an idempotent
 *               producer, one record (or a batch of 100) at a time, waiting
 *               for its delivery reports before the next: the limit of a
 *               confirmed append. Their p50/p99 latencies per commit are
 *               printed under the table.
 *   processor   es_processor_execute of bank deposits round-robin over
 *               64 accounts opened first (untimed: the first loads), the
 *               log opened with owner=1: hot states, no loads, no offsets
 *               requests. Beside kcat -P producing as many records.
 *   execute     the same commands through es_repo_execute (a load, a
 *               decide and a checked append each); at most 500 commands,
 *               as each load scans the stream's partition.
 *   fold        es_repo_load of one bank account stream beside `kcat -C`
 *               reading its partition (where it is alone) to the end.
 *   replay      es_log_read_partition over every partition of a topic
 *               beside `kcat -C` reading the whole topic.
 *
 * The mock keeps about 5 MiB or 100000 batches per partition and drops
 * older data: every topic here has 16 partitions (made at the broker's
 * start), which keeps each partition well under that; the fold stream is
 * capped at 10000 events (about 3 MiB in its partition).
 *
 * esfold's appends are synchronous (each commit is checked, written (a
 * commit of several events in a transaction) and confirmed before the
 * next); kcat's are asynchronous,
 * batched, unchecked. kcat runs as a process: its start-up is in its time.
 *
 * usage: bench_kafka [--events N] [--reps N] [--json]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "esfold/esfold.h"
#include "samples/bank/account.h"

#include "benchutil.h"

#define DEFAULT_EVENTS 20000
#define DEFAULT_REPS 3
#define MIN_EVENTS 200
#define PARTITIONS 16
#define TOPICS 106 /* made at the broker's start: bench.<n>.account; one per
                      esfold append or execute run (6 kinds x at most 16
                      runs), the fold topic, one that the confirmed
                      producer and one that kcat -P write every run to */
#define STREAMS 64
#define FOLD_MAX 10000

static char brokers[256];
static pid_t broker_pid;
static int next_topic;

static int start_broker(const char *esfold)
{
    int out[2];
    char *argv[TOPICS + 6];
    char names[TOPICS][32];
    FILE *f;
    int i;
    if (pipe(out) != 0)
        return -1;
    argv[0] = "esfold";
    argv[1] = "broker";
    argv[2] = "--partitions";
    argv[3] = "16";
    for (i = 0; i < TOPICS; i++) {
        snprintf(names[i], sizeof names[i], "bench.%d.account", i);
        argv[4 + i] = names[i];
    }
    argv[4 + TOPICS] = NULL;
    if ((broker_pid = fork()) < 0)
        return -1;
    if (broker_pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execv(esfold, argv);
        _exit(127);
    }
    close(out[1]);
    f = fdopen(out[0], "r");
    if (f == NULL || fgets(brokers, sizeof brokers, f) == NULL) {
        fprintf(stderr, "bench_kafka: %s broker did not start\n", esfold);
        return -1;
    }
    fclose(f);
    brokers[strcspn(brokers, "\n")] = '\0';
    return 0;
}

static void stop_broker(void)
{
    if (broker_pid > 0) {
        kill(broker_pid, SIGTERM);
        waitpid(broker_pid, NULL, 0);
        broker_pid = 0;
    }
}

/* A fresh topic of 16 partitions: its prefix for esfold and its name. */
static int fresh_topic(char *prefix, size_t size, char *topic, size_t tsize)
{
    if (next_topic == TOPICS - 1) {
        fprintf(stderr, "bench_kafka: out of fresh topics (--reps too high)\n");
        return -1;
    }
    snprintf(prefix, size, "bench.%d.", next_topic);
    snprintf(topic, tsize, "bench.%d.account", next_topic++);
    return 0;
}

static int open_log(es_log **log, const char *prefix)
{
    char uri[512];
    snprintf(uri, sizeof uri, "kafka://%s?prefix=%s&partitions=%d", brokers,
             prefix, PARTITIONS);
    if (es_log_open(log, uri) != 0) {
        fprintf(stderr, "bench_kafka: %s\n", es_errmsg(*log));
        es_log_close(*log);
        *log = NULL;
        return -1;
    }
    return 0;
}

static int sh(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "bench_kafka: failed (%d): %s\n", rc, cmd);
    return rc;
}

/* ---- appends ----------------------------------------------------------------- */

typedef struct append_ctx {
    long long events;
    int commit;
    char input[4096]; /* kcat's input file: "key\tvalue" lines */
    double *lat_es, *lat_lim; /* seconds per commit, of the last run */
} append_ctx;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of n latencies, in microseconds (sorts them). */
static double quantile_us(double *lat, size_t n, double q)
{
    if (lat == NULL || n == 0)
        return 0;
    qsort(lat, n, sizeof *lat, cmp_double);
    return lat[(size_t)(q * (double)(n - 1) + 0.5)] * 1e6;
}

static void dr_count(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err == 0)
        ++*(long long *)m->_private;
    else
        *(long long *)m->_private = -1000000000LL;
}

/*
 * The limit of a confirmed append: a plain librdkafka idempotent producer
 * hands over one commit's records (same key, value and headers as esfold
 * writes) and waits for their delivery reports before the next.
 */
static int confirmed_limit(void *vctx, double *seconds)
{
    append_ctx *c = vctx;
    char err[512], topic[64], sid[32];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    long long delivered = 0, sent = 0, commits = 0;
    const char *value = "{\"amount\":2500}";
    double t0;
    int s = 0, rc = 0;
    snprintf(topic, sizeof topic, "bench.%d.account", TOPICS - 2);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err) ||
        rd_kafka_conf_set(conf, "linger.ms", "0", err, sizeof err)) {
        fprintf(stderr, "bench_kafka: confirmed producer: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_count);
    if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err)) == NULL) {
        fprintf(stderr, "bench_kafka: confirmed producer: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    t0 = 0;
    /* The first commit (connection, producer id) is not timed. */
    for (long long done = -c->commit; done < c->events && rc == 0 && !bu_interrupted();
         done += c->commit) {
        double t1 = bu_now();
        if (done == 0)
            t0 = t1;
        snprintf(sid, sizeof sid, "acct-%d", s);
        for (int i = 0; i < c->commit && rc == 0; i++) {
            rd_kafka_headers_t *hs = rd_kafka_headers_new(8);
            rd_kafka_header_add(hs, "es-type", -1, "Deposited", -1);
            rd_kafka_header_add(hs, "es-version", -1, "1", -1);
            rd_kafka_header_add(hs, "es-schema", -1, "1", -1);
            rd_kafka_header_add(hs, "es-id", -1, "01a20be2-09b6-74c6-992b-667aa8ed5810", -1);
            rd_kafka_header_add(hs, "es-time-us", -1, "1795494492726227", -1);
            rd_kafka_header_add(hs, "es-commit", -1, "01a20be2-09b6-74c6-992b-667aa8ed5811", -1);
            rd_kafka_header_add(hs, "es-commit-size", -1, "1", -1);
            if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                  RD_KAFKA_V_PARTITION(es_partition_for(sid, strlen(sid), PARTITIONS)),
                                  RD_KAFKA_V_KEY(sid, strlen(sid)),
                                  RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_OPAQUE(&delivered),
                                  RD_KAFKA_V_END) != 0) {
                rd_kafka_headers_destroy(hs);
                rc = 1;
            }
            sent++;
        }
        while (rc == 0 && delivered >= 0 && delivered < sent)
            rd_kafka_poll(rk, 100);
        if (delivered < 0)
            rc = 1;
        if (done >= 0 && c->lat_lim)
            c->lat_lim[commits++] = bu_now() - t1;
        s = (s + 1) % STREAMS;
    }
    *seconds = bu_now() - t0;
    if (rc)
        fprintf(stderr, "bench_kafka: confirmed producer: a delivery failed\n");
    rd_kafka_destroy(rk);
    return rc ? 1 : bu_interrupted() ? -1 : 0;
}

static int append_esfold(void *vctx, double *seconds)
{
    append_ctx *c = vctx;
    char prefix[64], topic[64], sid[32];
    es_log *log = NULL;
    es_event *evs = calloc((size_t)c->commit, sizeof *evs);
    json_t *pay = json_pack("{s:i}", "amount", 2500);
    int64_t version[STREAMS] = {0};
    long long done = 0;
    int rc = 0, s = 0;
    double t0;
    if (evs == NULL || fresh_topic(prefix, sizeof prefix, topic, sizeof topic) ||
        open_log(&log, prefix)) {
        free(evs);
        json_decref(pay);
        return 1;
    }
    for (int i = 0; i < c->commit; i++) {
        evs[i].type = "Deposited";
        evs[i].payload = pay;
    }
    t0 = bu_now();
    while (done < c->events && rc == 0 && !bu_interrupted()) {
        double t1 = bu_now();
        snprintf(sid, sizeof sid, "acct-%d", s);
        rc = es_log_append(log, NULL, "account", sid, version[s], evs,
                           (size_t)c->commit);
        if (c->lat_es)
            c->lat_es[done / c->commit] = bu_now() - t1;
        version[s] += c->commit;
        done += c->commit;
        s = (s + 1) % STREAMS;
    }
    *seconds = bu_now() - t0;
    if (rc)
        fprintf(stderr, "bench_kafka: append: %s\n", es_errmsg(log));
    es_log_close(log);
    free(evs);
    json_decref(pay);
    return rc ? 1 : bu_interrupted() ? -1 : 0;
}

static int append_limit(void *vctx, double *seconds)
{
    append_ctx *c = vctx;
    char prefix[64], topic[64], cmd[8192];
    double t0;
    int rc;
    (void)prefix;
    snprintf(topic, sizeof topic, "bench.%d.account", TOPICS - 1);
    /* The same key, value and headers as esfold's records (header values
     * of the same lengths). */
    snprintf(cmd, sizeof cmd,
             "kcat -b %s -P -t %s -K '\t' -X partitioner=murmur2_random "
             "-H es-type=Deposited -H es-version=1 -H es-schema=1 "
             "-H es-id=01a20be2-09b6-74c6-992b-667aa8ed5810 "
             "-H es-time-us=1795494492726227 "
             "-H es-commit=01a20be2-09b6-74c6-992b-667aa8ed5811 "
             "-H es-commit-size=1 %s",
             brokers, topic, c->input);
    t0 = bu_now();
    rc = sh(cmd);
    *seconds = bu_now() - t0;
    return rc ? 1 : 0;
}

/* ---- commands ---------------------------------------------------------------- */

/* Opens STREAMS accounts (untimed: first loads), then times c->events
 * deposits round-robin over them. */
static int execute_esfold(append_ctx *c, int processor, double *seconds)
{
    char prefix[64], topic[64], sid[32];
    es_log *log = NULL;
    es_repo *repo = NULL;
    es_processor *p = NULL;
    long long done = 0;
    int rc = 0;
    double t0 = 0;
    if (fresh_topic(prefix, sizeof prefix, topic, sizeof topic))
        return 1;
    if (processor) {
        char uri[512];
        snprintf(uri, sizeof uri, "kafka://%s?prefix=%s&partitions=%d&owner=1",
                 brokers, prefix, PARTITIONS);
        if (es_log_open(&log, uri) != 0) {
            fprintf(stderr, "bench_kafka: %s\n", es_errmsg(log));
            es_log_close(log);
            return 1;
        }
    } else if (open_log(&log, prefix)) {
        return 1;
    }
    if (es_repo_new(&repo, log, NULL) != 0 ||
        (processor && es_processor_new(&p, repo, &bank_account_type, NULL, 0) != 0)) {
        es_repo_free(repo);
        es_log_close(log);
        return 1;
    }
    while (done < c->events + STREAMS && rc == 0 && !bu_interrupted()) {
        bank_command cmd = {BANK_DEPOSIT, NULL, NULL, 2500};
        if (done < STREAMS) {
            cmd.kind = BANK_OPEN;
            cmd.owner = "Ada";
        } else if (done == STREAMS) {
            t0 = bu_now();
        }
        snprintf(sid, sizeof sid, "acct-%d", (int)(done % STREAMS));
        rc = processor ? es_processor_execute(p, NULL, sid, bank_decide, &cmd,
                                              NULL, NULL)
                       : es_repo_execute(repo, NULL, &bank_account_type, sid,
                                         bank_decide, &cmd, NULL, NULL);
        done++;
    }
    *seconds = bu_now() - t0;
    if (rc)
        fprintf(stderr, "bench_kafka: execute: %s\n",
                processor ? es_errmsg(p) : es_errmsg(repo));
    es_processor_free(p);
    es_repo_free(repo);
    es_log_close(log);
    return rc ? 1 : bu_interrupted() ? -1 : 0;
}

static int processor_esfold(void *vctx, double *seconds)
{
    return execute_esfold(vctx, 1, seconds);
}

static int repo_esfold(void *vctx, double *seconds)
{
    return execute_esfold(vctx, 0, seconds);
}

/* ---- reads ------------------------------------------------------------------- */

typedef struct read_ctx {
    es_log *log;
    es_repo *repo;
    const char *topic;
    int32_t partition; /* -1: the whole topic */
    long long events;
} read_ctx;

static int fold_esfold(void *vctx, double *seconds)
{
    read_ctx *c = vctx;
    es_aggregate *agg = NULL;
    double t0 = bu_now();
    int rc = es_repo_load(c->repo, &agg, &bank_account_type, "acct-fold", ES_RANGE_ALL);
    *seconds = bu_now() - t0;
    if (rc || es_aggregate_version(agg) != c->events) {
        fprintf(stderr, "bench_kafka: fold: %s (version %lld)\n",
                es_errmsg(c->repo), (long long)es_aggregate_version(agg));
        rc = 1;
    }
    es_aggregate_free(agg);
    return rc;
}

static int count_cb(const es_event *ev, void *user_data)
{
    (void)ev;
    ++*(long long *)user_data;
    return 0;
}

static int replay_esfold(void *vctx, double *seconds)
{
    read_ctx *c = vctx;
    es_log *log = NULL;
    long long n = 0;
    double t0;
    int rc = 0;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(c->topic) - 7), c->topic);
    if (open_log(&log, prefix))
        return 1;
    t0 = bu_now();
    for (int32_t p = 0; p < PARTITIONS && rc == 0; p++)
        rc = es_log_read_partition(log, NULL, "account", p, 0, 0, count_cb, &n);
    *seconds = bu_now() - t0;
    if (rc || n != c->events) {
        fprintf(stderr, "bench_kafka: replay: %s (%lld events)\n", es_errmsg(log), n);
        rc = 1;
    }
    es_log_close(log);
    return rc;
}

static int read_limit(void *vctx, double *seconds)
{
    read_ctx *c = vctx;
    char cmd[1024], part[32] = "";
    double t0;
    int rc;
    if (c->partition >= 0)
        snprintf(part, sizeof part, "-p %d", (int)c->partition);
    snprintf(cmd, sizeof cmd,
             "kcat -b %s -C -t %s %s -o beginning -e -q -f '%%k %%h %%s\\n' > /dev/null",
             brokers, c->topic, part);
    t0 = bu_now();
    rc = sh(cmd);
    *seconds = bu_now() - t0;
    return rc ? 1 : 0;
}

/* ---- main -------------------------------------------------------------------- */

static int write_input(const char *path, long long n)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    for (long long i = 0; i < n; i++)
        fprintf(f, "acct-%lld\t{\"amount\":2500}\n", i % STREAMS);
    return fclose(f);
}

static int measure_execute(bu_report *rep, const bu_options *o, const char *dir,
                           int processor, long long events)
{
    append_ctx c;
    bu_samples es, lim;
    char name[64];
    int rc;
    memset(&c, 0, sizeof c);
    c.events = events;
    c.commit = 1;
    snprintf(c.input, sizeof c.input, "%s/records.txt", dir);
    if (write_input(c.input, c.events) != 0)
        return 1;
    if ((rc = bu_measure_pair(processor ? "processor" : "execute", o->reps,
                              processor ? processor_esfold : repo_esfold, &c,
                              append_limit, &c, &es, &lim)) != 0)
        return rc;
    snprintf(name, sizeof name, "%s %lld deposits",
             processor ? "processor" : "repo execute", c.events);
    bu_report_row(rep, processor ? "processor" : "execute", name,
                  "kcat -P, same number of records, async", &es, &lim,
                  "commands_per_s", "cmd/s", (double)c.events);
    return 0;
}

static int measure_append(bu_report *rep, const bu_options *o, const char *dir,
                          int commit, long long events)
{
    append_ctx c;
    bu_samples es, lim;
    char key[32], name[64], what[32];
    bu_row *row;
    int rc;
    memset(&c, 0, sizeof c);
    c.events = events - events % commit;
    c.commit = commit;
    snprintf(c.input, sizeof c.input, "%s/records.txt", dir);
    if (write_input(c.input, c.events) != 0)
        return 1;
    snprintf(what, sizeof what, "append %d", commit);
    if ((rc = bu_measure_pair(what, o->reps, append_esfold, &c, append_limit, &c,
                              &es, &lim)) != 0)
        return rc;
    snprintf(key, sizeof key, "append_%d", commit);
    snprintf(name, sizeof name, "append %lld ev, commits of %d", c.events, commit);
    row = bu_report_row(rep, key, name, "kcat -P, same records, async", &es, &lim,
                        "events_per_s", "ev/s", (double)c.events);
    if (row && commit > 1)
        bu_row_metric(row, "commits_per_s", "commit/s", (double)c.events / commit);

    /* Beside a synchronous, confirmed produce of the same commits. */
    {
        size_t ncommits = (size_t)(c.events / commit);
        char label[64], fkey[48], desc[96];
        c.lat_es = calloc(ncommits, sizeof *c.lat_es);
        c.lat_lim = calloc(ncommits, sizeof *c.lat_lim);
        if (c.lat_es == NULL || c.lat_lim == NULL ||
            (rc = bu_measure_pair(what, o->reps, append_esfold, &c, confirmed_limit,
                                  &c, &es, &lim)) != 0) {
            free(c.lat_es);
            free(c.lat_lim);
            return rc ? rc : 1;
        }
        snprintf(key, sizeof key, "append_%d_confirmed", commit);
        snprintf(desc, sizeof desc, "librdkafka idempotent produce of %d, "
                 "confirmed, then the next", commit);
        row = bu_report_row(rep, key, name, desc, &es, &lim, "events_per_s",
                            "ev/s", (double)c.events);
        if (row && commit > 1)
            bu_row_metric(row, "commits_per_s", "commit/s", (double)c.events / commit);
        for (int side = 0; side < 2; side++) {
            double *lat = side ? c.lat_lim : c.lat_es;
            const char *who = side ? "confirmed produce" : "esfold append";
            snprintf(fkey, sizeof fkey, "append_%d_%s_p50_us", commit,
                     side ? "confirmed" : "esfold");
            snprintf(label, sizeof label, "commit of %d, %s: p50", commit, who);
            bu_report_fact(rep, fkey, label, quantile_us(lat, ncommits, 0.5), "us", 0);
            snprintf(fkey, sizeof fkey, "append_%d_%s_p99_us", commit,
                     side ? "confirmed" : "esfold");
            snprintf(label, sizeof label, "commit of %d, %s: p99", commit, who);
            bu_report_fact(rep, fkey, label, quantile_us(lat, ncommits, 0.99), "us", 0);
        }
        free(c.lat_es);
        free(c.lat_lim);
    }
    return 0;
}

int main(int argc, char **argv)
{
    bu_options o = {DEFAULT_EVENTS, DEFAULT_REPS, 0};
    char dir[4096] = "", esfold[4096], self[4096], prefix[64], topic[64];
    bu_report rep;
    bu_samples es, lim;
    read_ctx rc_fold, rc_all;
    es_log *log = NULL;
    es_repo *repo = NULL;
    long long fold_n, n1;
    ssize_t len;
    int rc = 1;

    if ((rc = bu_options_parse(&o, argc, argv, MIN_EVENTS,
                               "  commits of 1 append events/10 events per run; "
                               "the fold stream has at most 10000\n")) != 0)
        return rc == 1 ? 0 : 2;
    bu_signals_install();
    rc = 1;
    if ((len = readlink("/proc/self/exe", self, sizeof self - 1)) <= 0)
        return 1;
    self[len] = '\0';
    snprintf(esfold, sizeof esfold, "%.*s/../esfold",
             (int)(strrchr(self, '/') - self), self);
    if (bu_tmpdir_make(dir, sizeof dir, "kafka") != 0 || start_broker(esfold) != 0)
        goto done;
    bu_report_init(&rep, "kafka", "librdkafka mock", brokers);
    {
        char b[64];
        snprintf(b, sizeof b, "librdkafka %s mock cluster", rd_kafka_version_str());
        snprintf(rep.backend, sizeof rep.backend, "%.31s", b);
    }
    bu_report_param(&rep, "events", o.events);
    bu_report_param(&rep, "reps", o.reps);
    bu_report_param(&rep, "partitions", PARTITIONS);

    n1 = o.events / 10;
    if ((rc = measure_append(&rep, &o, dir, 1, n1)) != 0 ||
        (rc = measure_append(&rep, &o, dir, 100, o.events)) != 0 ||
        (rc = measure_execute(&rep, &o, dir, 1, n1)) != 0 ||
        (rc = measure_execute(&rep, &o, dir, 0, n1 < 500 ? n1 : 500)) != 0)
        goto done;
    rc = 1;

    /* One topic with the fold stream (alone in its partition) and
     * o.events events over 64 more streams. */
    if (fresh_topic(prefix, sizeof prefix, topic, sizeof topic) || open_log(&log, prefix) ||
        es_repo_new(&repo, log, NULL) != 0)
        goto done;
    fold_n = o.events < FOLD_MAX ? o.events : FOLD_MAX;
    {
        json_t *open = json_pack("{s:s,s:s}", "owner", "Ada", "currency", "EUR");
        json_t *pay = json_pack("{s:i}", "amount", 2500);
        es_event evs[100];
        long long done = 0, other = 0;
        int64_t v[STREAMS] = {0};
        char sid[32];
        memset(evs, 0, sizeof evs);
        for (int i = 0; i < 100; i++)
            evs[i] = (es_event){.type = "Deposited", .payload = pay};
        evs[0].type = "AccountOpened";
        evs[0].payload = open;
        while (done < fold_n) {
            size_t k = fold_n - done < 100 ? (size_t)(fold_n - done) : 100;
            if (es_log_append(log, NULL, "account", "acct-fold", done, evs, k) != 0)
                break;
            evs[0].type = "Deposited";
            evs[0].payload = pay;
            done += (long long)k;
        }
        for (int s = 0; done == fold_n && other < o.events - fold_n; s = (s + 1) % STREAMS) {
            size_t k = 100;
            if (other + 100 > o.events - fold_n)
                k = (size_t)(o.events - fold_n - other);
            snprintf(sid, sizeof sid, "acct-%d", s);
            if (es_partition_for(sid, strlen(sid), PARTITIONS) ==
                es_partition_for("acct-fold", 9, PARTITIONS))
                continue; /* keep the fold stream alone in its partition */
            if (es_log_append(log, NULL, "account", sid, v[s], evs, k) != 0)
                break;
            v[s] += (int64_t)k;
            other += (long long)k;
        }
        json_decref(open);
        json_decref(pay);
        if (done != fold_n || other != o.events - fold_n) {
            fprintf(stderr, "bench_kafka: loading: %s\n", es_errmsg(log));
            goto done;
        }
    }
    rc_fold = (read_ctx){log, repo, topic,
                         es_partition_for("acct-fold", 9, PARTITIONS), fold_n};
    if (bu_measure_pair("fold", o.reps, fold_esfold, &rc_fold, read_limit, &rc_fold,
                        &es, &lim) != 0)
        goto done;
    {
        char name[64];
        snprintf(name, sizeof name, "fold 1 stream x %lld events", fold_n);
        bu_report_row(&rep, "fold", name, "kcat -C its partition", &es, &lim,
                      "events_per_s", "ev/s", (double)fold_n);
    }
    rc_all = (read_ctx){log, repo, topic, -1, o.events};
    if (bu_measure_pair("replay", o.reps, replay_esfold, &rc_all, read_limit, &rc_all,
                        &es, &lim) != 0)
        goto done;
    {
        char name[64];
        snprintf(name, sizeof name, "replay topic, %lld events", o.events);
        bu_report_row(&rep, "replay", name, "kcat -C the topic", &es, &lim,
                      "events_per_s", "ev/s", (double)o.events);
    }
    bu_report_fact(&rep, "partitions", "partitions per topic (mock cap ~5 MiB each)",
                   PARTITIONS, "", 0);
    rc = 0;
done:
    es_repo_free(repo);
    es_log_close(log);
    stop_broker();
    bu_tmpdir_remove(dir);
    if (rc == 0) {
        if (o.json)
            rc = bu_report_print_json(&rep) != 0;
        else
            bu_report_print(&rep);
        if (!o.json)
            printf("Data spread over %d partitions per topic to stay under the mock "
                   "broker's ~5 MiB / 100000 batches per partition; kcat's times "
                   "include its process start.\n",
                   PARTITIONS);
    }
    bu_reraise();
    return rc;
}
