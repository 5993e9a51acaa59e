/* fuzz_jsonl.c - the JSON-lines reader on arbitrary bytes. */
#include "fuzz_reader_common.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lt_reader_opts o = {.format = LT_FORMAT_JSONL, .charset = LT_CHARSET_AUTO};
    fuzz_run(&o, data, size);
    o.charset = LT_CHARSET_UTF8;
    fuzz_run(&o, data, size);
    return 0;
}
