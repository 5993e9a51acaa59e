/* fuzz_csv.c - the CSV reader on arbitrary bytes: auto charset, detected separator, and
 * the first byte choosing configured options for a second run. */
#include "fuzz_reader_common.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lt_reader_opts o = {.format = LT_FORMAT_CSV, .charset = LT_CHARSET_AUTO};
    fuzz_run(&o, data, size);
    if (size > 0) {
        static const char seps[] = {',', ';', '\t'};
        o.charset = (lt_charset)(1 + data[0] % (LT_CHARSET_COUNT - 1));
        o.separator = seps[(data[0] >> 4) % 3];
        o.no_header = (data[0] & 0x80) != 0;
        fuzz_run(&o, data + 1, size - 1);
    }
    return 0;
}
