/*
 * mapping_int.h - what mapping.c (loading, running) and transform.c (the transform chain,
 * validation, look-up tables) share. Not a public interface.
 */
#ifndef LT_ADAPTERS_MAPPING_INT_H
#define LT_ADAPTERS_MAPPING_INT_H

#include "err.h"
#include "ycfg.h"

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

/* A list of string values: one per source value, several after `split`. */
typedef struct lt_mvals {
    char **v;
    size_t n;
} lt_mvals;

void lt_mvals_clear(lt_mvals *vs);
/* Append s (taken over; freed on failure). false on ENOMEM. */
bool lt_mvals_push(lt_mvals *vs, char *s);

/* A versioned code table: key -> value from an effective date on (yyyy-mm-dd). */
typedef struct lt_mtable_row {
    char *key, *value, *effective, *note;
} lt_mtable_row;

typedef struct lt_mtable {
    char *name;
    lt_mtable_row *rows; /* sorted by key, then effective */
    size_t n;
} lt_mtable;

/* Load a table file (CSV with a header row, or YAML `rows:` list) with the given column
 * names (effective and note may be NULL). LT_ECONFIG with "file:line: reason". */
lt_err lt_mtable_load(lt_mtable *t, const char *path, const char *key_col,
                      const char *value_col, const char *effective_col, const char *note_col,
                      lt_why *why);
void lt_mtable_fini(lt_mtable *t);

typedef enum lt_tf_kind {
    LT_TF_TRIM = 1,
    LT_TF_COLLAPSE,
    LT_TF_UPPER,
    LT_TF_LOWER,
    LT_TF_TITLE,
    LT_TF_REMOVE_WS,
    LT_TF_DATE,
    LT_TF_UNIX_MS,
    LT_TF_NUMBER,
    LT_TF_MAP,
    LT_TF_LOOKUP,
    LT_TF_EXTRACT,
    LT_TF_REPLACE,
    LT_TF_SPLIT,
    LT_TF_PREFIX,
    LT_TF_SUFFIX,
    LT_TF_PAD_LEFT,
} lt_tf_kind;

typedef struct lt_transform {
    lt_tf_kind kind;
    char *a, *b;        /* date from/to; number thousands/decimal; split sep; prefix;
                         * replace with; pad char */
    int tz_min;         /* unix_ms: offset of the source's local time, minutes east of UTC */
    bool flag;          /* number: integer; map: ignore_case; lookup: missing keep */
    bool has_re;
    regex_t re;         /* extract, replace */
    size_t group, width;
    char **keys, **vals; /* map */
    size_t npairs;
    char *dflt;         /* map default (NULL: none) */
    const lt_mtable *table;
    int date_slot;      /* lookup: slot giving the date, -1 when date_const */
    char *date_const;
} lt_transform;

/* Parse one entry of a transforms: list. tables/ntables: the mapping's look-up tables;
 * slot_of resolves a date reference to an earlier slot (-1 if unknown). LT_ECONFIG. */
lt_err lt_transform_parse(const lt_ynode *n, lt_transform *t, const lt_mtable *tables,
                          size_t ntables, int (*slot_of)(void *ctx, const char *name),
                          void *ctx, lt_why *why);
void lt_transform_fini(lt_transform *t);

/* Apply t to vs in place. dates: the slot values for look-up dates (slot -> first value or
 * NULL). On failure, the value that failed is copied into bad (cap bytes) and why says
 * why; vs is then unspecified (the caller clears it). LT_EVALIDATE, LT_ENOMEM. */
lt_err lt_transform_apply(const lt_transform *t, lt_mvals *vs,
                          const char *(*date_of)(void *ctx, int slot), void *ctx, char *bad,
                          size_t cap, lt_why *why);

typedef struct lt_validate {
    bool required;
    bool has_re;
    regex_t re;
    char *pattern;
    char **values;
    size_t nvalues;
    size_t min_len, max_len; /* in characters; max 0 = none */
} lt_validate;

lt_err lt_validate_parse(const lt_ynode *n, lt_validate *v, lt_why *why);
void lt_validate_fini(lt_validate *v);
/* Check vs; on failure bad/why as lt_transform_apply. LT_EVALIDATE. */
lt_err lt_validate_check(const lt_validate *v, const lt_mvals *vs, char *bad, size_t cap,
                         lt_why *why);

/* Date helpers shared with tests of the formats: parse s by fmt (tokens yyyy mm dd HH MI SS,
 * anything else literal; mm dd HH MI SS take 1 or 2 digits when a literal follows). */
bool lt_mdate_parse(const char *fmt, const char *s, int f[6]);
bool lt_mdate_fmt_ok(const char *fmt, bool need_date);

/* Number of UTF-8 characters of s (s is valid UTF-8). */
size_t lt_mutf8_len(const char *s);

#endif
