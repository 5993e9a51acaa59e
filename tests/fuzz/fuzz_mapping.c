/* fuzz_mapping.c - mapping files on arbitrary bytes: lt_mapping_parse must accept or refuse
 * (with a reason) without crashing or leaking; a mapping that loads is then run over a small
 * fixed input of its format, so every accepted transform chain is exercised too. */
#include "mapping.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_rec(void *ctx, const lt_mapped *r)
{
    (void)ctx;
    if (r->topic == NULL || r->payload == NULL || r->key == NULL)
        __builtin_trap();
    return 0;
}

static void on_rej(void *ctx, const lt_map_reject *j)
{
    (void)ctx;
    if (j->reason == NULL || j->field == NULL || j->value == NULL)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    lt_mapping *m = NULL;
    lt_why why;
    if (lt_mapping_parse("fuzz.yaml", (const char *)data, size, &m, &why) != LT_OK) {
        if (why.msg[0] == 0)
            __builtin_trap(); /* every refusal says why */
        return 0;
    }
    static const char *const inputs[] = {
        [LT_FORMAT_CSV] = "a;b;c\n1;2;3\n\"x\";;\xff\n",
        [LT_FORMAT_FIXED] = "0123456789abcdefghij\nshort\n",
        [LT_FORMAT_EDXML] = "<edXML><MessageHeader><From><OrganId>000.00.00.H29</OrganId>"
                            "</From><Subject>s</Subject></MessageHeader></edXML>",
        [LT_FORMAT_JSONL] = "{\"a\":\"1\",\"b\":{\"c\":\"2\"}}\nnot json\n",
    };
    const lt_reader_opts *o = lt_mapping_reader_opts(m);
    const char *in = inputs[o->format];
    lt_mapping_sink sink = {on_rec, on_rej, NULL, true};
    lt_mapping_run(m, "VN:GOV:000.00.00.H29:vanphong", "fuzz", (const uint8_t *)in, strlen(in),
                   &sink, NULL, &why);
    lt_mapping_destroy(&m);
    return 0;
}
