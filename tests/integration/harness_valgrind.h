/*
 * harness_valgrind.h - running lienthongd and lienthong under valgrind memcheck in an
 * integration test (it_valgrind, it_valgrind_links): the options every such test uses (full
 * leak check, definite and indirect leaks are errors, exit status IT_VG_STATUS on any error,
 * tests/integration/valgrind.supp), one log per process in the test's directory, and when
 * the test cannot run at all (no valgrind, an AddressSanitizer build).
 */
#ifndef LT_TESTS_INTEGRATION_HARNESS_VALGRIND_H
#define LT_TESTS_INTEGRATION_HARNESS_VALGRIND_H

#include "harness.h"

#define IT_VG_STATUS 99 /* valgrind's exit status when it found an error */

/* Why this build cannot run a valgrind test, or NULL when it can. test names the test in the
 * message. */
const char *it_vg_skip_reason(const char *test);

/* Point e->wrap at valgrind with the common options, its log in e's directory as
 * vg-<pid>.log. The argv lives in static storage: one valgrind'ed environment set-up per
 * process (nodes made from it after this share it). */
void it_vg_wrap(it_env *e);

/* Print the tail of valgrind's log of process pid (in e's directory), if any. */
void it_vg_print_log(const it_env *e, pid_t pid);

#endif
