/*
 * Tests of od_fanout: every index runs exactly once, the number of calls running at once reaches
 * the bound and never exceeds it (counted inside the calls), empty runs, and concurrent callers
 * sharing one fanout. Nothing here asserts on time: waits are bounded, and a wait that runs out
 * shows as a count that is too low.
 */
#include "od_fanout.h"
#include "od_suites.h"

#include <apr_atomic.h>
#include <apr_thread_proc.h>
#include <stdio.h>

#define FANOUT_WAIT_FOR_PEAK apr_time_from_sec(10)
#define FANOUT_CALLERS 4

/* What the calls of a test share: per-index counts, and how many run at once. */
typedef struct fanout_probe_t {
    volatile apr_uint32_t *ran;    /* per index: how often it ran */
    volatile apr_uint32_t running; /* calls running now (over every caller of the fanout) */
    volatile apr_uint32_t peak;    /* the most seen running at once */
    volatile apr_uint32_t peaked;  /* 1 once running reached want (or the wait ran out) */
    apr_uint32_t want;             /* the peak the first calls wait for (0: none) */
    apr_interval_time_t sleep;     /* each call sleeps this long while counted as running */
} fanout_probe_t;

static od_fanout_t *fanout_make(int max)
{
    od_log_t *log = NULL;
    od_fanout_t *f = NULL;

    ck_assert_int_eq(od_log_create(&log, OD_LOG_ERROR, stderr, od_test_pool), APR_SUCCESS);
    ck_assert_int_eq(od_fanout_create(&f, max, log, od_test_pool), APR_SUCCESS);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(od_fanout_max(f), max);
    return f;
}

static fanout_probe_t *probe_make(int n, apr_uint32_t want, apr_interval_time_t sleep)
{
    fanout_probe_t *pr = apr_pcalloc(od_test_pool, sizeof(*pr));

    pr->ran = apr_pcalloc(od_test_pool, sizeof(*pr->ran) * (apr_size_t) (n > 0 ? n : 1));
    pr->want = want;
    pr->sleep = sleep;
    return pr;
}

static void probe_note_peak(fanout_probe_t *pr, apr_uint32_t now)
{
    apr_uint32_t seen = apr_atomic_read32(&pr->peak);

    while (now > seen && apr_atomic_cas32(&pr->peak, now, seen) != seen) {
        seen = apr_atomic_read32(&pr->peak);
    }
}

/* Until some call has seen want calls running at once, each waits (bounded) for that to happen:
 * so the peak reaches the bound whenever the fanout allows it, however threads are scheduled. */
static void probe_wait_for_peak(fanout_probe_t *pr)
{
    apr_time_t until = apr_time_now() + FANOUT_WAIT_FOR_PEAK;

    while (pr->want > 0 && !apr_atomic_read32(&pr->peaked)) {
        if (apr_atomic_read32(&pr->running) >= pr->want || apr_time_now() >= until) {
            apr_atomic_set32(&pr->peaked, 1);
        } else {
            apr_sleep(apr_time_from_msec(1));
        }
    }
}

static void probe_call(void *baton, int i)
{
    fanout_probe_t *pr = baton;

    probe_note_peak(pr, apr_atomic_inc32(&pr->running) + 1);
    probe_wait_for_peak(pr);
    apr_atomic_inc32(&pr->ran[i]);
    if (pr->sleep > 0) {
        apr_sleep(pr->sleep);
    }
    apr_atomic_dec32(&pr->running);
}

static void assert_each_ran_once(const fanout_probe_t *pr, int n)
{
    for (int i = 0; i < n; i++) {
        ck_assert_msg(pr->ran[i] == 1, "index %d ran %u times", i, (unsigned) pr->ran[i]);
    }
    ck_assert_uint_eq(pr->running, 0);
}

START_TEST(test_fanout_every_index_once)
{
    od_fanout_t *f = fanout_make(8);
    fanout_probe_t *pr = probe_make(1000, 0, 0);

    od_fanout_run(f, 1000, probe_call, pr);
    assert_each_ran_once(pr, 1000);
    ck_assert_uint_le(pr->peak, 8);
    /* The fanout is reusable: a second run on the same threads. */
    pr = probe_make(37, 0, 0);
    od_fanout_run(f, 37, probe_call, pr);
    assert_each_ran_once(pr, 37);
}
END_TEST

START_TEST(test_fanout_bound_reached_not_exceeded)
{
    od_fanout_t *f = fanout_make(4);
    fanout_probe_t *pr = probe_make(40, 4, apr_time_from_msec(3));

    od_fanout_run(f, 40, probe_call, pr);
    assert_each_ran_once(pr, 40);
    ck_assert_uint_eq(pr->peak, 4);
}
END_TEST

START_TEST(test_fanout_fewer_calls_than_threads)
{
    od_fanout_t *f = fanout_make(16);
    fanout_probe_t *pr = probe_make(3, 3, apr_time_from_msec(2));

    od_fanout_run(f, 3, probe_call, pr);
    assert_each_ran_once(pr, 3);
    ck_assert_uint_eq(pr->peak, 3);
}
END_TEST

START_TEST(test_fanout_one_in_flight_is_sequential)
{
    od_fanout_t *f = fanout_make(1);
    fanout_probe_t *pr = probe_make(20, 0, apr_time_from_msec(1));

    od_fanout_run(f, 20, probe_call, pr);
    assert_each_ran_once(pr, 20);
    ck_assert_uint_eq(pr->peak, 1);
}
END_TEST

START_TEST(test_fanout_empty_run)
{
    od_fanout_t *f = fanout_make(4);
    fanout_probe_t *pr = probe_make(1, 0, 0);

    od_fanout_run(f, 0, probe_call, pr);
    od_fanout_run(f, -3, probe_call, pr);
    ck_assert_uint_eq(pr->ran[0], 0);
    ck_assert_uint_eq(pr->peak, 0);
}
END_TEST

/* ---- concurrent callers ---- */

typedef struct fanout_caller_t {
    od_fanout_t *fanout;
    fanout_probe_t *shared; /* running and peak over every caller */
    volatile apr_uint32_t *ran;
    int n;
} fanout_caller_t;

/* Counts into the caller's own ran[], and into the shared running and peak. */
static void caller_call(void *baton, int i)
{
    fanout_caller_t *c = baton;
    fanout_probe_t *pr = c->shared;

    probe_note_peak(pr, apr_atomic_inc32(&pr->running) + 1);
    probe_wait_for_peak(pr);
    apr_atomic_inc32(&c->ran[i]);
    apr_sleep(pr->sleep);
    apr_atomic_dec32(&pr->running);
}

static void *APR_THREAD_FUNC caller_main(apr_thread_t *thread, void *data)
{
    fanout_caller_t *c = data;

    od_fanout_run(c->fanout, c->n, caller_call, c);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

START_TEST(test_fanout_concurrent_callers)
{
    od_fanout_t *f = fanout_make(4);
    fanout_probe_t *shared = probe_make(1, 4, apr_time_from_msec(1));
    fanout_caller_t callers[FANOUT_CALLERS];
    apr_thread_t *threads[FANOUT_CALLERS];
    apr_status_t trv;

    for (int k = 0; k < FANOUT_CALLERS; k++) {
        callers[k] = (fanout_caller_t){f, shared, NULL, 50 + k * 17};
        callers[k].ran =
            apr_pcalloc(od_test_pool, sizeof(apr_uint32_t) * (apr_size_t) callers[k].n);
        ck_assert_int_eq(
            apr_thread_create(&threads[k], NULL, caller_main, &callers[k], od_test_pool),
            APR_SUCCESS);
    }
    for (int k = 0; k < FANOUT_CALLERS; k++) {
        ck_assert_int_eq(apr_thread_join(&trv, threads[k]), APR_SUCCESS);
    }
    for (int k = 0; k < FANOUT_CALLERS; k++) {
        for (int i = 0; i < callers[k].n; i++) {
            ck_assert_msg(callers[k].ran[i] == 1, "caller %d index %d ran %u times", k, i,
                          (unsigned) callers[k].ran[i]);
        }
    }
    ck_assert_uint_eq(shared->running, 0);
    ck_assert_uint_eq(shared->peak, 4); /* the bound holds over all callers together */
}
END_TEST

Suite *od_fanout_suite(void)
{
    Suite *s = suite_create("fanout");
    TCase *tc = tcase_create("run");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fanout_every_index_once);
    tcase_add_test(tc, test_fanout_bound_reached_not_exceeded);
    tcase_add_test(tc, test_fanout_fewer_calls_than_threads);
    tcase_add_test(tc, test_fanout_one_in_flight_is_sequential);
    tcase_add_test(tc, test_fanout_empty_run);
    tcase_add_test(tc, test_fanout_concurrent_callers);
    suite_add_tcase(s, tc);
    return s;
}
