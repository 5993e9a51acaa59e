/* fuzz_edxml.c - the edXML reader on arbitrary bytes (XML as declared, and as TCVN3). */
#include "fuzz_reader_common.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lt_reader_opts o = {.format = LT_FORMAT_EDXML, .charset = LT_CHARSET_AUTO};
    fuzz_run(&o, data, size);
    if (size > 0 && (data[0] & 0x0F) == 0) {
        o.charset = LT_CHARSET_TCVN3;
        fuzz_run(&o, data, size);
    }
    return 0;
}
