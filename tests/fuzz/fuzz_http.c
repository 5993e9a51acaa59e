/*
 * fuzz_http.c - raw bytes into the admin server's request handling (lt_admin_session),
 * no socket. The input is fed in two pieces split at a point taken from its first byte,
 * so requests cut mid-header (as TCP delivers them) are covered too. The token and a few
 * agencies and queues are set up once, so authenticated routes are reachable.
 */
#include "admin.h"
#include "metrics.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lt_metrics *metrics;
static lt_admin *admin;

static void init(void)
{
    if (admin)
        return;
    if (lt_metrics_new(16, 16, &metrics) != LT_OK)
        abort();
    int a = lt_metrics_agency(metrics, "VN:GOV:000.00.00.H29:hotich", "Hộ tịch");
    int q = lt_metrics_queue(metrics, "dancu.capnhat");
    lt_metrics_on_publish(metrics, a, 10);
    lt_metrics_on_nack(metrics, a, LT_ESIG);
    lt_metrics_on_deliver(metrics, q, true);
    lt_metrics_note_rejection(metrics, "VN:GOV:x", "t", "00", LT_EACL, "denied");
    lt_admin_config cfg;
    lt_admin_config_defaults(&cfg);
    cfg.token = "fuzz-token-0123456789";
    cfg.max_header_bytes = 2048;
    cfg.max_body_bytes = 256;
    if (lt_admin_new(&cfg, metrics, NULL, &admin, NULL) != LT_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    lt_admin_session *s;
    if (lt_admin_session_new(admin, &s) != LT_OK)
        return 0;
    size_t cut = size ? data[0] % (size + 1) : 0;
    lt_metrics_buf out = {0};
    bool open = lt_admin_session_feed(s, (const char *)data, cut, &out);
    if (open)
        open = lt_admin_session_feed(s, (const char *)data + cut, size - cut, &out);
    /* whatever came in, what goes out is HTTP responses */
    assert(out.len == 0 || memcmp(out.data, "HTTP/1.1 ", 9) == 0);
    if (!open)
        assert(!lt_admin_session_feed(s, "GET / HTTP/1.1\r\n\r\n", 18, &out));
    lt_metrics_buf_fini(&out);
    lt_admin_session_destroy(&s);
    return 0;
}
