/*
 * tests/fuzz/fuzz_append.c - the line parser of `esfold append`
 * (cli/append.c) on arbitrary standard input.
 *
 * The parser is static in cli/append.c, so the target goes through the
 * public entry point: es_cli_main runs `bank --log sqlite::memory: append
 * account acct-1 --expect any` with the bank sample's account type
 * compiled in (so that the fold check runs too), stdin reading the input,
 * stdout captured and stderr discarded. Each run opens its own in-memory
 * log, so runs do not see each other's events.
 *
 * Properties: the exit status is 0 (appended, and stdout says so) or 1
 * (nothing appended, nothing on stdout); never a usage error, a crash or a
 * leak.
 */
#include <string.h>

#include "esfold/esfold.h"
#include "samples/bank/account.h"
#include "fuzz.h"

static const es_aggregate_type *const types[] = { &bank_account_type, NULL };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    static const es_app app = {.version = ES_APP_VERSION, .name = "bank", .types = types};
    char *argv[] = { "bank", "--log", "sqlite::memory:", "append", "account",
                     "acct-1", "--expect", "any", NULL };
    FILE *saved_in = stdin, *saved_out = stdout, *saved_err = stderr;
    FILE *in, *out;
    char *printed = NULL;
    size_t printed_len = 0;
    int status;

    if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
        fuzz_fail("cannot open /dev/null");
    /* fmemopen wants a non-empty buffer. */
    in = size ? fmemopen((void *)data, size, "r") : fopen("/dev/null", "r");
    out = open_memstream(&printed, &printed_len);
    if (in == NULL || out == NULL)
        fuzz_fail("cannot make the standard streams");

    /* glibc's standard streams are plain variables: point them at ours
     * for the call. The sanitizers write to fd 2, so reports still show. */
    stdin = in;
    stdout = out;
    stderr = devnull;
    status = es_cli_main((int)(sizeof argv / sizeof *argv) - 1, argv, &app);
    stdin = saved_in;
    stdout = saved_out;
    stderr = saved_err;

    fclose(in);
    fclose(out);
    if (status == 0 && strncmp(printed, "appended ", 9) != 0)
        fuzz_fail("append succeeded and printed '%s'", printed);
    if (status == 1 && printed_len != 0)
        fuzz_fail("append failed and printed '%s' on stdout", printed);
    if (status != 0 && status != 1)
        fuzz_fail("append exited with %d", status);
    free(printed);
    return 0;
}
