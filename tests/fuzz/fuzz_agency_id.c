/*
 * fuzz_agency_id.c - libFuzzer target: lt_agency_parse and lt_agency_code_normalize on
 * arbitrary bytes. Invariants checked: a parsed id is in normal form, parsing its normal form
 * gives itself (idempotent), its parts fit their bounds, and a refusal has a reason.
 */
#include "agency.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lt_agency_id id, again;
    lt_why why;
    why.msg[0] = '\0';
    if (lt_agency_parse((const char *)data, size, &id, &why) == LT_OK) {
        if (!lt_agency_is_normalized(id.id))
            abort();
        if (lt_agency_parse(id.id, strlen(id.id), &again, NULL) != LT_OK ||
            strcmp(again.id, id.id) != 0 || again.form != id.form)
            abort();
        if (strlen(id.code) > LT_AGENCY_CODE_MAX || strlen(id.subsystem) == 0 ||
            strlen(id.subsystem) > LT_AGENCY_SUBSYSTEM_MAX || strlen(id.level1) != 3)
            abort();
    } else if (why.msg[0] == '\0') {
        abort();
    }
    char code[LT_AGENCY_CODE_MAX + 1];
    lt_agency_form f;
    if (lt_agency_code_normalize((const char *)data, size, code, &f, NULL) == LT_OK) {
        char again_code[LT_AGENCY_CODE_MAX + 1];
        lt_agency_form f2;
        if (lt_agency_code_normalize(code, strlen(code), again_code, &f2, NULL) != LT_OK ||
            strcmp(code, again_code) != 0 || f2 != f)
            abort();
    }
    return 0;
}
