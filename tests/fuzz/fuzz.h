/*
 * tests/fuzz/fuzz.h - what the fuzz targets and the replay driver share.
 *
 * Each target (tests/fuzz/fuzz_*.c) is one LLVMFuzzerTestOneInput. Built
 * with clang -fsanitize=fuzzer (`make fuzz`) libFuzzer supplies main() and
 * mutates inputs; built with tests/fuzz/driver.c (`make test`) the same
 * target replays the files of its seed corpus, tests/fuzz/corpus/<target>/.
 *
 * A target returns 0 for every input. An input that breaks a property the
 * target checks (a round trip that loses a field) calls fuzz_fail(), which
 * prints what differed and aborts, so that libFuzzer saves the input and
 * the replay counts it as failed.
 */
#ifndef ESFOLD_TESTS_FUZZ_H
#define ESFOLD_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints "fuzz: <what>" on stderr and aborts. */
#define fuzz_fail(...) \
    do { \
        fprintf(stderr, "fuzz: " __VA_ARGS__); \
        fputc('\n', stderr); \
        abort(); \
    } while (0)

#endif
