/*
 * harness_valgrind.c - valgrind options and logs for integration tests (harness_valgrind.h).
 */
#include "harness_valgrind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LT_TEST_SRCDIR
#error "LT_TEST_SRCDIR must be defined by the build"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define VG_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VG_UNDER_ASAN 1
#endif
#endif
#ifndef VG_UNDER_ASAN
#define VG_UNDER_ASAN 0
#endif

#define VALGRIND "/usr/bin/valgrind"

const char *it_vg_skip_reason(const char *test)
{
    static char msg[512];
    if (VG_UNDER_ASAN)
        snprintf(msg, sizeof msg,
                 "%s: skipped: this is an AddressSanitizer build (LT_SANITIZE); valgrind "
                 "cannot run ASan binaries. Run it in a build without -DLT_SANITIZE=ON.",
                 test);
    else if (access(VALGRIND, X_OK) != 0)
        snprintf(msg, sizeof msg, "%s: skipped: " VALGRIND " is not installed "
                 "(scripts/install-deps).", test);
    else
        return NULL;
    return msg;
}

void it_vg_wrap(it_env *e)
{
    static char log_opt[IT_PATH_MAX + 32];
    static const char *argv[16];
    snprintf(log_opt, sizeof log_opt, "--log-file=%s/vg-%%p.log", e->dir);
    const char *const a[] = {VALGRIND,
                             "--quiet",
                             "--leak-check=full",
                             "--show-leak-kinds=definite,indirect",
                             "--errors-for-leak-kinds=definite,indirect",
                             "--error-exitcode=99",
                             "--track-fds=no",
                             "--num-callers=40",
                             "--suppressions=" LT_TEST_SRCDIR "/tests/integration/valgrind.supp",
                             log_opt,
                             NULL};
    memcpy(argv, a, sizeof a);
    e->wrap = argv;
}

void it_vg_print_log(const it_env *e, pid_t pid)
{
    char rel[64];
    snprintf(rel, sizeof rel, "vg-%d.log", (int)pid);
    char *log = it_read_file(e, rel, NULL);
    if (log == NULL) {
        fprintf(stderr, "valgrind: no log %s\n", rel);
        return;
    }
    size_t len = strlen(log);
    fprintf(stderr, "---- valgrind log of pid %d (tail) ----\n%s\n--------\n", (int)pid,
            len > 12000 ? log + len - 12000 : log);
    free(log);
}
