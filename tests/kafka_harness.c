/*
 * tests/kafka_harness.c - see kafka_harness.h.
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kafka_harness.h"
#include "esfold/log.h"
#include "esfold/partition.h"

static char brokers[512];
static char esfold[PATH_MAX];
static pid_t broker_pid, owner_pid;
static int is_mock;

static void stop_broker(void)
{
    int status;
    /* Forked test children inherit this handler: only the starter stops it. */
    if (broker_pid <= 0 || getpid() != owner_pid)
        return;
    kill(broker_pid, SIGTERM);
    waitpid(broker_pid, &status, 0);
    broker_pid = 0;
}

const char *es_test_esfold_path(void)
{
    if (esfold[0] == '\0') {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            abort();
        self[n] = '\0';
        /* <build>/tests/test_x -> <build>/esfold */
        snprintf(esfold, sizeof esfold, "%s/../esfold", dirname(self));
    }
    return esfold;
}

const char *es_test_kafka_brokers(void)
{
    const char *env = getenv("ESFOLD_KAFKA_BROKERS");
    int out[2];
    struct pollfd pfd;
    size_t len = 0;

    if (brokers[0])
        return brokers;
    if (env && *env) {
        snprintf(brokers, sizeof brokers, "%s", env);
        return brokers;
    }
    if (pipe(out) != 0)
        abort();
    owner_pid = getpid();
    broker_pid = fork();
    if (broker_pid < 0)
        abort();
    if (broker_pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the test */
        dup2(out[1], 1);
        if (devnull >= 0 && getenv("ESFOLD_TEST_BROKER_LOG") == NULL)
            dup2(devnull, 2);
        close(out[0]);
        execl(es_test_esfold_path(), "esfold", "broker", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    atexit(stop_broker);
    pfd.fd = out[0];
    pfd.events = POLLIN;
    while (len < sizeof brokers - 1 && !memchr(brokers, '\n', len)) {
        ssize_t n;
        if (poll(&pfd, 1, 10000) <= 0)
            break;
        if ((n = read(out[0], brokers + len, sizeof brokers - 1 - len)) <= 0)
            break;
        len += (size_t)n;
    }
    close(out[0]);
    if (!memchr(brokers, '\n', len)) {
        fprintf(stderr, "kafka harness: %s broker did not print its address\n",
                es_test_esfold_path());
        abort();
    }
    *strchr(brokers, '\n') = '\0';
    is_mock = 1;
    return brokers;
}

int es_test_kafka_is_mock(void)
{
    es_test_kafka_brokers();
    return is_mock;
}

const char *es_test_kafka_uri(const char *extra)
{
    static unsigned n;
    static char *keep[1024];
    static size_t nkeep;
    const char *b = es_test_kafka_brokers();
    char *u = malloc(strlen(b) + (extra ? strlen(extra) : 0) + 96);
    if (u == NULL || nkeep == sizeof keep / sizeof *keep)
        abort();
    sprintf(u, "kafka://%s?prefix=k%ld.%u.%s%s", b, (long)getpid(), n++,
            extra ? "&" : "", extra ? extra : "");
    keep[nkeep++] = u; /* freed by the process exit */
    return u;
}

rd_kafka_t *es_test_kafka_producer(const char *txn_id)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_error_t *e;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", es_test_kafka_brokers(), err,
                          sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "linger.ms", "0", err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK ||
        (txn_id && rd_kafka_conf_set(conf, "transactional.id", txn_id, err,
                                     sizeof err) != RD_KAFKA_CONF_OK)) {
        fprintf(stderr, "kafka harness: producer settings: %s\n", err);
        abort();
    }
    if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err)) == NULL) {
        fprintf(stderr, "kafka harness: making a producer: %s\n", err);
        abort();
    }
    if (txn_id && (e = rd_kafka_init_transactions(rk, 10000)) != NULL) {
        fprintf(stderr, "kafka harness: init_transactions: %s\n",
                rd_kafka_error_string(e));
        abort();
    }
    return rk;
}

void es_test_kafka_sendv(rd_kafka_t *rk, const char *topic, int32_t p,
                         const char *key, const char *value, size_t value_len,
                         va_list headers)
{
    rd_kafka_headers_t *hs = rd_kafka_headers_new(12);
    const char *name;
    rd_kafka_resp_err_t err;
    while ((name = va_arg(headers, const char *)) != NULL)
        rd_kafka_header_add(hs, name, -1, va_arg(headers, const char *), -1);
    err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
                            RD_KAFKA_V_KEY(key, strlen(key)),
                            RD_KAFKA_V_VALUE((void *)value, value ? value_len : 0),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_END);
    if (err) {
        fprintf(stderr, "kafka harness: producing to %s: %s\n", topic,
                rd_kafka_err2str(err));
        abort();
    }
}

void es_test_kafka_send(rd_kafka_t *rk, const char *topic, int32_t p,
                        const char *key, const char *value, size_t value_len, ...)
{
    va_list ap;
    va_start(ap, value_len);
    es_test_kafka_sendv(rk, topic, p, key, value, value_len, ap);
    va_end(ap);
}

void es_test_kafka_foreign_records(struct es_log *log, const char *log_uri,
                                 const char *aggregate_type, const char *id_fmt,
                                 int first, int n, int streams, int64_t version,
                                 const char *event_type, const char *payload)
{
    const char *prefix = strstr(log_uri, "prefix=");
    char topic[256], ver[24], id[128], eid[64], cid[64];
    int32_t count = 0;
    rd_kafka_t *rk;

    if (prefix == NULL || es_log_partition_count(log, &count, aggregate_type) != 0) {
        fprintf(stderr, "kafka harness: no topic prefix or partitions in %s\n",
                log_uri);
        abort();
    }
    prefix += 7;
    snprintf(topic, sizeof topic, "%.*s%s", (int)strcspn(prefix, "&"), prefix,
             aggregate_type);
    snprintf(ver, sizeof ver, "%lld", (long long)version);
    rk = es_test_kafka_producer(NULL);
    for (int i = first; i < first + n; i++) {
        snprintf(id, sizeof id, id_fmt, i % streams);
        snprintf(eid, sizeof eid, "zombie-%d-%d", (int)getpid(), i);
        snprintf(cid, sizeof cid, "zombie-c-%d-%d", (int)getpid(), i);
        es_test_kafka_send(rk, topic, es_partition_for(id, strlen(id), count), id,
                           payload, strlen(payload), "es-type", event_type,
                           "es-version", ver, "es-id", eid, "es-commit", cid,
                           "es-commit-size", "1", (const char *)NULL);
    }
    if (rd_kafka_flush(rk, 10000) != 0) {
        fprintf(stderr, "kafka harness: the stale records were not flushed\n");
        abort();
    }
    rd_kafka_destroy(rk);
}
