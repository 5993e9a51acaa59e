/*
 * ycfg.h - configuration files: YAML read with libyaml into a small immutable tree whose
 * every node knows its file, line and key path, so each refusal reads
 *     broker.yaml:12: queues[0].max_deliver: expected an integer in 1..1000, got 'abc'
 *
 * Only plain YAML data is accepted: maps with scalar keys, sequences, scalars. Anchors and
 * aliases are refused (billion-laughs), as are duplicate keys and documents past the first.
 * A tree is immutable after load and may be read from any thread.
 */
#ifndef LT_LIB_YCFG_H
#define LT_LIB_YCFG_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lt_ynode lt_ynode;

typedef enum lt_ykind { LT_Y_SCALAR, LT_Y_SEQ, LT_Y_MAP } lt_ykind;

/* Parse the YAML file at path. On LT_OK *root is a map (an empty file gives an empty map),
 * owned by the caller (lt_ycfg_free). LT_EIO: unreadable; LT_ECONFIG: not YAML, or not a map
 * at the top, with file:line and the reason in why. Files over 16 MiB are refused. */
lt_err lt_ycfg_load(const char *path, lt_ynode **root, lt_why *why);

/* As lt_ycfg_load, from memory; label names the source in messages. */
lt_err lt_ycfg_parse(const char *label, const char *buf, size_t len, lt_ynode **root,
                     lt_why *why);

/* Free a tree from lt_ycfg_load/parse. Accepts NULL; clears *root. */
void lt_ycfg_free(lt_ynode **root);

lt_ykind lt_ycfg_kind(const lt_ynode *n);
int lt_ycfg_line(const lt_ynode *n);
/* Key path of n from the root: "queues[0].max_deliver" ("" for the root). */
const char *lt_ycfg_path(const lt_ynode *n);
/* The file (or label) the tree came from, and its directory (for relative paths). */
const char *lt_ycfg_file(const lt_ynode *n);
const char *lt_ycfg_dir(const lt_ynode *n);

/* Number of entries of a map or sequence (0 for a scalar); the i-th value; the i-th key
 * of a map (NULL for a sequence). Scalar text (NULL unless a scalar). */
size_t lt_ycfg_len(const lt_ynode *n);
const lt_ynode *lt_ycfg_at(const lt_ynode *n, size_t i);
const char *lt_ycfg_key_at(const lt_ynode *n, size_t i);
const char *lt_ycfg_scalar(const lt_ynode *n);

/* Value of key in map, or NULL when absent (or map is NULL or not a map). */
const lt_ynode *lt_ycfg_get(const lt_ynode *map, const char *key);

/* Format "file:line: path: <fmt>" into why and return LT_ECONFIG. */
lt_err lt_ycfg_fail(const lt_ynode *n, lt_why *why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Refuse any key of map not in allowed (NULL-terminated): "unknown key 'x' (expected one
 * of: a, b, c)". LT_ECONFIG also when map is not a map. NULL map is accepted (absent). */
lt_err lt_ycfg_check_keys(const lt_ynode *map, const char *const allowed[], lt_why *why);

/* Typed getters: read key of map into *out. When the key is absent the default is used;
 * a NULL default (for strings, paths) makes the key required. Wrong type or range:
 * LT_ECONFIG with the reason; *out untouched on error. Strings are borrowed from the tree. */
lt_err lt_ycfg_str(const lt_ynode *map, const char *key, const char *dflt, const char **out,
                   lt_why *why);
lt_err lt_ycfg_int(const lt_ynode *map, const char *key, int64_t dflt, int64_t min, int64_t max,
                   int64_t *out, lt_why *why);
lt_err lt_ycfg_bool(const lt_ynode *map, const char *key, bool dflt, bool *out, lt_why *why);
/* A file path, resolved against the directory of the config file when relative, into a
 * malloc'ed string the caller frees. */
lt_err lt_ycfg_filepath(const lt_ynode *map, const char *key, const char *dflt, char **out,
                        lt_why *why);
/* A map or sequence under key: *out is NULL when absent and not required. */
lt_err lt_ycfg_map(const lt_ynode *map, const char *key, bool required, const lt_ynode **out,
                   lt_why *why);
lt_err lt_ycfg_seq(const lt_ynode *map, const char *key, bool required, const lt_ynode **out,
                   lt_why *why);
/* A sequence of scalars under key as an array of borrowed strings (malloc'ed array, free it
 * with free()); *n = 0 and *out = NULL when absent. */
lt_err lt_ycfg_str_list(const lt_ynode *map, const char *key, const char ***out, size_t *n,
                        lt_why *why);

#endif
