/*
 * tests/fuzz/driver.c - runs a fuzz target without libFuzzer, so that any
 * C compiler can replay a corpus (`make test` does, with gcc).
 *
 *     fuzz_codec [FILE | DIR]...
 *
 * Runs the target on every FILE, and on every file in every DIR (in name
 * order, dot files skipped); with no arguments on the target's seed
 * corpus, FUZZ_CORPUS_DIR/<name of the program>, the directory compiled in. Each input runs in a child process,
 * so that one that crashes or aborts is reported by name and the others
 * still run. Ends with the line "fuzz replay: N passed, N failed" and
 * exits 1 when an input failed or there was none.
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_CORPUS_DIR
#error "FUZZ_CORPUS_DIR: where the seed corpora are (-DFUZZ_CORPUS_DIR=...)"
#endif

static int passed, failed;
static const char *prog = "fuzz";

/* Reads the whole file; NULL (with a message) when it cannot. */
static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t cap = 0, n = 0, got;

    if (f == NULL) {
        fprintf(stderr, "fuzz replay: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    do {
        if (n == cap) {
            uint8_t *bigger = realloc(data, cap = cap ? cap * 2 : 4096);
            if (bigger == NULL) {
                free(data);
                fclose(f);
                fprintf(stderr, "fuzz replay: %s: out of memory\n", path);
                return NULL;
            }
            data = bigger;
        }
        got = fread(data + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    if (ferror(f)) {
        fprintf(stderr, "fuzz replay: %s: read error\n", path);
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = n;
    return data;
}

static void run_file(const char *path)
{
    uint8_t *data;
    size_t size = 0;
    pid_t pid;
    int status;

    if ((data = slurp(path, &size)) == NULL) {
        failed++;
        return;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fuzz replay: fork: %s\n", strerror(errno));
        failed++;
    } else if (pid == 0) {
        /* A heap copy of the input's exact size, so that ASan and valgrind
         * see a read past its end, as under libFuzzer. */
        uint8_t *copy = malloc(size ? size : 1);
        if (copy == NULL)
            fuzz_fail("out of memory");
        memcpy(copy, data, size);
        free(data);
        LLVMFuzzerTestOneInput(copy, size);
        free(copy);
        exit(0);
    } else if (waitpid(pid, &status, 0) < 0) {
        fprintf(stderr, "fuzz replay: waitpid: %s\n", strerror(errno));
        failed++;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        passed++;
    } else {
        if (WIFSIGNALED(status))
            fprintf(stderr, "fuzz replay: FAILED %s (signal %d)\n", path,
                    WTERMSIG(status));
        else
            fprintf(stderr, "fuzz replay: FAILED %s (exit status %d)\n", path,
                    WEXITSTATUS(status));
        failed++;
    }
    free(data);
}

static int visible(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static void run_path(const char *path)
{
    struct dirent **names;
    struct stat st;
    int n;

    printf("fuzz replay: %s on %s\n", prog, path);
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz replay: %s: %s\n", path, strerror(errno));
        failed++;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    if ((n = scandir(path, &names, visible, alphasort)) < 0) {
        fprintf(stderr, "fuzz replay: %s: %s\n", path, strerror(errno));
        failed++;
        return;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
        char *file = malloc(len);
        if (file != NULL) {
            snprintf(file, len, "%s/%s", path, names[i]->d_name);
            if (stat(file, &st) == 0 && S_ISREG(st.st_mode))
                run_file(file);
            free(file);
        } else {
            failed++;
        }
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    if (argc > 0 && argv[0] != NULL)
        prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (argc < 2) {
        size_t len = strlen(FUZZ_CORPUS_DIR) + strlen(prog) + 2;
        char *dir = malloc(len);
        if (dir == NULL)
            fuzz_fail("out of memory");
        snprintf(dir, len, "%s/%s", FUZZ_CORPUS_DIR, prog);
        run_path(dir);
        free(dir);
    }
    for (int i = 1; i < argc; i++)
        run_path(argv[i]);
    if (passed + failed == 0) {
        fprintf(stderr, "fuzz replay: no inputs (an empty corpus tests "
                "nothing)\n");
        failed++;
    }
    printf("fuzz replay: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
