/*
 * cmd_codes.c - `lienthong codes`: every rejection and error code with its meaning, so an
 * operator reading a NACK or a log line can look the code up.
 */
#include "cmd_decls.h"
#include "err.h"

#include <lienthong/v1/envelope.pb-c.h>

#include <stdio.h>
#include <string.h>

const char lt_cmd_codes_summary[] = "list every error and rejection code with its meaning";

/* The NackCode number of code on the wire (names are equal by contract), -1 if the code
 * never travels in a NACK (a local error of a tool or the library). */
static int wire_number(lt_err code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value_by_name(&lienthong__v1__nack_code__descriptor,
                                                     lt_err_name(code));
    return v ? v->value : -1;
}

int lt_cmd_codes(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: lienthong codes\n\n%s.\n\n"
               "First the codes a broker sends in a NACK, by their NackCode number on the wire\n"
               "(proto/lienthong/v1/envelope.proto), then the errors that tools and the library\n"
               "report locally (no wire number).\n",
               lt_cmd_codes_summary);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "lienthong codes: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    printf("wire  %-24s meaning\n", "name");
    const ProtobufCEnumDescriptor *d = &lienthong__v1__nack_code__descriptor;
    for (unsigned i = 0; i < d->n_values; i++) {
        const ProtobufCEnumValue *v = &d->values[i];
        lt_err c = lt_err_from_name(v->name);
        const char *meaning = strcmp(lt_err_name(c), v->name) == 0 ? lt_err_str(c)
                                                                    : "not specified";
        printf("%4d  %-24s %s\n", v->value, v->name, meaning);
    }
    for (int c = 1; c < 100; c++) {
        const char *name = lt_err_name((lt_err)c);
        if (strcmp(name, "UNKNOWN") != 0 && wire_number((lt_err)c) < 0)
            printf("   -  %-24s %s\n", name, lt_err_str((lt_err)c));
    }
    return 0;
}
