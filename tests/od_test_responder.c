/*
 * od_test_responder: a slow HTTP/1.1 responder for concurrency tests.
 *
 * One accept thread and one thread per connection (at most OD_RESP_CONNS). Every wait is a poll()
 * of at most OD_RESP_SLICE_MS, so each thread notices a stop within that slice; the stop joins
 * them all, and each closes its own socket.
 */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* strcasestr */
#endif

#include "od_test_responder.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define OD_RESP_CONNS 256
#define OD_RESP_SLICE_MS 100
#define OD_RESP_GATHER_MS 5000L
#define OD_RESP_MAX (4 * 1024 * 1024) /* the largest request taken */

struct od_test_responder_s {
    int lfd;
    char url[64];
    long delay_ms;
    int gather;
    od_test_responder_fn *answer;
    void *baton;
    atomic_int stop;
    atomic_uint requests;
    atomic_uint in_flight;
    atomic_uint peak;
    atomic_int gathered;
    pthread_t acceptor;
    pthread_mutex_t lock; /* guards conns and nconns */
    pthread_t conns[OD_RESP_CONNS];
    int nconns;
};

/* One connection's thread argument. */
typedef struct od_resp_conn_t {
    od_test_responder_t *r;
    int fd;
} od_resp_conn_t;

static void od_resp_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits until @p fd is readable; 0 on a stop. */
static int od_resp_wait(od_test_responder_t *r, int fd)
{
    struct pollfd pfd = {fd, POLLIN, 0};

    while (!atomic_load(&r->stop)) {
        if (poll(&pfd, 1, OD_RESP_SLICE_MS) > 0) {
            return 1;
        }
    }
    return 0;
}

/* Reads one request into @p buf; returns where its body starts (its length in *len), or NULL at
 * EOF, on a stop or a request too large. */
static char *od_resp_read(od_test_responder_t *r, int fd, char *buf, size_t *len)
{
    size_t have = 0, want = 0;
    char *body = NULL;

    while ((want == 0 || have < want) && have < OD_RESP_MAX - 1 && od_resp_wait(r, fd)) {
        ssize_t got = recv(fd, buf + have, OD_RESP_MAX - 1 - have, 0);
        if (got <= 0) {
            return NULL;
        }
        have += (size_t) got;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "\r\nContent-Length:");
        if (end != NULL && want == 0) {
            body = end + 4;
            want = (size_t) (body - buf) + (cl != NULL ? strtoul(cl + 17, NULL, 10) : 0);
        }
    }
    if (want == 0 || have < want) {
        return NULL;
    }
    *len = want - (size_t) (body - buf);
    body[*len] = '\0';
    return body;
}

/* Counts a request in; until `gather` were held at once, waits (bounded) for that. */
static void od_resp_enter(od_test_responder_t *r)
{
    unsigned int now = atomic_fetch_add(&r->in_flight, 1) + 1;
    unsigned int seen = atomic_load(&r->peak);
    long waited = 0;

    atomic_fetch_add(&r->requests, 1);
    while (now > seen && !atomic_compare_exchange_weak(&r->peak, &seen, now)) {
    }
    while (r->gather > 1 && !atomic_load(&r->gathered) && !atomic_load(&r->stop)) {
        if (atomic_load(&r->in_flight) >= (unsigned int) r->gather || waited >= OD_RESP_GATHER_MS) {
            atomic_store(&r->gathered, 1);
        } else {
            od_resp_sleep_ms(1);
            waited++;
        }
    }
}

/* Head and body in one send: two would meet Nagle's algorithm and the client's delayed ACK, and
 * every answer would take 40 ms more than the delay asked for. */
static int od_resp_send(int fd, const char *answer)
{
    const char *body = answer != NULL ? answer : "{}";
    size_t len = strlen(body), cap = len + 160;
    char *msg = malloc(cap);

    if (msg == NULL) {
        return 0;
    }
    int n = snprintf(msg, cap,
                     "HTTP/1.1 %s\r\nContent-Type: application/x-amz-json-1.0\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     answer != NULL ? "200 OK" : "500 Internal Server Error", len, body);
    int ok = n > 0 && (size_t) n < cap && send(fd, msg, (size_t) n, MSG_NOSIGNAL) == n;
    free(msg);
    return ok;
}

static void *od_resp_conn_main(void *arg)
{
    od_resp_conn_t c = *(od_resp_conn_t *) arg;
    od_test_responder_t *r = c.r;
    char *buf = malloc(OD_RESP_MAX);
    char *body;
    size_t len = 0;

    free(arg);
    while (buf != NULL && (body = od_resp_read(r, c.fd, buf, &len)) != NULL) {
        od_resp_enter(r);
        od_resp_sleep_ms(r->delay_ms);
        char *answer = r->answer(r->baton, body, len);
        atomic_fetch_sub(&r->in_flight, 1);
        int sent = od_resp_send(c.fd, answer);
        free(answer);
        if (!sent) {
            break;
        }
    }
    free(buf);
    close(c.fd);
    return NULL;
}

/* Starts a connection's thread; a connection beyond OD_RESP_CONNS is closed (the client sees a
 * failed call, and the test with it). */
static void od_resp_add_conn(od_test_responder_t *r, int fd)
{
    od_resp_conn_t *c = malloc(sizeof(*c));

    pthread_mutex_lock(&r->lock);
    if (c != NULL && r->nconns < OD_RESP_CONNS) {
        *c = (od_resp_conn_t){r, fd};
        if (pthread_create(&r->conns[r->nconns], NULL, od_resp_conn_main, c) == 0) {
            r->nconns++;
            c = NULL;
            fd = -1;
        }
    }
    pthread_mutex_unlock(&r->lock);
    free(c);
    if (fd >= 0) {
        close(fd);
    }
}

static void *od_resp_accept_main(void *arg)
{
    od_test_responder_t *r = arg;

    while (od_resp_wait(r, r->lfd)) {
        int fd = accept(r->lfd, NULL, NULL);
        if (fd >= 0) {
            od_resp_add_conn(r, fd);
        }
    }
    return NULL;
}

od_test_responder_t *od_test_responder_start(long delay_ms, int gather,
                                             od_test_responder_fn *answer, void *baton)
{
    od_test_responder_t *r = calloc(1, sizeof(*r));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);

    ck_assert_ptr_nonnull(r);
    r->delay_ms = delay_ms;
    r->gather = gather;
    r->answer = answer;
    r->baton = baton;
    pthread_mutex_init(&r->lock, NULL);
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(r->lfd, 0);
    ck_assert_int_eq(bind(r->lfd, (struct sockaddr *) &a, sizeof(a)), 0);
    ck_assert_int_eq(listen(r->lfd, 128), 0);
    ck_assert_int_eq(getsockname(r->lfd, (struct sockaddr *) &a, &alen), 0);
    snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    ck_assert_int_eq(pthread_create(&r->acceptor, NULL, od_resp_accept_main, r), 0);
    return r;
}

const char *od_test_responder_url(const od_test_responder_t *r)
{
    return r->url;
}

unsigned int od_test_responder_requests(od_test_responder_t *r)
{
    return atomic_load(&r->requests);
}

unsigned int od_test_responder_max_in_flight(od_test_responder_t *r)
{
    return atomic_load(&r->peak);
}

void od_test_responder_stop(od_test_responder_t *r)
{
    if (r == NULL) {
        return;
    }
    atomic_store(&r->stop, 1);
    pthread_join(r->acceptor, NULL);
    /* The acceptor has ended: nconns no longer changes. */
    for (int i = 0; i < r->nconns; i++) {
        pthread_join(r->conns[i], NULL);
    }
    close(r->lfd);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
