/*
 * The edge, end to end: HTTPS (curl with --cacert; TLS 1.1 refused; a key that does not match
 * the certificate refuses to start), CORS (preflight; other origins get no CORS headers), and
 * slow or abusive clients (slowloris from another loopback address while a normal client is
 * served, oversized headers), and workers blocked on a store that never answers.
 */
#include "od_suites.h"
#include "od_test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <limits.h>
#include <pthread.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

Suite *od_edge_suite(void);

static int sh(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* A self-signed certificate for 127.0.0.1 (and a second, unrelated key) in the env's dir. */
static void make_certs(od_test_env_t *env)
{
    char cmd[PATH_MAX * 2];
    const char *d = od_test_env_dir(env);

    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem "
             "-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null && "
             "openssl genrsa -out other.pem 2048 2>/dev/null",
             d);
    ck_assert_int_eq(sh(cmd), 0);
}

static const char *tls_conf(od_test_env_t *env, const char *key, char *buf, size_t size)
{
    snprintf(buf, size, "tls_cert_file = %s/cert.pem\ntls_key_file = %s/%s\n", od_test_env_dir(env),
             od_test_env_dir(env), key);
    return buf;
}

/* Runs curl against the daemon over HTTPS; returns its exit code, the status in @p code. */
static int curl_https(od_test_env_t *env, const char *opts, char *code)
{
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof(cmd),
             "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 --cacert %s/cert.pem %s "
             "https://127.0.0.1:%d/healthz > %s/code 2>/dev/null",
             od_test_env_dir(env), opts, od_test_server_port(env), od_test_env_dir(env));
    int rc = sh(cmd);
    snprintf(cmd, sizeof(cmd), "%s/code", od_test_env_dir(env));
    FILE *f = fopen(cmd, "r");
    code[0] = '\0';
    if (f != NULL) {
        if (fgets(code, 8, f) == NULL) {
            code[0] = '\0';
        }
        fclose(f);
    }
    return rc;
}

START_TEST(test_edge_https_tls12_13_only)
{
    od_test_env_t *env = od_test_env_create(NULL);
    char conf[PATH_MAX * 2], code[8];

    make_certs(env);
    ck_assert_int_eq(od_test_env_write_config(env, tls_conf(env, "key.pem", conf, sizeof(conf))),
                     0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    ck_assert_int_eq(curl_https(env, "", code), 0);
    ck_assert_str_eq(code, "200");
    ck_assert_int_eq(curl_https(env, "--tlsv1.2 --tls-max 1.2", code), 0);
    ck_assert_str_eq(code, "200");
    ck_assert_int_eq(curl_https(env, "--tlsv1.3", code), 0);
    ck_assert_str_eq(code, "200");
    /* TLS 1.1: the handshake is refused (curl: 35, SSL connect error). */
    ck_assert_int_ne(curl_https(env, "--tlsv1.1 --tls-max 1.1", code), 0);
    ck_assert_str_eq(code, "000");
    /* Plain HTTP on the HTTPS port gets nothing useful. */
    od_test_request_t req = {.method = "GET", .path = "/healthz"};
    od_test_response_t resp;
    od_test_http(env, &req, &resp);
    ck_assert_int_ne(resp.status, 200);
    od_test_response_free(&resp);
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
    od_test_env_destroy(env);
}
END_TEST

START_TEST(test_edge_mismatched_key_refuses_to_start)
{
    od_test_env_t *env = od_test_env_create(NULL);
    char conf[PATH_MAX * 2];

    make_certs(env);
    ck_assert_int_eq(od_test_env_write_config(env, tls_conf(env, "other.pem", conf, sizeof(conf))),
                     0);
    ck_assert_int_eq(od_test_server_start(env), -1);
    char *log = od_test_server_log(env);
    ck_assert_ptr_nonnull(strstr(log, "certificate and key"));
    free(log);
    od_test_env_destroy(env);
}
END_TEST

START_TEST(test_edge_cors_preflight_and_origins)
{
    od_test_env_t *env = od_test_env_create(NULL);
    od_test_response_t resp;

    ck_assert_int_eq(od_test_env_write_config(env, "cors_allowed_origins = https://shop.example, "
                                                   "https://other.example\n"),
                     0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    od_test_request_t pre = {
        .method = "OPTIONS", .path = "/orders", .header = "Origin: https://shop.example"};
    ck_assert_int_eq(od_test_http(env, &pre, &resp), 0);
    ck_assert_int_eq(resp.status, 204);
    ck_assert_str_eq(od_test_response_header(&resp, "Access-Control-Allow-Origin"),
                     "https://shop.example");
    ck_assert_str_eq(od_test_response_header(&resp, "Access-Control-Allow-Methods"), "POST");
    ck_assert_ptr_nonnull(
        strstr(od_test_response_header(&resp, "Access-Control-Allow-Headers"), "X-API-Key"));
    od_test_response_free(&resp);
    /* Another origin: answered, but without any CORS header. */
    pre.header = "Origin: https://evil.example";
    ck_assert_int_eq(od_test_http(env, &pre, &resp), 0);
    ck_assert_ptr_null(od_test_response_header(&resp, "Access-Control-Allow-Origin"));
    od_test_response_free(&resp);
    /* A simple request from an allowed origin carries the headers too. */
    od_test_request_t get = {
        .method = "GET", .path = "/healthz", .header = "Origin: https://other.example"};
    ck_assert_int_eq(od_test_http(env, &get, &resp), 0);
    ck_assert_str_eq(od_test_response_header(&resp, "Access-Control-Allow-Origin"),
                     "https://other.example");
    ck_assert_ptr_nonnull(strstr(od_test_response_header(&resp, "Access-Control-Expose-Headers"),
                                 "Idempotent-Replayed"));
    od_test_response_free(&resp);
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
    od_test_env_destroy(env);
}
END_TEST

/* A connection from 127.0.0.2 (another "client address") that sends the first bytes of a
 * request and then nothing more; -1 if refused. */
static int slow_client(int port)
{
    int fd = od_test_connect_from("127.0.0.2", port);
    const char *part = "POST /orders HTTP/1.1\r\nHost: x\r\nX-Slow: ";

    if (fd >= 0 && send(fd, part, strlen(part), MSG_NOSIGNAL) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Whether the server has closed @p fd (read returns 0 or an error). */
static int closed_by_server(int fd)
{
    char buf[512];
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || n > 0;
}

START_TEST(test_edge_slowloris_others_still_served)
{
    od_test_env_t *env = od_test_env_create(NULL);
    int fds[40], n = 0, refused_or_closed = 0;
    od_test_response_t resp;
    od_test_request_t req = {.method = "POST",
                             .path = "/orders",
                             .body = "{\"customer_id\":\"CUST-000001\",\"currency\":\"EUR\","
                                     "\"items\":[{\"sku\":\"SKU-1\",\"quantity\":1,"
                                     "\"unit_price_cents\":1}]}"};

    req.body_len = strlen(req.body);
    ck_assert_int_eq(od_test_env_write_config(env, "max_connections_per_ip = 8\n"
                                                   "connection_timeout_s = 2\n"),
                     0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    for (int i = 0; i < 40; i++) {
        fds[n] = slow_client(od_test_server_port(env));
        n += fds[n] >= 0;
    }
    od_test_sleep_ms(300);
    for (int i = 0; i < n; i++) {
        refused_or_closed += closed_by_server(fds[i]);
    }
    /* At most 8 from that address stay open; the rest are refused. */
    ck_assert_int_ge(refused_or_closed + (40 - n), 32);
    /* A normal client from 127.0.0.1 is served at once. */
    ck_assert_int_eq(od_test_http(env, &req, &resp), 0);
    ck_assert_int_eq(resp.status, 201);
    od_test_response_free(&resp);
    /* The dribbling ones are dropped by the connection timeout. */
    od_test_sleep_ms(3500);
    int still_open = 0;
    for (int i = 0; i < n; i++) {
        still_open += !closed_by_server(fds[i]);
        close(fds[i]);
    }
    ck_assert_int_eq(still_open, 0);
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
    od_test_env_destroy(env);
}
END_TEST

/* ---- blocked workers ---- */

/* A listener that accepts connections into its backlog and never answers; its URL in @p url. */
static int hang_listener(char *url, size_t size)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &a, &len), 0);
    snprintf(url, size, "http://127.0.0.1:%d", ntohs(a.sin_port));
    return fd;
}

/* Whether a connection waits on listener @p fd within @p ms. */
static int has_pending(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* Sends a complete GET /orders/{id} on a raw connection and leaves the answer unread. */
static int get_order_unread(int port)
{
    struct sockaddr_in dst = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    const char *req = "GET /orders/01ARZ3NDEKTSV4RRFFQ69G5FAV HTTP/1.1\r\nHost: x\r\n\r\n";

    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    dst.sin_port = htons((unsigned short) port);
    ck_assert_int_eq(connect(fd, (struct sockaddr *) &dst, sizeof(dst)), 0);
    ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t) strlen(req));
    return fd;
}

static long post(od_test_env_t *env, const char *body, od_test_response_t *resp)
{
    od_test_request_t req = {.method = "POST", .path = "/orders", .body = body};

    req.body_len = strlen(body);
    int rc = od_test_http(env, &req, resp);
    ck_assert_msg(rc == 0, "POST %s: no complete answer: %s", body, resp->error);
    return resp->status;
}

/* The one worker waits on a DynamoDB endpoint that never answers. What needs no store is still
 * answered at once on the HTTP thread (an invalid order); a new order, which must go through a
 * worker to a blocking store, finds the queue full. */
START_TEST(test_edge_blocked_workers_do_not_delay_validation)
{
    od_test_env_t *env = od_test_env_create(NULL);
    od_test_response_t resp;
    char url[64], conf[512];
    int hang = hang_listener(url, sizeof(url));

    setenv("AWS_ACCESS_KEY_ID", "AKIDEDGE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "x", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    snprintf(conf, sizeof(conf),
             "store = dynamodb\naws_region = us-east-1\ndynamodb_endpoint = %s\n"
             "events_sink = none\naws_max_attempts = 1\naws_request_timeout_ms = 3000\n"
             "worker_threads = 1\nqueue_limit = 1\n",
             url);
    ck_assert_int_eq(od_test_env_write_config(env, conf), 0);
    od_test_env_skip_init_store(env);
    ck_assert_int_eq(od_test_server_start(env), 0);
    /* One GET blocks the worker, the next one fills the queue (queue_limit requests may wait). */
    int blocked = get_order_unread(od_test_server_port(env));
    ck_assert_msg(has_pending(hang, 3000), "the worker never called the store");
    int queued = get_order_unread(od_test_server_port(env));
    od_test_sleep_ms(300);
    struct timeval start, end;
    gettimeofday(&start, NULL);
    ck_assert_int_eq(post(env, "{\"customer_id\":\"x\",\"items\":[]}", &resp), 400);
    ck_assert_ptr_nonnull(strstr(resp.body, "customer_id"));
    od_test_response_free(&resp);
    ck_assert_int_eq(post(env,
                          "{\"customer_id\":\"CUST-000001\",\"currency\":\"EUR\",\"items\":"
                          "[{\"sku\":\"SKU-1\",\"quantity\":1,\"unit_price_cents\":1}]}",
                          &resp),
                     503);
    ck_assert_ptr_nonnull(od_test_response_header(&resp, "Retry-After"));
    od_test_response_free(&resp);
    gettimeofday(&end, NULL);
    long ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_usec - start.tv_usec) / 1000;
    ck_assert_msg(ms < 2000, "answers waited %ld ms for the blocked worker", ms);
    char c;
    ck_assert_int_eq(recv(blocked, &c, 1, MSG_DONTWAIT), -1); /* still in the worker */
    ck_assert_int_eq(recv(queued, &c, 1, MSG_DONTWAIT), -1);
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
    close(queued);
    close(blocked);
    close(hang);
    od_test_env_destroy(env);
}
END_TEST

START_TEST(test_edge_oversized_headers_refused)
{
    od_test_env_t *env = od_test_env_create(NULL);
    od_test_response_t resp;
    char *big = malloc(40000);

    ck_assert_int_eq(od_test_env_write_config(env, "max_header_bytes = 8192\n"), 0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    strcpy(big, "X-Big: ");
    memset(big + 7, 'a', 30000);
    big[30007] = '\0';
    od_test_request_t req = {.method = "GET", .path = "/healthz", .header = big};
    od_test_http(env, &req, &resp);
    ck_assert_msg(resp.status == 431 || resp.status == 413 || resp.status == 0 ||
                      resp.status == 400,
                  "status %ld", resp.status);
    od_test_response_free(&resp);
    /* Still serving. */
    od_test_request_t ok = {.method = "GET", .path = "/healthz"};
    ck_assert_int_eq(od_test_http(env, &ok, &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    od_test_response_free(&resp);
    free(big);
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
    od_test_env_destroy(env);
}
END_TEST

#define LC_THREADS 6

typedef struct lc_client_t {
    od_test_env_t *env;
    int index;
    int created, refused, other;
    char ids[400][32];
} lc_client_t;

/* Posts unique orders until the server stops answering (bounded count). */
static void *lc_post(void *data)
{
    lc_client_t *c = data;
    char body[256];

    for (int i = 0; i < 400; i++) {
        snprintf(body, sizeof(body),
                 "{\"customer_id\":\"CUST-%06d\",\"currency\":\"EUR\",\"items\":[{\"sku\":"
                 "\"SKU-5\",\"quantity\":1,\"unit_price_cents\":%d}]}",
                 c->index, i);
        od_test_request_t req = {.method = "POST",
                                 .path = "/orders",
                                 .body = body,
                                 .body_len = strlen(body),
                                 .timeout_ms = 5000};
        od_test_response_t resp;
        od_test_http(c->env, &req, &resp);
        if (resp.status == 201) {
            const char *id = strstr(resp.body, "\"order_id\":\"");
            snprintf(c->ids[c->created++], 32, "%.26s", id + 12);
        } else if (resp.status == 503 || resp.status == 0) {
            c->refused++; /* shutting down, or refused at connect */
        } else {
            c->other++;
        }
        od_test_response_free(&resp);
        if (resp.status == 0) {
            break;
        }
    }
    return NULL;
}

START_TEST(test_edge_sigterm_under_load_nothing_half_done)
{
    od_test_env_t *env = od_test_env_create(NULL);
    lc_client_t *c = calloc(LC_THREADS, sizeof(*c));
    pthread_t t[LC_THREADS];
    int created = 0;

    ck_assert_int_eq(od_test_env_write_config(env, "events_sink = none\n"), 0);
    ck_assert_int_eq(od_test_server_start(env), 0);
    for (int i = 0; i < LC_THREADS; i++) {
        c[i] = (lc_client_t){.env = env, .index = 900 + i};
        pthread_create(&t[i], NULL, lc_post, &c[i]);
    }
    od_test_sleep_ms(700);
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0); /* SIGTERM under load: exit 0 */
    for (int i = 0; i < LC_THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(c[i].other, 0);
        created += c[i].created;
    }
    ck_assert_int_gt(created, 0);
    /* Exactly the acknowledged orders are stored: none lost, none stored without its 201. */
    ck_assert_int_eq(od_test_stored_orders(env), created);
    ck_assert_int_eq(od_test_server_start(env), 0);
    for (int i = 0; i < LC_THREADS; i++) {
        for (int j = 0; j < c[i].created; j++) {
            char path[64];
            snprintf(path, sizeof(path), "/orders/%s", c[i].ids[j]);
            od_test_request_t req = {.method = "GET", .path = path};
            od_test_response_t resp;
            ck_assert_int_eq(od_test_http(env, &req, &resp), 0);
            ck_assert_int_eq(resp.status, 200);
            od_test_response_free(&resp);
        }
    }
    ck_assert_int_eq(od_test_server_stop(env, 15000), 0);
    free(c);
    od_test_env_destroy(env);
}
END_TEST

Suite *od_edge_suite(void)
{
    Suite *s = suite_create("edge");
    TCase *tc = tcase_create("edge");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_edge_https_tls12_13_only);
    tcase_add_test(tc, test_edge_mismatched_key_refuses_to_start);
    tcase_add_test(tc, test_edge_cors_preflight_and_origins);
    tcase_add_test(tc, test_edge_slowloris_others_still_served);
    tcase_add_test(tc, test_edge_oversized_headers_refused);
    tcase_add_test(tc, test_edge_blocked_workers_do_not_delay_validation);
    tcase_add_test(tc, test_edge_sigterm_under_load_nothing_half_done);
    suite_add_tcase(s, tc);
    return s;
}
