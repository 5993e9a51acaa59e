/*
 * fuzz_ycfg.c - libFuzzer target: configuration YAML (every config the project reads goes
 * through lt_ycfg_parse) parsed and walked with every getter. Invariants: a refusal has a
 * reason that starts with the file label; a tree can be walked to its leaves.
 */
#include "ycfg.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const lt_ynode *n, int depth)
{
    if (depth > 100)
        abort(); /* the parser bounds nesting far below this */
    (void)lt_ycfg_line(n);
    (void)lt_ycfg_path(n);
    size_t len = lt_ycfg_len(n);
    for (size_t i = 0; i < len; i++) {
        const lt_ynode *c = lt_ycfg_at(n, i);
        if (c == NULL)
            abort();
        const char *key = lt_ycfg_key_at(n, i);
        if (key != NULL) {
            lt_why why;
            const char *s;
            int64_t v;
            bool b;
            char *p = NULL;
            const char **list = NULL;
            size_t cnt = 0;
            if (lt_ycfg_get(n, key) == NULL)
                abort();
            (void)lt_ycfg_str(n, key, "", &s, &why);
            (void)lt_ycfg_int(n, key, 0, INT64_MIN, INT64_MAX, &v, &why);
            (void)lt_ycfg_bool(n, key, false, &b, &why);
            if (lt_ycfg_filepath(n, key, "x", &p, &why) == LT_OK)
                free(p);
            if (lt_ycfg_str_list(n, key, &list, &cnt, &why) == LT_OK)
                free(list);
        }
        walk(c, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lt_ynode *root = NULL;
    lt_why why = {{0}};
    if (lt_ycfg_parse("fuzz.yaml", (const char *)data, size, &root, &why) != LT_OK) {
        if (root != NULL || strncmp(why.msg, "fuzz.yaml", 9) != 0)
            abort();
        return 0;
    }
    walk(root, 0);
    static const char *const none[] = {NULL};
    (void)lt_ycfg_check_keys(root, none, &why);
    lt_ycfg_free(&root);
    return 0;
}
