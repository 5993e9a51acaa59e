/* fuzz_fixed.c - the fixed-width reader on arbitrary bytes, under every charset, with a
 * layout whose cuts fall inside multi-byte characters often. */
#include "fuzz_reader_common.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const lt_fixed_field layout[] = {
        {"id", 0, 3}, {"name", 3, 7}, {"date", 10, 8}, {"rest", 18, 40}, {"overlap", 5, 2},
    };
    lt_reader_opts o = {.format = LT_FORMAT_FIXED, .charset = LT_CHARSET_AUTO,
                        .fields = layout, .nfields = sizeof layout / sizeof layout[0]};
    fuzz_run(&o, data, size);
    if (size > 0) {
        o.charset = (lt_charset)(1 + data[0] % (LT_CHARSET_COUNT - 1));
        fuzz_run(&o, data + 1, size - 1);
    }
    return 0;
}
