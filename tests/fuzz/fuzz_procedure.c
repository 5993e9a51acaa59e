/* fuzz_procedure.c - procedure definition bytes -> lt_procset_add_text, and what was
 * accepted driven through lt_proc_advance with events made of the same bytes. Any input: a
 * procedure or a refusal with a reason, never a crash, a hang or a leak. */
#include "procedure.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lt_procset *ps = NULL;
    if (lt_procset_new(NULL, &ps) != LT_OK)
        return 0;
    lt_why why = {{0}};
    lt_err err = lt_procset_add_text(ps, "fuzz/procedure.yaml", (const char *)data, size, &why);
    if (err != LT_OK) {
        if (lt_procset_count(ps) != 0 || why.msg[0] == '\0' ||
            strnlen(why.msg, LT_WHY_MAX) == LT_WHY_MAX)
            __builtin_trap();
        lt_procset_destroy(&ps);
        return 0;
    }
    const lt_proc *p = lt_procset_at(ps, 0);
    /* walk a dossier: each input byte picks a status and one of the steps' agency patterns
     * (used as the agency itself) */
    lt_dossier_state st, next;
    bool have = false;
    int64_t t = 1767225600000; /* 2026-01-01 */
    for (size_t i = 0; i < size && i < 64; i++) {
        const lt_proc_step *s = &p->steps[data[i] % p->nsteps];
        lt_dossier_event ev = {.dossier_code = "fuzz",
                               .procedure_code = p->code,
                               .agency = s->agencies[data[i] % s->nagencies],
                               .status = (unsigned)(data[i] % 12),
                               .at_ms = t};
        t += 3600000LL * (data[i] % 50);
        if (lt_proc_advance(ps, p, have ? &st : NULL, &ev, &next, &why) == LT_OK) {
            st = next;
            have = true;
        } else if (why.msg[0] == '\0') {
            __builtin_trap();
        }
    }
    lt_procset_destroy(&ps);
    return 0;
}
