/* fuzz_calendar.c - holiday calendar bytes -> lt_calendar_parse, then deadlines over what
 * was accepted (bounded walks: every allowance returns, late or INT64_MAX, never hangs). */
#include "procedure.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lt_calendar *c = NULL;
    lt_why why = {{0}};
    lt_err err = lt_calendar_parse("fuzz/calendar.yaml", (const char *)data, size, &c, &why);
    if (err != LT_OK) {
        if (c != NULL || why.msg[0] == '\0' || strnlen(why.msg, LT_WHY_MAX) == LT_WHY_MAX)
            __builtin_trap();
        return 0;
    }
    int64_t start = 1767225600000; /* 2026-01-01 */
    for (uint32_t n = 0; n < 40; n += 7) {
        lt_allowance d = {.days = n}, h = {.hours = n};
        int64_t dd = lt_calendar_deadline(c, start, d);
        int64_t dh = lt_calendar_deadline(c, start, h);
        if ((n > 0 && dd < start) || dh < start)
            __builtin_trap();
        if (dd != INT64_MAX && lt_calendar_working_days(c, start, dd) < n)
            __builtin_trap(); /* a deadline leaves the whole allowance */
    }
    lt_calendar_destroy(&c);
    return 0;
}
