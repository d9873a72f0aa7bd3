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
