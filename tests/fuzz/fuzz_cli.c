/*
 * tests/fuzz/fuzz_cli.c - the command line (cli/) on arbitrary arguments.
 *
 * The input is argv, its words separated by NUL bytes (at most 24). The
 * target runs `bank --log sqlite::memory: WORDS...` with the bank sample's
 * account type compiled in, stdin empty, stdout and stderr discarded.
 * Words that could reach outside the process are dropped: any that names
 * a log or a store (holds "log" or "snapshots" after a dash) and the
 * broker and topics commands; so every run works on a private in-memory
 * log.
 *
 * Properties: the exit status is 0, 1 or 2; no crash, no leak.
 */
#include <string.h>

#include "esfold/esfold.h"
#include "samples/bank/account.h"
#include "fuzz.h"

static const es_aggregate_type *const types[] = { &bank_account_type, NULL };

static int dropped(const char *w)
{
    return (w[0] == '-' && (strstr(w, "log") || strstr(w, "snapshots"))) ||
           strcmp(w, "broker") == 0 || strcmp(w, "topics") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    static const es_app app = {.version = ES_APP_VERSION, .name = "bank", .types = types};
    char *copy = malloc(size + 1), *argv[32];
    FILE *in, *saved_in = stdin, *saved_out = stdout, *saved_err = stderr;
    int argc = 0, status;
    size_t i = 0;

    if (copy == NULL)
        fuzz_fail("out of memory");
    memcpy(copy, data, size);
    copy[size] = '\0';
    argv[argc++] = "bank";
    argv[argc++] = "--log";
    argv[argc++] = "sqlite::memory:";
    while (i <= size && argc < 27) {
        char *w = copy + i;
        i += strlen(w) + 1;
        if (!dropped(w))
            argv[argc++] = w;
    }
    argv[argc] = NULL;
    if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
        fuzz_fail("cannot open /dev/null");
    if ((in = fopen("/dev/null", "r")) == NULL)
        fuzz_fail("cannot open /dev/null");
    unsetenv("ESFOLD_SNAPSHOTS");
    stdin = in;
    stdout = devnull;
    stderr = devnull;
    status = es_cli_main(argc, argv, &app);
    stdin = saved_in;
    stdout = saved_out;
    stderr = saved_err;
    fclose(in);
    if (status < 0 || status > 2)
        fuzz_fail("exit status %d", status);
    free(copy);
    return 0;
}
