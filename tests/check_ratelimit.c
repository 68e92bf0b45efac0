/* Tests of od_ratelimit: token buckets with explicit times (no sleeping). */
#include "od_ratelimit.h"
#include "od_suites.h"

#include <apr_thread_proc.h>

START_TEST(test_ratelimit_burst_then_refused_with_wait)
{
    od_ratelimit_t *rl = NULL;
    apr_interval_time_t wait = 0;
    apr_time_t t = apr_time_from_sec(1000);

    ck_assert_int_eq(od_ratelimit_create(&rl, od_test_pool), APR_SUCCESS);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(od_ratelimit_take(rl, "a", 2.0, 5, t, &wait), 1);
    }
    ck_assert_int_eq(od_ratelimit_take(rl, "a", 2.0, 5, t, &wait), 0);
    /* One token comes back every 0.5 s at 2/s. */
    ck_assert_int_ge(wait, apr_time_from_msec(499));
    ck_assert_int_le(wait, apr_time_from_msec(501));
    ck_assert_int_eq(od_ratelimit_take(rl, "a", 2.0, 5, t + apr_time_from_msec(499), &wait), 0);
    ck_assert_int_eq(od_ratelimit_take(rl, "a", 2.0, 5, t + apr_time_from_msec(500), &wait), 1);
}
END_TEST

START_TEST(test_ratelimit_callers_separate_and_refill_capped)
{
    od_ratelimit_t *rl = NULL;
    apr_interval_time_t wait = 0;
    apr_time_t t = apr_time_from_sec(1000);

    ck_assert_int_eq(od_ratelimit_create(&rl, od_test_pool), APR_SUCCESS);
    ck_assert_int_eq(od_ratelimit_take(rl, "a", 1.0, 1, t, &wait), 1);
    ck_assert_int_eq(od_ratelimit_take(rl, "a", 1.0, 1, t, &wait), 0);
    ck_assert_int_eq(od_ratelimit_take(rl, "b", 1.0, 1, t, &wait), 1);
    /* An hour idle refills only up to the burst. */
    t += apr_time_from_sec(3600);
    ck_assert_int_eq(od_ratelimit_take(rl, "a", 1.0, 1, t, &wait), 1);
    ck_assert_int_eq(od_ratelimit_take(rl, "a", 1.0, 1, t, &wait), 0);
}
END_TEST

START_TEST(test_ratelimit_zero_rate_is_unlimited)
{
    od_ratelimit_t *rl = NULL;
    apr_interval_time_t wait = 0;

    ck_assert_int_eq(od_ratelimit_create(&rl, od_test_pool), APR_SUCCESS);
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(od_ratelimit_take(rl, "a", 0, 1, apr_time_from_sec(1), &wait), 1);
    }
}
END_TEST

#define RL_THREADS 4
#define RL_TAKES 5000

typedef struct taker_t {
    od_ratelimit_t *rl;
    int allowed;
} taker_t;

static void *APR_THREAD_FUNC take_many(apr_thread_t *th, void *data)
{
    taker_t *t = data;
    apr_interval_time_t wait = 0;

    for (int i = 0; i < RL_TAKES; i++) {
        /* Time frozen: exactly `burst` takes may succeed, across all threads. */
        t->allowed += od_ratelimit_take(t->rl, "shared", 10.0, 1000, apr_time_from_sec(5), &wait);
    }
    apr_thread_exit(th, APR_SUCCESS);
    return NULL;
}

START_TEST(test_ratelimit_concurrent_takes_exact)
{
    od_ratelimit_t *rl = NULL;
    apr_thread_t *th[RL_THREADS];
    taker_t takers[RL_THREADS];
    apr_status_t rv;
    int total = 0;

    ck_assert_int_eq(od_ratelimit_create(&rl, od_test_pool), APR_SUCCESS);
    for (int i = 0; i < RL_THREADS; i++) {
        takers[i] = (taker_t){rl, 0};
        apr_thread_create(&th[i], NULL, take_many, &takers[i], od_test_pool);
    }
    for (int i = 0; i < RL_THREADS; i++) {
        apr_thread_join(&rv, th[i]);
        total += takers[i].allowed;
    }
    ck_assert_int_eq(total, 1000);
}
END_TEST

Suite *od_ratelimit_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("bucket");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_ratelimit_burst_then_refused_with_wait);
    tcase_add_test(tc, test_ratelimit_callers_separate_and_refill_capped);
    tcase_add_test(tc, test_ratelimit_zero_rate_is_unlimited);
    tcase_add_test(tc, test_ratelimit_concurrent_takes_exact);
    suite_add_tcase(s, tc);
    return s;
}
