/*
 * reader_csv.c - CSV (RFC 4180) reader on libcsv.
 *
 * libcsv parses the raw bytes (the separator and quote are ASCII in every supported
 * charset, and no legacy byte is ASCII); each field is then decoded on its own, so a bad
 * byte rejects its row only. The input is fed one physical line at a time so every record
 * knows the line it starts on, even with newlines inside quoted fields. libcsv runs in
 * strict mode: a stray quote rejects the row, and parsing resumes on the next line.
 */
#include "reader_int.h"

#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLUMNS 4096

struct csv_state {
    struct lt_run *run;
    struct lt_record rec;
    char **hdr; /* column names, decoded */
    size_t nhdr;
    bool in_header; /* the row being parsed is the header */
    bool in_row;
    size_t row_line; /* line the current row starts on */
    size_t col;      /* fields seen in the current row */
    size_t index;    /* data rows seen, rejected ones included */
    bool bad;
    lt_err bad_code;
    char bad_reason[LT_WHY_MAX];
    const char *bad_field;
    lt_err fatal;
    lt_why *why;
};

static void mark_bad(struct csv_state *s, lt_err code, const char *field, const char *reason)
{
    if (s->bad)
        return;
    s->bad = true;
    s->bad_code = code;
    s->bad_field = field;
    snprintf(s->bad_reason, sizeof s->bad_reason, "%s", reason);
}

/* The name of column i (0-based) when the file has no header row: "1", "2", ... */
static const char *column_name(struct csv_state *s, size_t i)
{
    if (i < s->nhdr)
        return s->hdr[i];
    if (s->run->opts->no_header && i < MAX_COLUMNS) {
        char **h = realloc(s->hdr, (i + 1) * sizeof *h);
        if (h == NULL)
            return NULL;
        s->hdr = h;
        while (s->nhdr <= i) {
            char num[24];
            snprintf(num, sizeof num, "%zu", s->nhdr + 1);
            if ((s->hdr[s->nhdr] = strdup(num)) == NULL)
                return NULL;
            s->nhdr++;
        }
        return s->hdr[i];
    }
    return NULL;
}

static void on_field(void *field, size_t len, void *data)
{
    struct csv_state *s = data;
    size_t col = s->col++;
    if (s->bad)
        return;
    if (col >= MAX_COLUMNS) {
        mark_bad(s, LT_EFORMAT, NULL, "more than 4096 columns");
        return;
    }
    lt_why why;
    char *text = NULL;
    lt_err err = lt_run_decode(s->run, field ? field : (const void *)"", field ? len : 0, &text,
                               &why);
    if (s->in_header) {
        if (err) {
            mark_bad(s, err, NULL, why.msg);
            return;
        }
        /* trim the spaces Excel users leave around names */
        size_t a = 0, b = strlen(text);
        while (a < b && (text[a] == ' ' || text[a] == '\t'))
            a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t'))
            b--;
        memmove(text, text + a, b - a);
        text[b - a] = 0;
        char **h = realloc(s->hdr, (s->nhdr + 1) * sizeof *h);
        if (h == NULL) {
            free(text);
            mark_bad(s, LT_ENOMEM, NULL, "out of memory");
            return;
        }
        s->hdr = h;
        s->hdr[s->nhdr++] = text;
        return;
    }
    const char *name = column_name(s, col);
    if (err) {
        mark_bad(s, err, name, why.msg);
        return;
    }
    if (name == NULL) {
        /* a column beyond the header: the row's field count is reported in on_row */
        free(text);
        if (s->run->opts->no_header)
            mark_bad(s, LT_ENOMEM, NULL, "out of memory");
        return;
    }
    if (lt_rec_add(&s->rec, name, text) != LT_OK)
        mark_bad(s, LT_ENOMEM, name, "out of memory");
}

static void end_row(struct csv_state *s)
{
    s->in_row = false;
    lt_rec_clear(&s->rec);
    s->col = 0;
    s->bad = false;
    s->bad_field = NULL;
}

static void on_row(int c, void *data)
{
    (void)c;
    struct csv_state *s = data;
    if (s->fatal) {
        end_row(s);
        return;
    }
    if (s->in_header) {
        s->in_header = false;
        if (s->bad) {
            s->fatal = lt_fail(s->why, LT_EFORMAT, "%s: header row (line %zu) unreadable: %s",
                               s->run->file, s->row_line, s->bad_reason);
            lt_run_reject(s->run, s->row_line, 0, NULL, LT_EFORMAT, "header row: %s",
                          s->bad_reason);
        }
        end_row(s);
        return;
    }
    size_t index = ++s->index;
    if (!s->bad && !s->run->opts->no_header && s->col != s->nhdr) {
        char msg[96];
        snprintf(msg, sizeof msg, "row has %zu fields, the header has %zu", s->col, s->nhdr);
        mark_bad(s, LT_EFORMAT, NULL, msg);
    }
    if (s->bad) {
        lt_run_reject(s->run, s->row_line, index, s->bad_field, s->bad_code, "%s",
                      s->bad_reason);
    } else {
        s->rec.line = s->row_line;
        s->rec.index = index;
        lt_err err = lt_run_deliver(s->run, &s->rec, s->why);
        if (err)
            s->fatal = err; /* the caller asked to stop: not a reject */
    }
    end_row(s);
}

/* ',' ';' or TAB: the one found most often outside quotes in the first line. */
static char guess_separator(const uint8_t *p, size_t len)
{
    size_t comma = 0, semi = 0, tab = 0;
    bool quoted = false;
    for (size_t i = 0; i < len && (quoted || (p[i] != '\n' && p[i] != '\r')); i++) {
        if (p[i] == '"')
            quoted = !quoted;
        else if (!quoted)
            comma += p[i] == ',', semi += p[i] == ';', tab += p[i] == '\t';
    }
    if (semi > comma && semi >= tab)
        return ';';
    if (tab > comma && tab > semi)
        return '\t';
    return ',';
}

static bool parser_init(struct csv_parser *p, char sep)
{
    if (csv_init(p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
        return false;
    csv_set_delim(p, (unsigned char)sep);
    return true;
}

lt_err lt_reader_csv(struct lt_run *run, const uint8_t *data, size_t len, lt_why *why)
{
    struct csv_state s = {.run = run, .why = why, .rec = {.file = run->file}};
    s.rec.cs = lt_charset_decoder_charset(run->dec);
    s.in_header = !run->opts->no_header;
    size_t pos = 0;
    if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF)
        pos = 3;
    char sep = run->opts->separator ? run->opts->separator : guess_separator(data + pos, len - pos);
    if (sep != ',' && sep != ';' && sep != '\t') {
        lt_err err = lt_fail(why, LT_EINVAL, "CSV separator must be ',', ';' or TAB");
        lt_run_reject(run, 0, 0, NULL, err, "%s", why->msg);
        return err;
    }
    struct csv_parser p;
    if (!parser_init(&p, sep))
        return lt_fail(why, LT_ENOMEM, "out of memory");

    size_t line = 0;
    while (pos < len && !s.fatal) {
        const uint8_t *nl = memchr(data + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) + 1 : len - pos;
        line++;
        bool blank = (n == 1 && data[pos] == '\n') ||
                     (n == 2 && data[pos] == '\r' && data[pos + 1] == '\n') ||
                     (n == 1 && data[pos] == '\r');
        if (!s.in_row && !blank) {
            s.in_row = true;
            s.row_line = line;
        }
        if (csv_parse(&p, data + pos, n, on_field, on_row, &s) != n) {
            if (csv_error(&p) == CSV_ENOMEM) {
                s.fatal = lt_fail(why, LT_ENOMEM, "out of memory");
                break;
            }
            /* reject the row, start afresh on the next line */
            lt_run_reject(run, s.row_line, s.in_header ? 0 : ++s.index, NULL, LT_EFORMAT,
                          "malformed CSV on line %zu: a quote inside an unquoted field or "
                          "text after a closing quote",
                          line);
            if (s.in_header) {
                s.fatal = lt_fail(why, LT_EFORMAT, "%s: header row (line %zu) is not valid CSV",
                                  run->file, s.row_line);
            }
            csv_free(&p);
            end_row(&s);
            if (!parser_init(&p, sep)) {
                s.fatal = lt_fail(why, LT_ENOMEM, "out of memory");
                break;
            }
        }
        pos += n;
    }
    if (!s.fatal && csv_fini(&p, on_field, on_row, &s) != 0) {
        lt_run_reject(run, s.row_line, s.in_header ? 0 : ++s.index, NULL, LT_EFORMAT,
                      "quoted field starting on line %zu is never closed", s.row_line);
        end_row(&s);
        if (s.in_header)
            s.fatal = lt_fail(why, LT_EFORMAT, "%s: header row is never finished", run->file);
    }
    csv_free(&p);
    lt_rec_fini(&s.rec);
    for (size_t i = 0; i < s.nhdr; i++)
        free(s.hdr[i]);
    free(s.hdr);
    return s.fatal;
}
