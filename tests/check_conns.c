/* Tests of od_conns: head deadlines and slot eviction, on socket pairs with explicit times, then
 * end to end against the real binary (a trickling head, a flood of idle connections). */
#include "od_conns.h"
#include "od_suites.h"
#include "od_test_util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define T0 apr_time_from_sec(1000)
#define SEC(n) apr_time_from_sec(n)

typedef struct pair_t {
    int ours;   /* the "server" side, tracked */
    int client; /* the peer, which sees a shutdown as the end of the stream */
} pair_t;

static pair_t pair_make(void)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    return (pair_t){sv[0], sv[1]};
}

/* Whether the peer of @p p saw the end of the stream within @p ms. */
static int was_shut(const pair_t *p, int ms)
{
    struct pollfd pfd = {.fd = p->client, .events = POLLIN};
    char c;

    return poll(&pfd, 1, ms) == 1 && recv(p->client, &c, 1, MSG_DONTWAIT) == 0;
}

static od_conns_t *conns_make(int max, int reserve)
{
    od_conns_t *c = NULL;
    od_log_t *log = NULL;
    od_conns_options_t o = {max, reserve, SEC(10), SEC(30)};

    od_log_create(&log, OD_LOG_ERROR, stderr, od_test_pool);
    ck_assert_int_eq(od_conns_create(&c, &o, log, od_test_pool), APR_SUCCESS);
    return c;
}

START_TEST(test_conns_first_head_deadline)
{
    od_conns_t *c = conns_make(100, 1);
    pair_t slow = pair_make(), quick = pair_make();
    od_conns_entry_t *e = od_conns_open(c, slow.ours, T0);
    od_conns_entry_t *q = od_conns_open(c, quick.ours, T0);
    od_conns_stats_t st;

    od_conns_busy(c, q); /* its head arrived in time */
    ck_assert_int_eq(od_conns_sweep(c, T0 + SEC(10)), 0);
    ck_assert(!was_shut(&slow, 0));
    ck_assert_int_eq(od_conns_sweep(c, T0 + SEC(10) + 1), 1);
    ck_assert(was_shut(&slow, 1000));
    ck_assert(!was_shut(&quick, 0));
    od_conns_stats(c, &st);
    ck_assert_uint_eq(st.head_timeouts, 1);
    ck_assert_uint_eq(st.open, 2); /* until libmicrohttpd closes it */
    od_conns_close(c, e);
    od_conns_close(c, q);
    od_conns_stats(c, &st);
    ck_assert_uint_eq(st.open, 0);
}
END_TEST

START_TEST(test_conns_keepalive_head_bounded)
{
    od_conns_t *c = conns_make(100, 1);
    pair_t p = pair_make();
    od_conns_entry_t *e = od_conns_open(c, p.ours, T0);

    od_conns_busy(c, e);
    od_conns_idle(c, e, T0 + SEC(1));
    /* Idle is libmicrohttpd's to time out (30 s); a next head trickling in gets 10 s more. */
    ck_assert_int_eq(od_conns_sweep(c, T0 + SEC(1) + SEC(40)), 0);
    ck_assert_int_eq(od_conns_sweep(c, T0 + SEC(1) + SEC(40) + 1), 1);
    ck_assert(was_shut(&p, 1000));
}
END_TEST

START_TEST(test_conns_busy_never_shut)
{
    od_conns_t *c = conns_make(2, 1);
    pair_t a = pair_make(), b = pair_make();
    od_conns_entry_t *ea = od_conns_open(c, a.ours, T0), *eb = od_conns_open(c, b.ours, T0);

    od_conns_busy(c, ea);
    od_conns_busy(c, eb);
    /* At the limit, for hours: a request being served is never cut. */
    ck_assert_int_eq(od_conns_sweep(c, T0 + SEC(3600)), 0);
    ck_assert(!was_shut(&a, 0));
    ck_assert(!was_shut(&b, 0));
}
END_TEST

START_TEST(test_conns_at_limit_idle_evicted_keepalive_first)
{
    od_conns_t *c = conns_make(5, 1);
    pair_t ka1 = pair_make(), ka2 = pair_make(), fresh = pair_make(), old = pair_make();
    pair_t busy = pair_make();
    od_conns_stats_t st;

    od_conns_entry_t *e = od_conns_open(c, ka1.ours, T0);
    od_conns_busy(c, e);
    od_conns_idle(c, e, T0 + SEC(1));
    e = od_conns_open(c, ka2.ours, T0);
    od_conns_busy(c, e);
    od_conns_idle(c, e, T0 + SEC(2));
    od_conns_busy(c, od_conns_open(c, busy.ours, T0));
    od_conns_open(c, old.ours, T0 + SEC(2));
    /* Four of five slots held, one free: that is the reserve, nothing to do. */
    ck_assert_int_eq(od_conns_sweep(c, T0 + SEC(3)), 0);
    od_conns_open(c, fresh.ours, T0 + SEC(3));
    /* No slot free: the keep-alive connections go, and the one that never sent a head for
     * a second; the one that connected just now and the busy one stay. */
    ck_assert_int_eq(od_conns_sweep(c, T0 + SEC(3) + apr_time_from_msec(100)), 3);
    ck_assert(was_shut(&ka1, 1000));
    ck_assert(was_shut(&ka2, 1000));
    ck_assert(was_shut(&old, 1000));
    ck_assert(!was_shut(&fresh, 0));
    ck_assert(!was_shut(&busy, 0));
    od_conns_stats(c, &st);
    ck_assert_uint_eq(st.evicted, 3);
    ck_assert_uint_eq(st.idle, 0);
    /* Shut down connections count as free: no second round for the same pressure. */
    ck_assert_int_eq(od_conns_sweep(c, T0 + SEC(3) + apr_time_from_msec(200)), 0);
}
END_TEST

START_TEST(test_conns_entries_reused_after_close)
{
    od_conns_t *c = conns_make(10, 1);
    pair_t p = pair_make();
    od_conns_stats_t st;

    for (int i = 0; i < 1000; i++) {
        od_conns_entry_t *e = od_conns_open(c, p.ours, T0);
        od_conns_busy(c, e);
        od_conns_idle(c, e, T0);
        od_conns_close(c, e);
    }
    od_conns_stats(c, &st);
    ck_assert_uint_eq(st.open, 0);
    ck_assert_uint_eq(st.idle, 0);
    /* NULL entries (a connection that could not be tracked) are ignored. */
    od_conns_busy(c, NULL);
    od_conns_idle(c, NULL, T0);
    od_conns_close(c, NULL);
    ck_assert_ptr_null(od_conns_open(NULL, p.ours, T0));
}
END_TEST

START_TEST(test_conns_thread_sweeps_on_its_own)
{
    od_conns_t *c = conns_make(100, 1);
    pair_t p = pair_make();

    /* Connected eleven seconds ago: overdue for the 10 s head deadline. */
    od_conns_open(c, p.ours, apr_time_now() - SEC(11));
    ck_assert_int_eq(od_conns_start(c), APR_SUCCESS);
    ck_assert(was_shut(&p, 5 * OD_CONNS_SWEEP_MS));
    od_conns_stop(c);
    od_conns_stop(c); /* idempotent */
}
END_TEST

/* ---- end to end ---- */

/* Whether the server ended @p fd (end of stream or reset) within @p ms. */
static int ended(int fd, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char buf[256];

    return poll(&pfd, 1, ms) == 1 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0;
}

static long healthz_status(od_test_env_t *env, long timeout_ms)
{
    od_test_request_t req = {.method = "GET", .path = "/healthz", .timeout_ms = timeout_ms};
    od_test_response_t resp;

    od_test_http(env, &req, &resp);
    long status = resp.status;
    od_test_response_free(&resp);
    return status;
}

#define TRICKLERS 20

/* Slowloris: each connection sends a byte of its head every 300 ms, which resets an idle
 * timeout for ever; header_timeout_s ends them all the same. */
START_TEST(test_conns_trickling_heads_cut_at_header_timeout)
{
    od_test_env_t *env = od_test_env_create(NULL);
    int fds[TRICKLERS];

    ck_assert_int_eq(od_test_env_write_config(env, "header_timeout_s = 2\n"
                                                   "connection_timeout_s = 30\n"),
                     0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    for (int i = 0; i < TRICKLERS; i++) {
        fds[i] = od_test_connect_from("127.0.0.2", od_test_server_port(env));
        ck_assert_int_ge(fds[i], 0);
        const char *head = "GET /healthz HTTP/1.1\r\nX-Slow: ";
        ck_assert_int_gt(send(fds[i], head, strlen(head), MSG_NOSIGNAL), 0);
    }
    int open = TRICKLERS;
    for (int tick = 0; tick < 14 && open > 0; tick++) { /* 4.2 s at most */
        open = 0;
        for (int i = 0; i < TRICKLERS; i++) {
            open += fds[i] >= 0 && send(fds[i], "a", 1, MSG_NOSIGNAL) == 1 && !ended(fds[i], 0);
        }
        od_test_sleep_ms(300);
        /* Others are served meanwhile. */
        ck_assert_int_eq(healthz_status(env, 2000), 200);
    }
    ck_assert_msg(open == 0, "%d trickling connections still open after 4 s", open);
    ck_assert_int_eq(
        od_test_metric(env, "orderd_http_connections_closed_total{reason=\"header_timeout\"}"),
        TRICKLERS);
    for (int i = 0; i < TRICKLERS; i++) {
        close(fds[i]);
    }
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
    od_test_env_destroy(env);
}
END_TEST

#define FLOOD_LIMIT 100
#define FLOOD 120

/* More idle connections than max_connections, from four addresses, none sending a byte: a new
 * client is still served promptly, not after connection_timeout_s. */
START_TEST(test_conns_idle_flood_new_client_served)
{
    od_test_env_t *env = od_test_env_create(NULL);
    int fds[FLOOD];
    char conf[256];

    snprintf(conf, sizeof(conf),
             "max_connections = %d\nmax_connections_per_ip = 0\nconnection_timeout_s = 30\n",
             FLOOD_LIMIT);
    ck_assert_int_eq(od_test_env_write_config(env, conf), 0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    for (int i = 0; i < FLOOD; i++) {
        char source[16];
        snprintf(source, sizeof(source), "127.0.0.%d", 2 + i % 4);
        fds[i] = od_test_connect_from(source, od_test_server_port(env)); /* backlog takes them */
    }
    od_test_sleep_ms(300);
    /* Without eviction this waits for the 30 s idle timeout; 2 s bounds "within a second"
     * with room for a loaded machine. */
    ck_assert_int_eq(healthz_status(env, 2000), 200);
    int evicted = 0;
    for (int i = 0; i < FLOOD; i++) {
        evicted += fds[i] < 0 || ended(fds[i], 0);
        close(fds[i]);
    }
    ck_assert_int_ge(evicted, FLOOD - FLOOD_LIMIT);
    ck_assert_int_ge(
        od_test_metric(env, "orderd_http_connections_closed_total{reason=\"evicted\"}"),
        FLOOD - FLOOD_LIMIT);
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
    od_test_env_destroy(env);
}
END_TEST

Suite *od_conns_suite(void)
{
    Suite *s = suite_create("conns");
    TCase *tc = tcase_create("deadlines");

    tcase_add_checked_fixture(tc, od_test_pool_setup, od_test_pool_teardown);
    tcase_add_test(tc, test_conns_first_head_deadline);
    tcase_add_test(tc, test_conns_keepalive_head_bounded);
    tcase_add_test(tc, test_conns_busy_never_shut);
    tcase_add_test(tc, test_conns_at_limit_idle_evicted_keepalive_first);
    tcase_add_test(tc, test_conns_entries_reused_after_close);
    tcase_add_test(tc, test_conns_thread_sweeps_on_its_own);
    suite_add_tcase(s, tc);
    TCase *e2e = tcase_create("e2e");
    tcase_set_timeout(e2e, 60);
    tcase_add_test(e2e, test_conns_trickling_heads_cut_at_header_timeout);
    tcase_add_test(e2e, test_conns_idle_flood_new_client_served);
    suite_add_tcase(s, e2e);
    return s;
}
