/*
 * prom_parse.h - test helper: parse a Prometheus exposition with the reference parser
 * (tests/unit/prom_parse.py, python3-prometheus-client) and look samples up.
 *
 * Debian's python3 is preferred (/usr/bin/python3: python3-prometheus-client installs
 * there); a python3 earlier on PATH may lack the module.
 */
#ifndef LT_TESTS_PROM_PARSE_H
#define LT_TESTS_PROM_PARSE_H

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parse text[0..len); returns the parser's JSON ({"families","samples"}) or NULL if it
 * refused the text (its message goes to stderr). */
static json_object *prom_parse(const char *text, size_t len)
{
    char in[] = "/tmp/lt_prom_in_XXXXXX", out[] = "/tmp/lt_prom_out_XXXXXX";
    int fi = mkstemp(in), fo = mkstemp(out);
    if (fi < 0 || fo < 0)
        return NULL;
    FILE *f = fdopen(fi, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
    close(fo);
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/tests/unit/prom_parse.py < %s > %s", py, LT_TEST_SRCDIR,
             in, out);
    int rc = system(cmd);
    json_object *j = rc == 0 ? json_object_from_file(out) : NULL;
    unlink(in);
    unlink(out);
    return j;
}

/* Value of the sample called name whose labels include label=value (label NULL: the
 * first sample of that name); -1 if absent. */
static double prom_sample(json_object *parsed, const char *name, const char *label,
                          const char *value)
{
    json_object *samples;
    if (!json_object_object_get_ex(parsed, "samples", &samples))
        return -1;
    for (size_t i = 0; i < json_object_array_length(samples); i++) {
        json_object *s = json_object_array_get_idx(samples, i);
        if (strcmp(json_object_get_string(json_object_array_get_idx(s, 0)), name) != 0)
            continue;
        json_object *labels = json_object_array_get_idx(s, 1), *v;
        if (label == NULL || (json_object_object_get_ex(labels, label, &v) &&
                              strcmp(json_object_get_string(v), value) == 0))
            return json_object_get_double(json_object_array_get_idx(s, 2));
    }
    return -1;
}

/* The type the parser gave family name, or "" if absent. */
static const char *prom_type(json_object *parsed, const char *name)
{
    json_object *fams, *t;
    if (!json_object_object_get_ex(parsed, "families", &fams) ||
        !json_object_object_get_ex(fams, name, &t))
        return "";
    return json_object_get_string(t);
}

#endif
