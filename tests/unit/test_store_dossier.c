/* test_store_dossier.c - the store's dossiers: state and trace written in the open batch (two
 * events of one batch see each other, an abort keeps neither), the deadline index (late
 * dossiers first, closed ones gone), events read back in order with their envelopes, and the
 * refusals (no procedures, bad codes). */
#include "store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct fx {
    char dir[256];
    lt_store *s;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/lt_dossier_XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    lt_why why = {{0}};
    lt_store_opts o = {.dir = f->dir};
    if (lt_store_open(&f->s, &o, &why) != LT_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    lt_store_close(&f->s);
    const char *files[] = {"data.mdb", "lock.mdb", "broker.lock"};
    char p[512];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", f->dir, files[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static lt_dossier_state st_of(const char *step, uint8_t status, int64_t deadline, bool closed)
{
    lt_dossier_state st;
    memset(&st, 0, sizeof st);
    snprintf(st.procedure, sizeof st.procedure, "1.001193");
    snprintf(st.step, sizeof st.step, "%s", step);
    snprintf(st.agency, sizeof st.agency, "VN:GOV:000.00.00.H29.26737:motcua");
    st.status = status;
    st.started_ms = 1000;
    st.step_started_ms = 1000;
    st.step_deadline_ms = deadline;
    st.last_event_ms = 1000;
    st.closed = closed;
    return st;
}

typedef struct seen {
    size_t n;
    uint64_t seqs[8];
    char envs[8][16];
    char codes[8][64];
} seen;

static int on_event(void *arg, const lt_store_dossier_event *e)
{
    seen *s = arg;
    s->seqs[s->n] = e->seq;
    snprintf(s->envs[s->n], sizeof s->envs[0], "%.*s", (int)e->env_len, (const char *)e->env);
    s->n++;
    return 0;
}

static int on_due(void *arg, const char *code, const lt_dossier_state *st)
{
    (void)st;
    seen *s = arg;
    snprintf(s->codes[s->n++], sizeof s->codes[0], "%s", code);
    return 0;
}

static void without_procedures_the_dossier_calls_say_so(void **state)
{
    fx *f = *state;
    lt_why why = {{0}};
    lt_dossier_state st;
    assert_int_equal(lt_store_dossier_read(f->s, "x", &st, NULL, NULL, &why), LT_ENOTFOUND);
    assert_non_null(strstr(why.msg, "no procedures"));
    assert_int_equal(lt_store_dossier_due(f->s, 0, 0, on_due, NULL, &why), LT_ENOTFOUND);
}

static void two_events_of_one_batch_see_each_other_and_an_abort_keeps_neither(void **state)
{
    fx *f = *state;
    lt_why why = {{0}};
    assert_int_equal(lt_store_dossier_open(f->s, &why), LT_OK);
    lt_dossier_state a = st_of("tiep_nhan", 1, 5000, false), b = st_of("tiep_nhan", 2, 5000, false);
    lt_store_dossier_ev e1 = {.seq = 7, .event_ms = 1000, .stored_ms = 1001, .env = (const uint8_t *)"env-one", .env_len = 7};
    lt_store_dossier_ev e2 = {.seq = 9, .event_ms = 1100, .stored_ms = 1101, .env = (const uint8_t *)"env-two", .env_len = 7};
    lt_dossier_state got;

    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_dossier_get(f->s, "D-1", &got, &why), LT_ENOTFOUND);
    assert_int_equal(lt_store_dossier_put(f->s, "D-1", NULL, &a, &e1, &why), LT_OK);
    assert_int_equal(lt_store_dossier_get(f->s, "D-1", &got, &why), LT_OK);
    assert_int_equal(got.status, 1);
    assert_int_equal(lt_store_dossier_put(f->s, "D-1", &got, &b, &e2, &why), LT_OK);
    lt_store_abort(f->s);
    lt_dossier_state st;
    assert_int_equal(lt_store_dossier_read(f->s, "D-1", &st, NULL, NULL, &why), LT_ENOTFOUND);

    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_dossier_put(f->s, "D-1", NULL, &a, &e1, &why), LT_OK);
    assert_int_equal(lt_store_dossier_get(f->s, "D-1", &got, &why), LT_OK);
    assert_int_equal(lt_store_dossier_put(f->s, "D-1", &got, &b, &e2, &why), LT_OK);
    assert_int_equal(lt_store_commit(f->s, &why), LT_OK);

    seen s = {0};
    assert_int_equal(lt_store_dossier_read(f->s, "D-1", &st, on_event, &s, &why), LT_OK);
    assert_int_equal(st.status, 2);
    assert_string_equal(st.step, "tiep_nhan");
    assert_string_equal(st.agency, "VN:GOV:000.00.00.H29.26737:motcua");
    assert_int_equal(s.n, 2);
    assert_int_equal(s.seqs[0], 7);
    assert_int_equal(s.seqs[1], 9);
    assert_string_equal(s.envs[0], "env-one");
    assert_string_equal(s.envs[1], "env-two");
    /* a code that is a prefix of another reads only its own events */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    lt_store_dossier_ev e3 = {.seq = 11, .event_ms = 1200, .stored_ms = 1201, .env = (const uint8_t *)"env-3", .env_len = 5};
    assert_int_equal(lt_store_dossier_put(f->s, "D-10", NULL, &a, &e3, &why), LT_OK);
    assert_int_equal(lt_store_commit(f->s, &why), LT_OK);
    memset(&s, 0, sizeof s);
    assert_int_equal(lt_store_dossier_read(f->s, "D-1", &st, on_event, &s, &why), LT_OK);
    assert_int_equal(s.n, 2);
}

static void the_deadline_index_lists_open_dossiers_earliest_first(void **state)
{
    fx *f = *state;
    lt_why why = {{0}};
    assert_int_equal(lt_store_dossier_open(f->s, &why), LT_OK);
    lt_store_dossier_ev ev = {.seq = 1, .env = (const uint8_t *)"e", .env_len = 1};
    lt_dossier_state late = st_of("a", 4, 2000, false), soon = st_of("a", 4, 9000, false),
                     far = st_of("a", 4, 90000, false), none = st_of("a", 4, INT64_MAX, false);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_dossier_put(f->s, "SOON", NULL, &soon, &ev, &why), LT_OK);
    ev.seq = 2;
    assert_int_equal(lt_store_dossier_put(f->s, "LATE", NULL, &late, &ev, &why), LT_OK);
    ev.seq = 3;
    assert_int_equal(lt_store_dossier_put(f->s, "FAR", NULL, &far, &ev, &why), LT_OK);
    ev.seq = 4;
    assert_int_equal(lt_store_dossier_put(f->s, "NONE", NULL, &none, &ev, &why), LT_OK);
    assert_int_equal(lt_store_commit(f->s, &why), LT_OK);
    seen s = {0};
    assert_int_equal(lt_store_dossier_due(f->s, 10000, 0, on_due, &s, &why), LT_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.codes[0], "LATE");
    assert_string_equal(s.codes[1], "SOON");
    /* LATE moves on to a later deadline, SOON closes: both leave the early part */
    lt_dossier_state late2 = st_of("b", 4, 50000, false), closed = st_of("a", 10, 9000, true);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    ev.seq = 5;
    assert_int_equal(lt_store_dossier_put(f->s, "LATE", &late, &late2, &ev, &why), LT_OK);
    ev.seq = 6;
    assert_int_equal(lt_store_dossier_put(f->s, "SOON", &soon, &closed, &ev, &why), LT_OK);
    assert_int_equal(lt_store_commit(f->s, &why), LT_OK);
    memset(&s, 0, sizeof s);
    assert_int_equal(lt_store_dossier_due(f->s, INT64_MAX, 0, on_due, &s, &why), LT_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.codes[0], "LATE");
    assert_string_equal(s.codes[1], "FAR");
    memset(&s, 0, sizeof s);
    assert_int_equal(lt_store_dossier_due(f->s, INT64_MAX, 1, on_due, &s, &why), LT_OK);
    assert_int_equal(s.n, 1);
}

static void bad_codes_and_calls_outside_a_batch_are_refused(void **state)
{
    fx *f = *state;
    lt_why why = {{0}};
    assert_int_equal(lt_store_dossier_open(f->s, &why), LT_OK);
    lt_dossier_state st = st_of("a", 2, 1, false);
    lt_store_dossier_ev ev = {.seq = 1, .env = (const uint8_t *)"e", .env_len = 1};
    char longcode[LT_PROC_DOSSIER_MAX + 2];
    memset(longcode, 'x', sizeof longcode - 1);
    longcode[sizeof longcode - 1] = '\0';
    assert_int_not_equal(lt_store_dossier_put(f->s, "D", NULL, &st, &ev, &why), LT_OK); /* no batch */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_dossier_open(f->s, &why), LT_EAGAIN); /* inside a batch */
    assert_int_equal(lt_store_dossier_put(f->s, "", NULL, &st, &ev, &why), LT_EINVAL);
    assert_int_equal(lt_store_dossier_put(f->s, longcode, NULL, &st, &ev, &why), LT_EINVAL);
    assert_int_equal(lt_store_dossier_get(f->s, longcode, &st, &why), LT_EINVAL);
    lt_store_abort(f->s);
    assert_int_equal(lt_store_dossier_read(f->s, longcode, &st, NULL, NULL, &why), LT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(without_procedures_the_dossier_calls_say_so, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            two_events_of_one_batch_see_each_other_and_an_abort_keeps_neither, setup, teardown),
        cmocka_unit_test_setup_teardown(the_deadline_index_lists_open_dossiers_earliest_first,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(bad_codes_and_calls_outside_a_batch_are_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
