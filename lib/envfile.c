/*
 * envfile.c - length-delimited envelope files (format in envfile.h).
 */
#include "envfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

size_t lt_envfile_varint_put(uint8_t out[LT_ENVFILE_VARINT_MAX], uint32_t len)
{
    size_t n = 0;
    while (len >= 0x80) {
        out[n++] = (uint8_t)(len | 0x80);
        len >>= 7;
    }
    out[n++] = (uint8_t)len;
    return n;
}

/* Decode a varint from p[0..avail). Returns bytes used, 0 if more bytes are needed (avail
 * too short), or -1 if malformed (over 5 bytes or over 32 bits). */
static int varint_get(const uint8_t *p, size_t avail, uint32_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < LT_ENVFILE_VARINT_MAX; i++) {
        if (i >= avail)
            return 0;
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if ((p[i] & 0x80) == 0) {
            if (v > UINT32_MAX)
                return -1;
            *out = (uint32_t)v;
            return (int)i + 1;
        }
    }
    return -1;
}

lt_err lt_envfile_next_mem(const uint8_t *buf, size_t len, size_t *off, size_t max_len,
                           const uint8_t **item, size_t *item_len, lt_why *why)
{
    if (*off >= len)
        return LT_ENOTFOUND;
    uint32_t n = 0;
    int used = varint_get(buf + *off, len - *off, &n);
    if (used == 0)
        return lt_fail(why, LT_EPROTO, "truncated length prefix at offset %zu", *off);
    if (used < 0)
        return lt_fail(why, LT_EPROTO, "malformed length prefix at offset %zu", *off);
    if (n == 0)
        return lt_fail(why, LT_EPROTO, "zero-length record at offset %zu", *off);
    if (n > max_len)
        return lt_fail(why, LT_ETOOBIG, "record of %u bytes at offset %zu (at most %zu)", n,
                       *off, max_len);
    size_t start = *off + (size_t)used;
    if (n > len - start)
        return lt_fail(why, LT_EPROTO, "record at offset %zu truncated: %u bytes announced, %zu "
                       "left",
                       *off, n, len - start);
    *item = buf + start;
    *item_len = n;
    *off = start + n;
    return LT_OK;
}

struct lt_envfile_reader {
    FILE *f;
    bool own;
    size_t max_len, count;
    uint64_t offset;
    uint8_t *buf;
    size_t cap;
};

lt_err lt_envfile_open_reader(const char *path, size_t max_len, lt_envfile_reader **out,
                              lt_why *why)
{
    lt_envfile_reader *r = calloc(1, sizeof *r);
    if (r == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    if (strcmp(path, "-") == 0) {
        r->f = stdin;
    } else {
        r->f = fopen(path, "rb");
        r->own = true;
        if (r->f == NULL) {
            lt_err e = lt_fail(why, LT_EIO, "%s: %s", path, strerror(errno));
            free(r);
            return e;
        }
    }
    r->max_len = max_len;
    *out = r;
    return LT_OK;
}

lt_err lt_envfile_read(lt_envfile_reader *r, const uint8_t **item, size_t *item_len,
                       lt_why *why)
{
    uint8_t pre[LT_ENVFILE_VARINT_MAX];
    size_t have = 0;
    uint32_t n = 0;
    int used = 0;
    while (used == 0) {
        int c = getc(r->f);
        if (c == EOF) {
            if (ferror(r->f))
                return lt_fail(why, LT_EIO, "read error at offset %llu: %s",
                               (unsigned long long)r->offset, strerror(errno));
            if (have == 0)
                return LT_ENOTFOUND;
            return lt_fail(why, LT_EPROTO, "file ends inside a length prefix at offset %llu",
                           (unsigned long long)r->offset);
        }
        pre[have++] = (uint8_t)c;
        used = varint_get(pre, have, &n);
        if (used < 0)
            return lt_fail(why, LT_EPROTO, "malformed length prefix at offset %llu",
                           (unsigned long long)r->offset);
    }
    if (n == 0)
        return lt_fail(why, LT_EPROTO, "zero-length record at offset %llu",
                       (unsigned long long)r->offset);
    if (n > r->max_len)
        return lt_fail(why, LT_ETOOBIG, "record of %u bytes at offset %llu (at most %zu)", n,
                       (unsigned long long)r->offset, r->max_len);
    if (n > r->cap) {
        uint8_t *nb = realloc(r->buf, n);
        if (nb == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory for a %u-byte record", n);
        r->buf = nb;
        r->cap = n;
    }
    size_t got = fread(r->buf, 1, n, r->f);
    if (got != n) {
        if (ferror(r->f))
            return lt_fail(why, LT_EIO, "read error at offset %llu: %s",
                           (unsigned long long)r->offset, strerror(errno));
        return lt_fail(why, LT_EPROTO, "record at offset %llu truncated: %u bytes announced, %zu "
                       "present",
                       (unsigned long long)r->offset, n, got);
    }
    r->offset += have + n;
    r->count++;
    *item = r->buf;
    *item_len = n;
    return LT_OK;
}

size_t lt_envfile_reader_count(const lt_envfile_reader *r)
{
    return r->count;
}

void lt_envfile_close_reader(lt_envfile_reader **rp)
{
    if (rp == NULL || *rp == NULL)
        return;
    lt_envfile_reader *r = *rp;
    if (r->own)
        fclose(r->f);
    free(r->buf);
    free(r);
    *rp = NULL;
}

struct lt_envfile_writer {
    FILE *f;
    bool own;
    char *path;
    bool failed;
};

lt_err lt_envfile_open_writer(const char *path, lt_envfile_writer **out, lt_why *why)
{
    lt_envfile_writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    if (strcmp(path, "-") == 0) {
        w->f = stdout;
    } else {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        w->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
        if (w->f == NULL) {
            lt_err e = lt_fail(why, LT_EIO, "%s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            free(w);
            return e;
        }
        w->own = true;
    }
    w->path = strdup(path);
    if (w->path == NULL) {
        if (w->own)
            fclose(w->f);
        free(w);
        return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    *out = w;
    return LT_OK;
}

lt_err lt_envfile_write(lt_envfile_writer *w, const uint8_t *item, size_t len, lt_why *why)
{
    if (len == 0 || len > UINT32_MAX)
        return lt_fail(why, LT_EINVAL, "record of %zu bytes (1..2^32-1)", len);
    uint8_t pre[LT_ENVFILE_VARINT_MAX];
    size_t n = lt_envfile_varint_put(pre, (uint32_t)len);
    if (fwrite(pre, 1, n, w->f) != n || fwrite(item, 1, len, w->f) != len) {
        w->failed = true;
        return lt_fail(why, LT_EIO, "%s: write failed: %s", w->path, strerror(errno));
    }
    return LT_OK;
}

lt_err lt_envfile_close_writer(lt_envfile_writer **wp, lt_why *why)
{
    if (wp == NULL || *wp == NULL)
        return LT_OK;
    lt_envfile_writer *w = *wp;
    *wp = NULL;
    lt_err e = LT_OK;
    if (fflush(w->f) != 0)
        e = lt_fail(why, LT_EIO, "%s: flush failed: %s", w->path, strerror(errno));
    struct stat st;
    if (e == LT_OK && w->own && fstat(fileno(w->f), &st) == 0 && S_ISREG(st.st_mode) &&
        fsync(fileno(w->f)) != 0)
        e = lt_fail(why, LT_EIO, "%s: fsync failed: %s", w->path, strerror(errno));
    if (w->own && fclose(w->f) != 0 && e == LT_OK)
        e = lt_fail(why, LT_EIO, "%s: close failed: %s", w->path, strerror(errno));
    if (e == LT_OK && w->failed)
        e = lt_fail(why, LT_EIO, "%s: an earlier write failed", w->path);
    free(w->path);
    free(w);
    return e;
}
