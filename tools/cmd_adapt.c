/*
 * cmd_adapt.c - `lienthong adapt`: legacy files -> canonical records -> the broker.
 *
 *   lienthong adapt -c AGENCY.yaml -m MAPPING.yaml [--dry-run] [--batch N] [--report FILE] FILE...
 *   lienthong adapt -c AGENCY.yaml -m MAPPING.yaml --watch DIR [--report-format csv|jsonl]
 *
 * Each file is read and mapped (adapters/mapping.h); good records are sealed in batches of N
 * under one signature (lt_env_seal_batch, Merkle proofs) and published with acks. Every row
 * that was not published - refused by the mapping, by the policy, or NACKed by the broker -
 * is one line of the reject report (file, line, record, field, value, code, reason): nothing is
 * dropped silently. A publish that timed out or lost its connection is sent again with the
 * same envelope (same message id), at most three rounds; the broker acks a message id it
 * already holds as a duplicate, and message ids are content-derived, so running an import
 * twice publishes nothing twice.
 *
 * --watch DIR: a drop folder. libuv watches DIR (uv_fs_event) and also rescans it every
 * --scan-ms (some file systems give no events); a file is taken once its size and mtime stayed
 * the same for --settle-ms. After processing it moves to DIR/done/ (every row published) or
 * DIR/failed/ (some row not published) with NAME.report.csv (or .jsonl) next to it. The state
 * file DIR/.lienthong-adapt.state lists the SHA-256 of every file processed, appended and
 * fsync'ed before the move, so a restart between the two only moves the file. A file that
 * could not reach the broker stays in DIR and is retried.
 *
 * Exit: 0 every row published (or a duplicate); 1 some row not published or a file failed;
 * 2 usage or configuration errors. Progress (rows/s, errors) goes to stderr when it is a
 * terminal. Single-threaded.
 */
#include "cmd_decls.h"
#include "tool_client.h"

#include "envelope.h"
#include "err.h"
#include "mapping.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

const char lt_cmd_adapt_summary[] =
    "map legacy files (CSV, fixed-width, edXML, JSON lines) to records and publish them";

#define RETRY_ROUNDS 3
#define STATE_FILE ".lienthong-adapt.state"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong adapt -c AGENCY.yaml -m MAPPING.yaml [options] FILE...\n"
            "       lienthong adapt -c AGENCY.yaml -m MAPPING.yaml --watch DIR [options]\n\n"
            "Maps each FILE with MAPPING.yaml and publishes the records as the agency of\n"
            "AGENCY.yaml. Rows not published are written to the reject report.\n\n"
            "  -c, --config FILE     agency config (id, key, certificate, broker endpoint)\n"
            "  -m, --mapping FILE    the feed's mapping (see adapters/samples/mappings/README.md)\n"
            "      --dry-run         print one JSON line per record (topic, message id, record)\n"
            "                        instead of publishing\n"
            "      --batch N         envelopes per batch signature (default 64, 1 = one each)\n"
            "      --report FILE     reject report; JSON lines if FILE ends in .json or .jsonl,\n"
            "                        else CSV (default: rejects are listed on stderr)\n"
            "      --watch DIR       watch DIR, move each processed file to DIR/done or\n"
            "                        DIR/failed with its report; stop with SIGINT/SIGTERM\n"
            "      --report-format F csv (default) or jsonl, for --watch reports\n"
            "      --scan-ms MS      --watch rescan period (default 2000)\n"
            "      --settle-ms MS    --watch: a file is taken after its size and mtime were\n"
            "                        stable this long (default 1000)\n"
            "  -q, --quiet           no summary lines\n");
}

/* ---- reject reports ---------------------------------------------------------------- */

struct report {
    FILE *fp; /* NULL: rejects go to stderr in a readable form */
    bool jsonl;
    size_t lines;
};

static void csv_field(FILE *fp, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

static void json_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", fp);
        else if (c == '\r')
            fputs("\\r", fp);
        else if (c == '\t')
            fputs("\\t", fp);
        else if (c < 0x20)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

static bool report_open(struct report *r, const char *path, bool jsonl)
{
    memset(r, 0, sizeof *r);
    if (path == NULL)
        return true;
    if ((r->fp = fopen(path, "w")) == NULL)
        return false;
    r->jsonl = jsonl;
    if (!jsonl)
        fputs("file,line,record,field,value,code,reason\n", r->fp);
    return true;
}

static bool report_close(struct report *r)
{
    bool ok = true;
    if (r->fp) {
        ok = fflush(r->fp) == 0 && fsync(fileno(r->fp)) == 0;
        ok = fclose(r->fp) == 0 && ok;
    }
    r->fp = NULL;
    return ok;
}

static void report_add(struct report *r, const lt_map_reject *j)
{
    r->lines++;
    if (r->fp == NULL) {
        fprintf(stderr, "reject: %s:%zu: %s%s%s%s%s%s (%s)\n", j->file, j->line, j->field,
                *j->field ? ": " : "", j->reason, *j->value ? " [value '" : "", j->value,
                *j->value ? "']" : "", lt_err_name(j->code));
        return;
    }
    if (r->jsonl) {
        fputs("{\"file\":", r->fp);
        json_str(r->fp, j->file);
        fprintf(r->fp, ",\"line\":%zu,\"record\":%zu,\"field\":", j->line, j->index);
        json_str(r->fp, j->field);
        fputs(",\"value\":", r->fp);
        json_str(r->fp, j->value);
        fprintf(r->fp, ",\"code\":\"%s\",\"reason\":", lt_err_name(j->code));
        json_str(r->fp, j->reason);
        fputs("}\n", r->fp);
        return;
    }
    csv_field(r->fp, j->file);
    fprintf(r->fp, ",%zu,%zu,", j->line, j->index);
    csv_field(r->fp, j->field);
    fputc(',', r->fp);
    csv_field(r->fp, j->value);
    fprintf(r->fp, ",%s,", lt_err_name(j->code));
    csv_field(r->fp, j->reason);
    fputc('\n', r->fp);
}

/* ---- one import -------------------------------------------------------------------- */

/* One published envelope: the user pointer of its publish callback, so it lives until
 * that callback has run (lib/client.h, Callbacks). */
struct pending {
    uint8_t *env;
    size_t len, line, index;
    lt_err code;
    bool done, dup;
    char reason[200];
    struct pending *next_orphan;
};

struct held_rec { /* a record waiting for its batch to be sealed */
    char *topic;
    uint8_t *payload;
    size_t payload_len, line, index;
    uint8_t id[LT_ENV_MESSAGE_ID_LEN];
};

struct adapt {
    /* configuration */
    const lt_mapping *m;
    const char *agency;
    lt_signer *signer; /* NULL in dry-run */
    lt_client *client;
    size_t batch;
    bool dry_run, quiet, tty;
    /* per file */
    const char *file;
    struct report *rep;
    struct held_rec *held;
    size_t nheld;
    struct pending **pend;
    size_t npend, cappend;
    struct pending *orphans; /* reported, but their callbacks have not run: freed after close */
    size_t rows_seen, errors, published, duplicates, unpublished, transient;
    lt_err fatal;
    lt_why fatal_why;
    int64_t t0, last_progress;
};

static void progress(struct adapt *a, bool final)
{
    if (!a->tty)
        return;
    int64_t now = lt_tool_mono_ms();
    if (!final && now - a->last_progress < 200)
        return;
    a->last_progress = now;
    double s = (double)(now - a->t0) / 1000.0;
    fprintf(stderr, "\r\033[Kadapt: %s: %zu rows (%.0f rows/s), %zu published, %zu errors%s",
            a->file, a->rows_seen, s > 0 ? (double)a->rows_seen / s : 0.0, a->published,
            a->errors, final ? "\n" : "");
}

static void on_ack(void *user, uint64_t tag, lt_err code, uint64_t seq, bool duplicate,
                   const char *reason)
{
    (void)tag;
    (void)seq;
    struct pending *p = user;
    p->code = code;
    p->dup = duplicate;
    p->done = true;
    snprintf(p->reason, sizeof p->reason, "%s", reason ? reason : "");
}

static void held_free(struct held_rec *h)
{
    free(h->topic);
    free(h->payload);
}

/* Seal the held records as one batch and publish each envelope. */
static lt_err flush_batch(struct adapt *a)
{
    if (a->nheld == 0)
        return LT_OK;
    size_t n = a->nheld;
    lt_env_spec *specs = calloc(n, sizeof *specs);
    uint8_t **outs = calloc(n, sizeof *outs);
    size_t *lens = calloc(n, sizeof *lens);
    lt_err e = LT_OK;
    if (!specs || !outs || !lens) {
        e = lt_fail(&a->fatal_why, LT_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        specs[i] = (lt_env_spec){.message_id = a->held[i].id, .topic = a->held[i].topic,
                                 .record_type = lt_mapping_record_type(a->m),
                                 .payload = a->held[i].payload,
                                 .payload_len = a->held[i].payload_len};
    e = n == 1 ? lt_env_seal(a->signer, &specs[0], &outs[0], &lens[0], &a->fatal_why)
               : lt_env_seal_batch(a->signer, specs, n, outs, lens, &a->fatal_why);
    if (e)
        goto out;
    if (a->npend + n > a->cappend) {
        size_t cap = (a->npend + n) * 2;
        struct pending **pp = realloc(a->pend, cap * sizeof *pp);
        if (pp == NULL) {
            for (size_t i = 0; i < n; i++)
                free(outs[i]);
            e = lt_fail(&a->fatal_why, LT_ENOMEM, "out of memory");
            goto out;
        }
        a->pend = pp, a->cappend = cap;
    }
    for (size_t i = 0; i < n; i++) {
        struct pending *p = calloc(1, sizeof *p);
        if (p == NULL) {
            for (size_t k = i; k < n; k++)
                free(outs[k]);
            e = lt_fail(&a->fatal_why, LT_ENOMEM, "out of memory");
            goto out;
        }
        *p = (struct pending){.env = outs[i], .len = lens[i], .line = a->held[i].line,
                              .index = a->held[i].index};
        a->pend[a->npend++] = p;
        lt_why w;
        (void)w;
        lt_err pe = lt_client_publish(a->client, p->env, p->len, on_ack, p, NULL);
        if (pe != LT_OK) { /* not sent, no callback: retried after the flush */
            p->done = true;
            p->code = pe;
            snprintf(p->reason, sizeof p->reason, "not sent: %s", lt_err_str(pe));
        }
    }
out:
    for (size_t i = 0; i < a->nheld; i++)
        held_free(&a->held[i]);
    a->nheld = 0;
    free(specs);
    free(outs);
    free(lens);
    if (e)
        a->fatal = e;
    return e;
}

static int on_record(void *ctx, const lt_mapped *r)
{
    struct adapt *a = ctx;
    a->rows_seen++;
    if (a->dry_run) {
        char hex[2 * LT_ENV_MESSAGE_ID_LEN + 1];
        lt_tool_hex(r->message_id, LT_ENV_MESSAGE_ID_LEN, hex);
        fputs("{\"topic\":", stdout);
        json_str(stdout, r->topic);
        printf(",\"message_id\":\"%s\",\"record_type\":", hex);
        json_str(stdout, r->record_type);
        fputs(",\"key\":", stdout);
        json_str(stdout, r->key);
        printf(",\"line\":%zu,\"record\":%s}\n", r->line, r->json);
        a->published++;
        progress(a, false);
        return 0;
    }
    struct held_rec *h = &a->held[a->nheld];
    *h = (struct held_rec){.topic = strdup(r->topic), .payload = malloc(r->payload_len + 1),
                           .payload_len = r->payload_len, .line = r->line, .index = r->index};
    if (h->topic == NULL || h->payload == NULL) {
        held_free(h);
        a->fatal = lt_fail(&a->fatal_why, LT_ENOMEM, "out of memory");
        return 1;
    }
    memcpy(h->payload, r->payload, r->payload_len);
    memcpy(h->id, r->message_id, sizeof h->id);
    a->nheld++;
    if (a->nheld == a->batch && flush_batch(a) != LT_OK)
        return 1;
    progress(a, false);
    return 0;
}

static void on_reject(void *ctx, const lt_map_reject *j)
{
    struct adapt *a = ctx;
    a->errors++;
    report_add(a->rep, j);
    progress(a, false);
}

static bool is_transient(lt_err e)
{
    return e == LT_ETIMEDOUT || e == LT_ECLOSED || e == LT_EAGAIN;
}

/* Wait for every ack, resend what timed out or lost its connection, and report what the
 * broker refused. */
static void finish_publishing(struct adapt *a)
{
    for (int round = 0;; round++) {
        lt_client_flush(a->client, -1);
        size_t resent = 0;
        if (round == RETRY_ROUNDS)
            break;
        for (size_t i = 0; i < a->npend; i++) {
            struct pending *p = a->pend[i];
            if (!p->done || !is_transient(p->code))
                continue;
            p->done = false;
            lt_err pe = lt_client_publish(a->client, p->env, p->len, on_ack, p, NULL);
            if (pe != LT_OK) {
                p->done = true;
                p->code = pe;
                snprintf(p->reason, sizeof p->reason, "not sent: %s", lt_err_str(pe));
            }
            resent++;
        }
        if (resent == 0)
            break;
    }
    for (size_t i = 0; i < a->npend; i++) {
        struct pending *p = a->pend[i];
        if (p->done && p->code == LT_OK) {
            a->published++;
            a->duplicates += p->dup;
        } else {
            char reason[300];
            lt_err code = p->done ? p->code : LT_ETIMEDOUT;
            snprintf(reason, sizeof reason, "broker: %s%s%s", lt_err_name(code),
                     *p->reason ? ": " : "", p->reason);
            lt_map_reject j = {a->file, p->line, p->index, "", "", code, reason};
            on_reject(a, &j);
            a->unpublished++;
            a->transient += is_transient(code);
        }
        if (!p->done) { /* still in flight (the flush failed): the client still holds p */
            p->next_orphan = a->orphans;
            a->orphans = p;
            continue;
        }
        free(p->env);
        free(p);
    }
    a->npend = 0;
}

/* Import one file. Returns true when every row was published. */
static bool adapt_file(struct adapt *a, const char *path, const char *label,
                       struct report *rep)
{
    a->file = path; /* as the mapping's own reject entries name it */
    a->rep = rep;
    a->rows_seen = a->errors = a->published = a->duplicates = a->unpublished = 0;
    a->transient = 0;
    a->fatal = LT_OK;
    a->t0 = lt_tool_mono_ms();
    a->last_progress = 0;
    if (!a->dry_run && (a->held = calloc(a->batch, sizeof *a->held)) == NULL) {
        fprintf(stderr, "adapt: out of memory\n");
        return false;
    }
    lt_mapping_sink sink = {on_record, on_reject, a, a->dry_run};
    lt_mapping_stats st = {0};
    lt_why why;
    lt_err e = lt_mapping_run_file(a->m, a->agency, path, &sink, &st, &why);
    /* under reject_file the file's records only arrive once it passed; either way the
     * held tail of the last batch goes out now */
    if (!a->dry_run) {
        if (a->fatal == LT_OK)
            flush_batch(a);
        finish_publishing(a);
        free(a->held);
        a->held = NULL;
    }
    int64_t ms = lt_tool_mono_ms() - a->t0;
    a->file = label;
    progress(a, true);
    if (a->fatal)
        fprintf(stderr, "adapt: %s: %s\n", label, a->fatal_why.msg);
    else if (e && e != LT_EVALIDATE && e != LT_ECLOSED)
        fprintf(stderr, "adapt: %s: %s\n", label, why.msg);
    if (!a->quiet)
        fprintf(stderr,
                "adapt: %s: %s, %zu rows: %zu %s (%zu duplicates), %zu rejected, %zu report "
                "lines; %.0f rows/s\n",
                label, lt_charset_name(st.charset), st.rows, a->published,
                a->dry_run ? "mapped" : "published", a->duplicates,
                st.rejected + a->unpublished, a->errors,
                ms > 0 ? (double)st.rows * 1000.0 / (double)ms : 0.0);
    return e == LT_OK && a->fatal == LT_OK && st.rejected == 0 && a->unpublished == 0;
}

/* ---- watch mode -------------------------------------------------------------------- */

struct seen {
    char *name;
    off_t size;
    struct timespec mtime;
    int64_t stable_since, retry_after;
};

struct watch {
    struct adapt *a;
    const char *dir;
    bool jsonl;
    int64_t scan_ms, settle_ms;
    struct seen *seen;
    size_t nseen;
    uv_loop_t *loop;
    uv_fs_event_t ev;
    uv_timer_t scan, kick;
    uv_signal_t sigint, sigterm;
    bool failed_any;
};

static bool sha256_file(const char *path, char hex[65])
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return false;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    uint8_t buf[65536], md[32];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, fp)) > 0)
        ok = EVP_DigestUpdate(c, buf, n);
    unsigned ml = 0;
    ok = ok && !ferror(fp) && EVP_DigestFinal_ex(c, md, &ml) && ml == 32;
    EVP_MD_CTX_free(c);
    fclose(fp);
    if (ok)
        lt_tool_hex(md, 32, hex);
    return ok;
}

/* The outcome ("done"/"failed") recorded for hash, or NULL. */
static const char *state_lookup(const char *dir, const char *hex, char *out, size_t cap)
{
    char path[4096], line[4608];
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    const char *found = NULL;
    while (fgets(line, sizeof line, fp)) {
        char h[65], status[16];
        if (sscanf(line, "%64s %15s", h, status) == 2 && strcmp(h, hex) == 0) {
            snprintf(out, cap, "%s", status);
            found = out;
        }
    }
    fclose(fp);
    return found;
}

static bool state_append(const char *dir, const char *hex, const char *status,
                         const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0)
        return false;
    char line[4608];
    int n = snprintf(line, sizeof line, "%s %s %s\n", hex, status, name);
    bool ok = n > 0 && (size_t)n < sizeof line && write(fd, line, (size_t)n) == n &&
              fsync(fd) == 0;
    return close(fd) == 0 && ok;
}

/* Rename src to DIR/sub/name, adding .1, .2 ... when the name is taken. */
static bool move_into(const char *dir, const char *sub, const char *name, const char *src,
                      const char *suffix)
{
    char dst[4096];
    for (int i = 0; i < 1000; i++) {
        if (i == 0)
            snprintf(dst, sizeof dst, "%s/%s/%s%s", dir, sub, name, suffix);
        else
            snprintf(dst, sizeof dst, "%s/%s/%s.%d%s", dir, sub, name, i, suffix);
        struct stat st;
        if (stat(dst, &st) != 0 && errno == ENOENT)
            return rename(src, dst) == 0;
    }
    return false;
}

static void watch_process(struct watch *w, const char *name)
{
    char path[4096], hex[65], status[16], rpath[4096];
    snprintf(path, sizeof path, "%s/%s", w->dir, name);
    if (!sha256_file(path, hex)) {
        fprintf(stderr, "adapt: watch: cannot read %s: %s\n", path, strerror(errno));
        return;
    }
    const char *suffix = w->jsonl ? ".report.jsonl" : ".report.csv";
    if (state_lookup(w->dir, hex, status, sizeof status) != NULL) {
        /* processed before a restart that came before the move: just move it */
        if (!move_into(w->dir, status, name, path, ""))
            fprintf(stderr, "adapt: watch: cannot move %s into %s/: %s\n", path, status,
                    strerror(errno));
        else if (!w->a->quiet)
            fprintf(stderr, "adapt: watch: %s already processed (%s), moved\n", name, status);
        return;
    }
    snprintf(rpath, sizeof rpath, "%s/.%s%s.tmp", w->dir, name, suffix);
    struct report rep;
    if (!report_open(&rep, rpath, w->jsonl)) {
        fprintf(stderr, "adapt: watch: cannot write %s: %s\n", rpath, strerror(errno));
        return;
    }
    bool ok = adapt_file(w->a, path, name, &rep);
    bool transient = w->a->transient > 0;
    if (!report_close(&rep)) {
        fprintf(stderr, "adapt: watch: cannot write %s\n", rpath);
        unlink(rpath);
        return;
    }
    if (transient) {
        /* the broker was not reachable: leave the file and try again later */
        unlink(rpath);
        for (size_t i = 0; i < w->nseen; i++)
            if (strcmp(w->seen[i].name, name) == 0)
                w->seen[i].retry_after = lt_tool_mono_ms() + 5 * w->scan_ms;
        fprintf(stderr, "adapt: watch: %s: broker unreachable, will retry\n", name);
        return;
    }
    const char *sub = ok ? "done" : "failed";
    w->failed_any |= !ok;
    if (!move_into(w->dir, sub, name, rpath, suffix) ||
        !state_append(w->dir, hex, sub, name) || !move_into(w->dir, sub, name, path, "")) {
        fprintf(stderr, "adapt: watch: cannot move %s into %s/: %s\n", name, sub,
                strerror(errno));
        return;
    }
    for (size_t i = 0; i < w->nseen; i++)
        if (strcmp(w->seen[i].name, name) == 0) {
            free(w->seen[i].name);
            w->seen[i] = w->seen[--w->nseen];
            break;
        }
}

static bool skip_name(const char *n)
{
    size_t l = strlen(n);
    return n[0] == '.' || (l > 5 && strcmp(n + l - 5, ".part") == 0) ||
           (l > 4 && strcmp(n + l - 4, ".tmp") == 0) || (l > 1 && n[l - 1] == '~');
}

static void watch_scan(struct watch *w)
{
    DIR *d = opendir(w->dir);
    if (d == NULL) {
        fprintf(stderr, "adapt: watch: %s: %s\n", w->dir, strerror(errno));
        return;
    }
    int64_t now = lt_tool_mono_ms();
    char **ready = NULL;
    size_t nready = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (skip_name(de->d_name))
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", w->dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        struct seen *s = NULL;
        for (size_t i = 0; i < w->nseen && s == NULL; i++)
            if (strcmp(w->seen[i].name, de->d_name) == 0)
                s = &w->seen[i];
        if (s == NULL) {
            struct seen *p = realloc(w->seen, (w->nseen + 1) * sizeof *p);
            char *nm = strdup(de->d_name);
            if (p == NULL || nm == NULL) {
                free(nm);
                if (p)
                    w->seen = p;
                continue;
            }
            w->seen = p;
            s = &w->seen[w->nseen++];
            *s = (struct seen){nm, st.st_size, st.st_mtim, now, 0};
            continue;
        }
        if (s->size != st.st_size || s->mtime.tv_sec != st.st_mtim.tv_sec ||
            s->mtime.tv_nsec != st.st_mtim.tv_nsec) {
            s->size = st.st_size;
            s->mtime = st.st_mtim;
            s->stable_since = now;
            continue;
        }
        if (now - s->stable_since >= w->settle_ms && now >= s->retry_after) {
            char **p = realloc(ready, (nready + 1) * sizeof *p);
            if (p) {
                ready = p;
                if ((ready[nready] = strdup(s->name)) != NULL)
                    nready++;
            }
        }
    }
    closedir(d);
    for (size_t i = 0; i < nready; i++) {
        watch_process(w, ready[i]);
        free(ready[i]);
    }
    free(ready);
}

static void on_scan_timer(uv_timer_t *t)
{
    watch_scan(t->data);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    (void)status;
    struct watch *w = h->data;
    /* something changed: look again once it had time to settle (debounced) */
    uv_timer_start(&w->kick, on_scan_timer, (uint64_t)w->settle_ms + 50, 0);
}

static void on_close(uv_handle_t *h)
{
    (void)h;
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    struct watch *w = s->data;
    uv_fs_event_stop(&w->ev);
    uv_close((uv_handle_t *)&w->ev, on_close);
    uv_close((uv_handle_t *)&w->scan, on_close);
    uv_close((uv_handle_t *)&w->kick, on_close);
    uv_close((uv_handle_t *)&w->sigint, on_close);
    uv_close((uv_handle_t *)&w->sigterm, on_close);
}

static int run_watch(struct adapt *a, const char *dir, bool jsonl, int64_t scan_ms,
                     int64_t settle_ms)
{
    char sub[4096];
    for (int i = 0; i < 2; i++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, i ? "failed" : "done");
        if (mkdir(sub, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "adapt: watch: cannot create %s: %s\n", sub, strerror(errno));
            return 2;
        }
    }
    struct watch w = {.a = a, .dir = dir, .jsonl = jsonl, .scan_ms = scan_ms,
                      .settle_ms = settle_ms};
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "adapt: watch: cannot start the event loop\n");
        return 2;
    }
    w.loop = &loop;
    uv_fs_event_init(&loop, &w.ev);
    uv_timer_init(&loop, &w.scan);
    uv_timer_init(&loop, &w.kick);
    uv_signal_init(&loop, &w.sigint);
    uv_signal_init(&loop, &w.sigterm);
    w.ev.data = w.scan.data = w.kick.data = w.sigint.data = w.sigterm.data = &w;
    int rc = uv_fs_event_start(&w.ev, on_fs_event, dir, 0);
    if (rc != 0)
        fprintf(stderr, "adapt: watch: no file events for %s (%s): rescanning every %lld ms\n",
                dir, uv_strerror(rc), (long long)scan_ms);
    uv_timer_start(&w.scan, on_scan_timer, 0, (uint64_t)scan_ms);
    uv_signal_start(&w.sigint, on_signal, SIGINT);
    uv_signal_start(&w.sigterm, on_signal, SIGTERM);
    if (!a->quiet)
        fprintf(stderr, "adapt: watching %s (done/ and failed/ next to it)\n", dir);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    for (size_t i = 0; i < w.nseen; i++)
        free(w.seen[i].name);
    free(w.seen);
    if (!a->quiet)
        fprintf(stderr, "adapt: watch stopped\n");
    return 0;
}

/* ---- main -------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int lt_cmd_adapt(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"mapping", required_argument, NULL, 'm'},
        {"dry-run", no_argument, NULL, 'n'},
        {"batch", required_argument, NULL, 'b'},
        {"report", required_argument, NULL, 'r'},
        {"watch", required_argument, NULL, 'w'},
        {"report-format", required_argument, NULL, 'F'},
        {"scan-ms", required_argument, NULL, 'S'},
        {"settle-ms", required_argument, NULL, 'T'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cfg_path = NULL, *map_path = NULL, *report_path = NULL, *watch_dir = NULL;
    const char *rformat = "csv";
    uint64_t batch = 64, scan_ms = 2000, settle_ms = 1000;
    bool dry = false, quiet = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:m:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': cfg_path = optarg; break;
        case 'm': map_path = optarg; break;
        case 'n': dry = true; break;
        case 'r': report_path = optarg; break;
        case 'w': watch_dir = optarg; break;
        case 'F': rformat = optarg; break;
        case 'q': quiet = true; break;
        case 'b':
            if (!lt_tool_parse_u64(optarg, 1, LT_ENV_BATCH_MAX, &batch)) {
                fprintf(stderr, "adapt: --batch takes 1..%d\n", LT_ENV_BATCH_MAX);
                return 2;
            }
            break;
        case 'S':
        case 'T':
            if (!lt_tool_parse_u64(optarg, opt == 'S' ? 10 : 0, 3600000,
                                   opt == 'S' ? &scan_ms : &settle_ms)) {
                fprintf(stderr, "adapt: bad %s\n", opt == 'S' ? "--scan-ms" : "--settle-ms");
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (cfg_path == NULL || map_path == NULL || (watch_dir == NULL && optind >= argc) ||
        (watch_dir != NULL && (optind < argc || dry || report_path)) ||
        (strcmp(rformat, "csv") != 0 && strcmp(rformat, "jsonl") != 0)) {
        usage(stderr);
        return 2;
    }
    lt_why why;
    lt_mapping *m = NULL;
    if (lt_mapping_load(map_path, &m, &why) != LT_OK) {
        fprintf(stderr, "adapt: %s\n", why.msg);
        return 2;
    }
    struct adapt a = {.m = m, .batch = (size_t)batch, .dry_run = dry, .quiet = quiet,
                      .tty = isatty(STDERR_FILENO) == 1};
    lt_tool_conn tc = {0};
    lt_agency_config *cfg = NULL;
    int rc = 0;
    if (dry) {
        if (lt_agency_config_load(cfg_path, &cfg, &why) != LT_OK) {
            fprintf(stderr, "adapt: %s\n", why.msg);
            rc = 2;
            goto out;
        }
        a.agency = cfg->id;
    } else {
        lt_client_opts co = {0};
        if (lt_tool_connect(cfg_path, NULL, &co, false, &tc, &why) != LT_OK) {
            fprintf(stderr, "adapt: %s\n", why.msg);
            rc = 2;
            goto out;
        }
        a.agency = tc.cfg->id;
        a.signer = tc.signer;
        a.client = tc.client;
    }
    if (watch_dir) {
        rc = run_watch(&a, watch_dir, strcmp(rformat, "jsonl") == 0, (int64_t)scan_ms,
                       (int64_t)settle_ms);
        goto out;
    }
    struct report rep;
    if (!report_open(&rep, report_path,
                     report_path && (ends_with(report_path, ".json") ||
                                     ends_with(report_path, ".jsonl")))) {
        fprintf(stderr, "adapt: cannot write %s: %s\n", report_path, strerror(errno));
        rc = 2;
        goto out;
    }
    for (int i = optind; i < argc; i++)
        if (!adapt_file(&a, argv[i], argv[i], &rep))
            rc = 1;
    if (dry)
        fflush(stdout);
    if (!report_close(&rep)) {
        fprintf(stderr, "adapt: cannot write %s\n", report_path);
        rc = rc ? rc : 1;
    }
out:
    free(a.pend);
    lt_tool_disconnect(&tc); /* runs the orphans' callbacks: then they can go */
    while (a.orphans != NULL) {
        struct pending *p = a.orphans;
        a.orphans = p->next_orphan;
        free(p->env);
        free(p);
    }
    lt_agency_config_destroy(&cfg);
    lt_mapping_destroy(&m);
    return rc;
}
