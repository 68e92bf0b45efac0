/* Tests of od_aws_creds: the order of the chain, the shared file's profiles, partial sources,
 * IMDSv2 against moto_server and against a canned in-test responder (failures, odd answers,
 * expiry), and the background refresh while readers keep reading. */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* mkdtemp, setenv, prctl, timegm: these tests are Linux-only */
#endif
#include "od_aws_creds.h"
#include "od_status.h"
#include "od_suites.h"

#include <apr_strings.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROLES "/latest/meta-data/iam/security-credentials/"
#define TOKEN "tok-abc_123="
#define SECRET "s3cr3t-never-logged"

static apr_pool_t *pool;
static od_log_t *log_;
static FILE *log_stream;
static char dir[64];
static char log_path[96];

/* moto_server, started once per test case by an unchecked fixture (in the runner process, so a
 * failing test cannot leave it behind). */
static pid_t moto_pid;
static char moto_url[64];

/* ---- helpers ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A loopback port nothing listens on (bound, then closed). */
static int closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static const char *closed_endpoint(void)
{
    return apr_psprintf(pool, "http://127.0.0.1:%d", closed_port());
}

static const char *write_file(const char *name, const char *text)
{
    const char *path = apr_pstrcat(pool, dir, "/", name, NULL);
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* Everything logged so far. */
static const char *log_text(void)
{
    FILE *f = fopen(log_path, "r");
    char *buf = apr_pcalloc(pool, 65536);

    ck_assert_ptr_nonnull(f);
    fread(buf, 1, 65535, f);
    fclose(f);
    return buf;
}

static void assert_logged(const char *what)
{
    const char *text = log_text();
    ck_assert_msg(strstr(text, what) != NULL, "log lacks \"%s\":\n%s", what, text);
}

static void assert_not_logged(const char *what)
{
    const char *text = log_text();
    ck_assert_msg(strstr(text, what) == NULL, "log shows \"%s\":\n%s", what, text);
}

static apr_time_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return apr_time_from_sec(timegm(&tm));
}

/* Every test starts from an empty AWS environment (also without fork mode) and a HOME without
 * ~/.aws, so nothing on the machine running the tests leaks in. */
static void setup(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID",           "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",           "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_EC2_METADATA_DISABLED"};

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        unsetenv(vars[i]);
    }
    apr_pool_create(&pool, NULL);
    strcpy(dir, "/tmp/od-creds-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    setenv("HOME", dir, 1);
    snprintf(log_path, sizeof(log_path), "%s/log", dir);
    log_stream = fopen(log_path, "a");
    ck_assert_ptr_nonnull(log_stream);
    od_log_create(&log_, OD_LOG_DEBUG, log_stream, pool);
}

static void teardown(void)
{
    char cmd[128];

    apr_pool_destroy(pool); /* stops any refresher */
    fclose(log_stream);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Creation that must succeed; checks the basics every success shares. */
static od_aws_creds_t *create_in(const od_aws_creds_options_t *o, od_aws_credentials_t *cr,
                                 apr_pool_t *p)
{
    od_aws_creds_t *c = NULL;

    ck_assert_int_eq(od_aws_creds_create(&c, o, log_, p), APR_SUCCESS);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(od_aws_creds_fetches(c), 1);
    ck_assert_int_eq(od_aws_creds_get(c, cr, pool), APR_SUCCESS);
    assert_not_logged(SECRET);
    return c;
}

static od_aws_creds_t *create_ok(const od_aws_creds_options_t *o, od_aws_credentials_t *cr)
{
    return create_in(o, cr, pool);
}

/* Creation that must fail with OD_EAUTH, leaving *out NULL. */
static void create_fails(const od_aws_creds_options_t *o)
{
    od_aws_creds_t *c = (od_aws_creds_t *) &c; /* not NULL, so the reset is seen */

    ck_assert_int_eq(od_aws_creds_create(&c, o, log_, pool), OD_EAUTH);
    ck_assert_ptr_null(c);
    assert_logged("no credentials found");
    assert_not_logged(SECRET);
}

/* ---- an in-test IMDS: one thread, one connection at a time, canned answers ---- */

typedef struct responder_t {
    /* The script: set before responder_start, read-only afterwards. */
    int token_status;  /* the answer to PUT /latest/api/token */
    int v1_only;       /* GETs are answered without a token */
    const char *roles; /* the role listing */
    const char *creds; /* the credentials answer; NULL: built, expiring in expire_in_ms */
    long expire_in_ms;
    int fail_from, fail_to; /* credentials answers number fail_from..fail_to are HTTP 500 */
    int hang;               /* accept and never answer */
    /* What happened. */
    atomic_int token_calls, role_calls, creds_calls, bad_ttl;
    atomic_int stop;
    int fd;
    int port;
    pthread_t thread;
} responder_t;

static void respond(int fd, int status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                     strlen(body));

    (void) !write(fd, head, (size_t) n);
    (void) !write(fd, body, strlen(body));
}

/* Credentials expiring expire_in_ms from now, to the millisecond (so tests can time retries). */
static const char *built_creds(responder_t *r, char *buf, size_t size)
{
    char when[32];
    struct timespec now;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &now);
    long long ms = (long long) now.tv_sec * 1000 + now.tv_nsec / 1000000 + r->expire_in_ms;
    time_t t = (time_t) (ms / 1000);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", gmtime_r(&t, &tm));
    snprintf(buf, size,
             "{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIARESPONDER\","
             "\"SecretAccessKey\":\"" SECRET "\",\"Token\":\"tok-session\","
             "\"Expiration\":\"%s.%03dZ\"}",
             when, (int) (ms % 1000));
    return buf;
}

/* Answers one request whose head (lower-cased) is in @p req. */
static void route(responder_t *r, int fd, const char *req)
{
    char path[512] = "", buf[1024];
    int authed = strstr(req, "\r\nx-aws-ec2-metadata-token: " TOKEN "\r\n") != NULL;
    const char *role_end = strchr(r->roles, '\n');
    size_t role_len = role_end != NULL ? (size_t) (role_end - r->roles) : strlen(r->roles);

    sscanf(req, "%*s %511s", path);
    if (strncmp(req, "put /latest/api/token ", 22) == 0) {
        atomic_fetch_add(&r->token_calls, 1);
        int ttl = strstr(req, "\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\n") != NULL;
        atomic_fetch_add(&r->bad_ttl, !ttl);
        respond(fd, ttl ? r->token_status : 400, ttl && r->token_status == 200 ? TOKEN : "");
    } else if (!authed && !r->v1_only) {
        respond(fd, 401, "");
    } else if (strcmp(path, ROLES) == 0) {
        atomic_fetch_add(&r->role_calls, 1);
        respond(fd, 200, r->roles);
    } else if (strncmp(path, ROLES, strlen(ROLES)) == 0 &&
               strncasecmp(path + strlen(ROLES), r->roles, role_len) == 0 &&
               path[strlen(ROLES) + role_len] == '\0') {
        int n = atomic_fetch_add(&r->creds_calls, 1) + 1;
        if (n >= r->fail_from && n <= r->fail_to) {
            respond(fd, 500, "");
        } else {
            respond(fd, 200, r->creds != NULL ? r->creds : built_creds(r, buf, sizeof(buf)));
        }
    } else {
        respond(fd, 404, "");
    }
}

/* Reads a request head (bounded by size and SO_RCVTIMEO), lower-cased. */
static int read_head(int fd, char *buf, size_t size)
{
    size_t len = 0;

    while (len < size - 1 && strstr(buf, "\r\n\r\n") == NULL) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n <= 0) {
            return -1;
        }
        len += (size_t) n;
        buf[len] = '\0';
    }
    for (char *p = buf; *p != '\0'; p++) {
        *p = (char) tolower((unsigned char) *p);
    }
    return 0;
}

static void *responder_main(void *arg)
{
    responder_t *r = arg;
    struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
    struct timeval tv = {2, 0};

    while (!atomic_load(&r->stop)) {
        if (poll(&pfd, 1, 50) != 1) {
            continue;
        }
        int fd = accept(r->fd, NULL, NULL);
        char req[8192] = "";
        if (fd < 0) {
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        while (r->hang && !atomic_load(&r->stop)) {
            sleep_ms(20);
        }
        if (!r->hang && read_head(fd, req, sizeof(req)) == 0) {
            route(r, fd, req);
        }
        close(fd);
    }
    return NULL;
}

/* Starts the responder thread; returns its endpoint URL. */
static const char *responder_start(responder_t *r)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(r->fd, 0);
    ck_assert_int_eq(bind(r->fd, (struct sockaddr *) &a, sizeof(a)), 0);
    ck_assert_int_eq(listen(r->fd, 16), 0);
    ck_assert_int_eq(getsockname(r->fd, (struct sockaddr *) &a, &len), 0);
    r->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&r->thread, NULL, responder_main, r), 0);
    return apr_psprintf(pool, "http://127.0.0.1:%d/", r->port);
}

static void responder_stop(responder_t *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    close(r->fd);
}

static void responder_init(responder_t *r)
{
    memset(r, 0, sizeof(*r));
    r->token_status = 200;
    r->roles = "first-role\nsecond-role\n";
    r->expire_in_ms = 3600 * 1000;
}

/* ---- readers: threads calling od_aws_creds_get while the refresher works ---- */

typedef struct readers_t {
    od_aws_creds_t *creds;
    const char *want_id;
    atomic_int stop, reads, failures;
    pthread_t threads[4];
} readers_t;

static void *reader_main(void *arg)
{
    readers_t *rd = arg;
    apr_pool_t *p = NULL;
    od_aws_credentials_t cr;

    apr_pool_create_unmanaged_ex(&p, NULL, NULL);
    while (!atomic_load(&rd->stop)) {
        apr_pool_clear(p);
        apr_status_t rv = od_aws_creds_get(rd->creds, &cr, p);
        int ok = rv == APR_SUCCESS && strcmp(cr.access_key_id, rd->want_id) == 0 &&
                 cr.session_token != NULL && cr.expiration > apr_time_now();
        atomic_fetch_add(&rd->reads, 1);
        atomic_fetch_add(&rd->failures, !ok);
        sleep_ms(2);
    }
    apr_pool_destroy(p);
    return NULL;
}

static void readers_start(readers_t *rd, od_aws_creds_t *c, const char *want_id)
{
    memset(rd, 0, sizeof(*rd));
    rd->creds = c;
    rd->want_id = want_id;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_create(&rd->threads[i], NULL, reader_main, rd), 0);
    }
}

static void readers_stop(readers_t *rd)
{
    atomic_store(&rd->stop, 1);
    for (int i = 0; i < 4; i++) {
        pthread_join(rd->threads[i], NULL);
    }
    ck_assert_int_gt(atomic_load(&rd->reads), 0);
    ck_assert_int_eq(atomic_load(&rd->failures), 0);
}

/* Polls until at least @p n fetches happened or @p ms passed; returns the count. */
static unsigned int wait_fetches(od_aws_creds_t *c, unsigned int n, long ms)
{
    for (long waited = 0; od_aws_creds_fetches(c) < n && waited < ms; waited += 50) {
        sleep_ms(50);
    }
    return od_aws_creds_fetches(c);
}

/* ---- moto_server ---- */

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    return size * nmemb;
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    char *buf = userdata;
    size_t have = strlen(buf), n = size * nmemb;

    if (have + n >= 4096) {
        return 0;
    }
    memcpy(buf + have, ptr, n);
    buf[have + n] = '\0';
    return n;
}

/* GET @p url; returns the HTTP status (0: no answer) and the body in @p body (4 KiB) if given. */
static long http_get(const char *url, char *body)
{
    CURL *h = curl_easy_init();
    long code = 0;

    if (body != NULL) {
        body[0] = '\0';
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body != NULL ? collect : discard);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_easy_cleanup(h);
    return code;
}

static void moto_stop(void)
{
    if (moto_pid <= 0) {
        return;
    }
    kill(-moto_pid, SIGTERM);
    for (int i = 0; i < 60 && waitpid(moto_pid, NULL, WNOHANG) == 0; i++) {
        sleep_ms(50);
    }
    kill(-moto_pid, SIGKILL);
    waitpid(moto_pid, NULL, 0); /* returns at once if the loop above reaped it */
    moto_pid = 0;
}

/* Starts `moto_server -H 127.0.0.1 -p PORT` in its own process group and waits (bounded) until
 * GET / answers. */
static void moto_start(void)
{
    int port = closed_port();
    char port_s[16];

    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(moto_url, sizeof(moto_url), "http://127.0.0.1:%d", port);
    moto_pid = fork();
    ck_assert_int_ge(moto_pid, 0);
    if (moto_pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execlp("moto_server", "moto_server", "-H", "127.0.0.1", "-p", port_s, (char *) NULL);
        _exit(127);
    }
    setpgid(moto_pid, moto_pid);
    for (int i = 0; i < 300 && http_get(apr_pstrcat(pool, moto_url, "/", NULL), NULL) == 0; i++) {
        if (waitpid(moto_pid, NULL, WNOHANG) == moto_pid) {
            moto_pid = 0;
            ck_abort_msg("moto_server exited at start (is it on PATH?)");
        }
        sleep_ms(100);
    }
    if (http_get(apr_pstrcat(pool, moto_url, "/", NULL), NULL) == 0) {
        moto_stop();
        ck_abort_msg("moto_server did not answer within 30 s");
    }
}

static void moto_setup(void)
{
    apr_pool_create(&pool, NULL);
    moto_start();
    apr_pool_destroy(pool);
}

static void moto_teardown(void)
{
    moto_stop();
}

/* moto's credentials Expiration, read independently of the module (strptime + timegm). */
static apr_time_t moto_expiration(void)
{
    char body[4096], *at;
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    ck_assert_int_eq(http_get(apr_pstrcat(pool, moto_url, ROLES "default-role", NULL), body), 200);
    ck_assert_ptr_nonnull(at = strstr(body, "\"Expiration\": \""));
    ck_assert_ptr_nonnull(strptime(at + 15, "%Y-%m-%dT%H:%M:%SZ", &tm));
    return apr_time_from_sec(timegm(&tm));
}

/* ---- the chain of static sources ---- */

static const char shared_file[] = "# a comment\n"
                                  "; another comment\n"
                                  "[default]\n"
                                  "aws_access_key_id = AKIDDEFAULT\n"
                                  "aws_secret_access_key = " SECRET "\n"
                                  "\n"
                                  "[ other ]\n"
                                  "aws_access_key_id=AKIDOTHER\r\n"
                                  "aws_secret_access_key=" SECRET "\r\n"
                                  "aws_session_token = tokother\n"
                                  "region = eu-west-1\n"
                                  "[broken]\n"
                                  "aws_access_key_id = AKIDBROKEN\n";

START_TEST(test_aws_creds_explicit_options_win_over_env_and_file)
{
    od_aws_creds_options_t o = {.access_key_id = "AKIDCONFIG",
                                .secret_access_key = SECRET,
                                .session_token = "tokconfig",
                                .imds_endpoint = closed_endpoint()};
    od_aws_credentials_t cr;

    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", write_file("creds", shared_file), 1);
    create_ok(&o, &cr);
    ck_assert_str_eq(cr.source, "config");
    ck_assert_str_eq(cr.access_key_id, "AKIDCONFIG");
    ck_assert_str_eq(cr.secret_access_key, SECRET);
    ck_assert_str_eq(cr.session_token, "tokconfig");
    ck_assert_int_eq(cr.expiration, 0);
    assert_logged("credentials from config (access key id AKIDCONFIG)");
    assert_not_logged("tokconfig");
}
END_TEST

START_TEST(test_aws_creds_env_wins_over_file)
{
    od_aws_creds_options_t o = {.imds_endpoint = closed_endpoint()};
    od_aws_credentials_t cr;

    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    setenv("AWS_SESSION_TOKEN", "tokenv", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", write_file("creds", shared_file), 1);
    od_aws_creds_t *c = create_ok(&o, &cr);
    ck_assert_str_eq(cr.source, "environment");
    ck_assert_str_eq(cr.access_key_id, "AKIDENV");
    ck_assert_str_eq(cr.session_token, "tokenv");
    /* A session token without an Expiration is never refreshed. */
    ck_assert_int_eq(cr.expiration, 0);
    sleep_ms(1200);
    ck_assert_uint_eq(od_aws_creds_fetches(c), 1);
}
END_TEST

START_TEST(test_aws_creds_file_default_profile_under_home)
{
    od_aws_creds_options_t o = {.imds_endpoint = closed_endpoint()};
    od_aws_credentials_t cr;

    ck_assert_int_eq(mkdir(apr_pstrcat(pool, dir, "/.aws", NULL), 0700), 0);
    write_file(".aws/credentials", shared_file);
    create_ok(&o, &cr);
    ck_assert_str_eq(cr.source, "shared-file");
    ck_assert_str_eq(cr.access_key_id, "AKIDDEFAULT");
    ck_assert_str_eq(cr.secret_access_key, SECRET);
    ck_assert_ptr_null(cr.session_token);
    ck_assert_int_eq(cr.expiration, 0);
}
END_TEST

START_TEST(test_aws_creds_file_profile_from_env)
{
    od_aws_creds_options_t o = {.imds_endpoint = closed_endpoint()};
    od_aws_credentials_t cr;

    setenv("AWS_SHARED_CREDENTIALS_FILE", write_file("creds", shared_file), 1);
    setenv("AWS_PROFILE", "other", 1);
    create_ok(&o, &cr);
    ck_assert_str_eq(cr.access_key_id, "AKIDOTHER");
    ck_assert_str_eq(cr.secret_access_key, SECRET);
    ck_assert_str_eq(cr.session_token, "tokother");
}
END_TEST

START_TEST(test_aws_creds_file_options_override_env)
{
    od_aws_creds_options_t o = {.imds_endpoint = closed_endpoint(), .profile = "default"};
    od_aws_credentials_t cr;

    setenv("AWS_SHARED_CREDENTIALS_FILE", apr_pstrcat(pool, dir, "/absent", NULL), 1);
    setenv("AWS_PROFILE", "other", 1);
    o.shared_credentials_file = write_file("creds", shared_file);
    create_ok(&o, &cr);
    ck_assert_str_eq(cr.access_key_id, "AKIDDEFAULT");
}
END_TEST

START_TEST(test_aws_creds_file_missing_profile_falls_through)
{
    od_aws_creds_options_t o = {0};
    od_aws_credentials_t cr;
    responder_t r;

    responder_init(&r);
    o.imds_endpoint = responder_start(&r);
    setenv("AWS_SHARED_CREDENTIALS_FILE", write_file("creds", shared_file), 1);
    setenv("AWS_PROFILE", "nope", 1);
    create_ok(&o, &cr);
    responder_stop(&r);
    ck_assert_str_eq(cr.source, "imds");
    ck_assert_str_eq(cr.access_key_id, "ASIARESPONDER");
    assert_not_logged("passed over"); /* a missing profile is not a mistake */
}
END_TEST

START_TEST(test_aws_creds_file_missing_profile_alone_fails)
{
    od_aws_creds_options_t o = {.imds_endpoint = closed_endpoint(), .profile = "nope"};

    o.shared_credentials_file = write_file("creds", shared_file);
    create_fails(&o);
    assert_logged("shared-file: no profile [nope] in ");
}
END_TEST

START_TEST(test_aws_creds_file_partial_profile_is_error)
{
    od_aws_creds_options_t o = {.imds_endpoint = closed_endpoint(), .profile = "broken"};

    o.shared_credentials_file = write_file("creds", shared_file);
    create_fails(&o);
    assert_logged("shared-file: aws_access_key_id set without aws_secret_access_key in profile "
                  "[broken]");
}
END_TEST

START_TEST(test_aws_creds_partial_env_is_error)
{
    od_aws_creds_options_t o = {.imds_endpoint = closed_endpoint()};

    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    create_fails(&o);
    assert_logged("environment: AWS_ACCESS_KEY_ID set without AWS_SECRET_ACCESS_KEY");
}
END_TEST

START_TEST(test_aws_creds_partial_env_token_only_is_error)
{
    od_aws_creds_options_t o = {.imds_endpoint = closed_endpoint()};

    setenv("AWS_SESSION_TOKEN", "tokenv", 1);
    create_fails(&o);
    assert_logged("environment: AWS_SESSION_TOKEN set without AWS_ACCESS_KEY_ID");
    assert_not_logged("tokenv");
}
END_TEST

START_TEST(test_aws_creds_partial_source_passed_over_with_warning)
{
    od_aws_creds_options_t o = {.imds_endpoint = closed_endpoint(), .secret_access_key = SECRET};
    od_aws_credentials_t cr;

    setenv("AWS_SHARED_CREDENTIALS_FILE", write_file("creds", shared_file), 1);
    create_ok(&o, &cr);
    ck_assert_str_eq(cr.source, "shared-file");
    assert_logged("\"level\":\"warn\",\"msg\":\"aws: passed over credential sources: config: "
                  "aws_secret_access_key set without aws_access_key_id");
}
END_TEST

START_TEST(test_aws_creds_nothing_anywhere_is_eauth)
{
    od_aws_creds_options_t o = {.imds_endpoint = closed_endpoint()};

    create_fails(&o);
    assert_logged("tried config: not set; environment: not set; shared-file: no file ");
    assert_logged("imds: curl_easy_perform(IMDS token) failed: ");
}
END_TEST

/* ---- IMDS against the canned responder ---- */

START_TEST(test_aws_creds_imds_v2_headers_and_first_role)
{
    od_aws_creds_options_t o = {0};
    od_aws_credentials_t cr;
    responder_t r;

    responder_init(&r);
    /* The option is an override of the environment. */
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", closed_endpoint(), 1);
    o.imds_endpoint = responder_start(&r);
    apr_time_t before = apr_time_now();
    create_ok(&o, &cr);
    responder_stop(&r);
    ck_assert_str_eq(cr.source, "imds");
    ck_assert_str_eq(cr.access_key_id, "ASIARESPONDER");
    ck_assert_str_eq(cr.secret_access_key, SECRET);
    ck_assert_str_eq(cr.session_token, "tok-session");
    ck_assert_int_ge(cr.expiration, before + apr_time_from_sec(3600 - 2));
    ck_assert_int_le(cr.expiration, apr_time_now() + apr_time_from_sec(3600 + 1));
    ck_assert_int_eq(atomic_load(&r.token_calls), 1);
    ck_assert_int_eq(atomic_load(&r.bad_ttl), 0);
    ck_assert_int_eq(atomic_load(&r.role_calls), 1);
    ck_assert_int_eq(atomic_load(&r.creds_calls), 1);
    assert_not_logged("tok-session");
    assert_not_logged(TOKEN);
}
END_TEST

/* All name 2099-01-02T03:04:05Z plus usec. */
static const struct {
    const char *text;
    apr_time_t usec;
} expirations[] = {{"2099-01-02T03:04:05Z", 0},
                   {"2099-01-02T03:04:05.678Z", 678000},
                   {"2099-01-02T04:34:05.000678+01:30", 678},
                   {"2099-01-01T23:04:05-04:00", 0},
                   {"2099-01-02t03:04:05z", 0}};

START_TEST(test_aws_creds_imds_expiration_formats)
{
    od_aws_creds_options_t o = {0};
    od_aws_credentials_t cr;
    responder_t r;

    responder_init(&r);
    r.creds = apr_psprintf(pool,
                           "{\"AccessKeyId\":\"ASIAX\",\"SecretAccessKey\":\"" SECRET "\","
                           "\"Token\":\"t\",\"Expiration\":\"%s\"}",
                           expirations[_i].text);
    o.imds_endpoint = responder_start(&r);
    create_ok(&o, &cr);
    responder_stop(&r);
    ck_assert_int_eq(cr.expiration, utc(2099, 1, 2, 3, 4, 5) + expirations[_i].usec);
}
END_TEST

static const struct {
    const char *body;
    const char *logged;
} bad_answers[] = {
    {"{not json", "json_tokener_parse_verbose(IMDS credentials) failed: "},
    {"[1,2]", "json_tokener_parse_verbose(IMDS credentials) failed: not an object"},
    {"{\"AccessKeyId\":\"A\",\"Token\":\"t\",\"Expiration\":\"2099-01-02T03:04:05Z\"}",
     "IMDS credentials: SecretAccessKey missing"},
    {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" SECRET "\",\"Token\":\"t\"}",
     "IMDS credentials: Expiration missing"},
    {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" SECRET "\",\"Token\":\"t\","
     "\"Expiration\":\"tomorrow\"}",
     "IMDS credentials: Expiration tomorrow is not an RFC 3339 time"},
    {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" SECRET "\",\"Token\":\"t\","
     "\"Expiration\":\"2099-13-02T03:04:05Z\"}",
     "is not an RFC 3339 time"},
    {"{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"AccessKeyId\":\"A\"}",
     "IMDS credentials: Code AssumeRoleUnauthorizedAccess"},
};

START_TEST(test_aws_creds_imds_bad_answer_is_error)
{
    od_aws_creds_options_t o = {0};
    responder_t r;

    responder_init(&r);
    r.creds = bad_answers[_i].body;
    o.imds_endpoint = responder_start(&r);
    create_fails(&o);
    responder_stop(&r);
    ck_assert_int_eq(atomic_load(&r.creds_calls), 1);
    assert_logged(bad_answers[_i].logged);
}
END_TEST

START_TEST(test_aws_creds_imds_token_failure_is_error)
{
    od_aws_creds_options_t o = {0};
    responder_t r;

    responder_init(&r);
    r.token_status = 403;
    o.imds_endpoint = responder_start(&r);
    create_fails(&o);
    responder_stop(&r);
    ck_assert_int_eq(atomic_load(&r.token_calls), 1);
    ck_assert_int_eq(atomic_load(&r.role_calls), 0);
    assert_logged("imds: IMDS token: HTTP 403");
}
END_TEST

START_TEST(test_aws_creds_imds_v1_only_is_error)
{
    od_aws_creds_options_t o = {0};
    responder_t r;

    responder_init(&r);
    r.token_status = 405;
    r.v1_only = 1;
    o.imds_endpoint = responder_start(&r);
    create_fails(&o);
    responder_stop(&r);
    ck_assert_int_eq(atomic_load(&r.role_calls), 0);
    ck_assert_int_eq(atomic_load(&r.creds_calls), 0);
    assert_logged("imds: IMDS token: HTTP 405");
}
END_TEST

START_TEST(test_aws_creds_imds_no_role_is_error)
{
    od_aws_creds_options_t o = {0};
    responder_t r;

    responder_init(&r);
    r.roles = "\n";
    o.imds_endpoint = responder_start(&r);
    create_fails(&o);
    responder_stop(&r);
    assert_logged("imds: IMDS role: none");
}
END_TEST

START_TEST(test_aws_creds_imds_timeout_is_bounded)
{
    od_aws_creds_options_t o = {.imds_timeout_ms = 300};
    responder_t r;

    responder_init(&r);
    r.hang = 1;
    o.imds_endpoint = responder_start(&r);
    apr_time_t start = apr_time_now();
    create_fails(&o);
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_msec(1500));
    responder_stop(&r);
    assert_logged("imds: curl_easy_perform(IMDS token) failed: ");
}
END_TEST

START_TEST(test_aws_creds_imds_disabled_by_env)
{
    od_aws_creds_options_t o = {0};
    responder_t r;

    responder_init(&r);
    o.imds_endpoint = responder_start(&r);
    setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
    create_fails(&o);
    responder_stop(&r);
    ck_assert_int_eq(atomic_load(&r.token_calls), 0);
    assert_logged("imds: disabled (AWS_EC2_METADATA_DISABLED)");
}
END_TEST

/* ---- refresh ---- */

START_TEST(test_aws_creds_refresh_before_expiry)
{
    /* Credentials that live 3 s: the default refresh_ahead (5 min) is longer than that, so the
     * refresher works at its minimum gap (1 s) and readers never see an expired set. */
    od_aws_creds_options_t o = {0};
    od_aws_credentials_t cr;
    readers_t rd;
    responder_t r;

    responder_init(&r);
    r.expire_in_ms = 3000;
    o.imds_endpoint = responder_start(&r);
    apr_pool_t *cp = NULL;
    apr_pool_create(&cp, pool);
    od_aws_creds_t *c = create_in(&o, &cr, cp);
    apr_time_t first = cr.expiration;
    readers_start(&rd, c, "ASIARESPONDER");
    ck_assert_uint_ge(wait_fetches(c, 2, 10000), 2);
    ck_assert_int_lt(apr_time_now(), first); /* the refresh came before the expiry */
    while (apr_time_now() < first + apr_time_from_msec(500)) {
        sleep_ms(50);
    }
    readers_stop(&rd);
    ck_assert_int_eq(od_aws_creds_get(c, &cr, pool), APR_SUCCESS);
    ck_assert_int_gt(cr.expiration, first);
    /* Never busy: one attempt per second at most (plus slack). */
    ck_assert_uint_le(od_aws_creds_fetches(c), 6);
    apr_pool_destroy(cp); /* the refresher stops here, before the responder does */
    responder_stop(&r);
}
END_TEST

START_TEST(test_aws_creds_refresh_retries_after_failure)
{
    od_aws_creds_options_t o = {0};
    od_aws_credentials_t cr;
    readers_t rd;
    responder_t r;

    responder_init(&r);
    r.expire_in_ms = 5000;
    r.fail_from = r.fail_to = 2; /* the first refresh fails, the retry a second later works */
    o.imds_endpoint = responder_start(&r);
    apr_pool_t *cp = NULL;
    apr_pool_create(&cp, pool);
    od_aws_creds_t *c = create_in(&o, &cr, cp);
    apr_time_t first = cr.expiration;
    readers_start(&rd, c, "ASIARESPONDER");
    ck_assert_uint_ge(wait_fetches(c, 2, 10000), 2);
    ck_assert_int_lt(apr_time_now(), first);
    readers_stop(&rd);
    ck_assert_int_ge(atomic_load(&r.creds_calls), 3);
    assert_logged("refreshing credentials from imds failed (IMDS credentials: HTTP 500); next "
                  "try in ");
    apr_pool_destroy(cp);
    responder_stop(&r);
}
END_TEST

START_TEST(test_aws_creds_expired_without_refresh_is_eauth)
{
    od_aws_creds_options_t o = {0};
    od_aws_credentials_t cr;
    responder_t r;

    responder_init(&r);
    r.expire_in_ms = 3000;
    r.fail_from = 2;
    r.fail_to = 1000;
    o.imds_endpoint = responder_start(&r);
    apr_pool_t *cp = NULL;
    apr_pool_create(&cp, pool);
    od_aws_creds_t *c = create_in(&o, &cr, cp);
    apr_time_t exp = cr.expiration;
    ck_assert_int_le(exp, apr_time_now() + apr_time_from_sec(3));
    while (apr_time_now() < exp + apr_time_from_msec(300)) {
        sleep_ms(50);
    }
    ck_assert_int_eq(od_aws_creds_get(c, &cr, pool), OD_EAUTH);
    ck_assert_ptr_null(cr.access_key_id);
    ck_assert_ptr_null(cr.secret_access_key);
    ck_assert_uint_eq(od_aws_creds_fetches(c), 1);
    /* Refresh due at once, so tried at +1 s (the minimum gap), retried 1 s later, then 2 s later
     * but no later than the expiry (+3 s): four answers, the first the only good one. */
    ck_assert_int_eq(atomic_load(&r.creds_calls), 4);
    /* Then backing off 4 s: nothing in the next 3 s. */
    sleep_ms(3000);
    ck_assert_int_eq(atomic_load(&r.creds_calls), 4);
    assert_logged("aws: refreshing credentials from imds failed (IMDS credentials: HTTP 500)");
    assert_not_logged(SECRET);
    apr_pool_destroy(cp);
    responder_stop(&r);
}
END_TEST

/* ---- IMDS against moto_server ---- */

START_TEST(test_aws_creds_imds_moto)
{
    od_aws_creds_options_t o = {0};
    od_aws_credentials_t cr;

    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", moto_url, 1);
    apr_time_t want = moto_expiration();
    create_ok(&o, &cr);
    ck_assert_str_eq(cr.source, "imds");
    ck_assert_str_eq(cr.access_key_id, "test-key");
    ck_assert_str_eq(cr.secret_access_key, "test-secret-key");
    ck_assert_str_eq(cr.session_token, "test-session-token");
    /* moto answers "now + 1 day" in whole seconds. */
    ck_assert_int_ge(cr.expiration, want);
    ck_assert_int_le(cr.expiration, want + apr_time_from_sec(5));
    assert_logged("credentials from imds (access key id test-key, expiring ");
    assert_not_logged("test-secret-key");
    assert_not_logged("test-session-token");
}
END_TEST

START_TEST(test_aws_creds_refresh_moto_while_reading)
{
    /* refresh_ahead is chosen so the first refresh is due ~1 s after create. */
    od_aws_creds_options_t o = {.imds_endpoint = moto_url};
    od_aws_credentials_t cr;
    readers_t rd;

    o.refresh_ahead = moto_expiration() - apr_time_now() - apr_time_from_sec(1);
    od_aws_creds_t *c = create_ok(&o, &cr);
    apr_time_t first = cr.expiration;
    readers_start(&rd, c, "test-key");
    apr_time_t start = apr_time_now();
    ck_assert_uint_ge(wait_fetches(c, 2, 10000), 2);
    ck_assert_int_ge(apr_time_now() - start, apr_time_from_msec(300)); /* not at once */
    sleep_ms(200);
    readers_stop(&rd);
    ck_assert_int_eq(od_aws_creds_get(c, &cr, pool), APR_SUCCESS);
    ck_assert_int_gt(cr.expiration, first); /* the new set is the one read */
    assert_logged("refreshed credentials from imds (access key id test-key");
}
END_TEST

Suite *od_aws_creds_suite(void)
{
    Suite *s = suite_create("aws_creds");
    TCase *chain = tcase_create("chain");
    TCase *imds = tcase_create("imds");
    TCase *refresh = tcase_create("refresh");
    TCase *moto = tcase_create("moto");

    tcase_add_checked_fixture(chain, setup, teardown);
    tcase_add_test(chain, test_aws_creds_explicit_options_win_over_env_and_file);
    tcase_add_test(chain, test_aws_creds_env_wins_over_file);
    tcase_add_test(chain, test_aws_creds_file_default_profile_under_home);
    tcase_add_test(chain, test_aws_creds_file_profile_from_env);
    tcase_add_test(chain, test_aws_creds_file_options_override_env);
    tcase_add_test(chain, test_aws_creds_file_missing_profile_falls_through);
    tcase_add_test(chain, test_aws_creds_file_missing_profile_alone_fails);
    tcase_add_test(chain, test_aws_creds_file_partial_profile_is_error);
    tcase_add_test(chain, test_aws_creds_partial_env_is_error);
    tcase_add_test(chain, test_aws_creds_partial_env_token_only_is_error);
    tcase_add_test(chain, test_aws_creds_partial_source_passed_over_with_warning);
    tcase_add_test(chain, test_aws_creds_nothing_anywhere_is_eauth);
    suite_add_tcase(s, chain);

    tcase_add_checked_fixture(imds, setup, teardown);
    tcase_set_timeout(imds, 20);
    tcase_add_test(imds, test_aws_creds_imds_v2_headers_and_first_role);
    tcase_add_loop_test(imds, test_aws_creds_imds_expiration_formats, 0,
                        sizeof(expirations) / sizeof(expirations[0]));
    tcase_add_loop_test(imds, test_aws_creds_imds_bad_answer_is_error, 0,
                        sizeof(bad_answers) / sizeof(bad_answers[0]));
    tcase_add_test(imds, test_aws_creds_imds_token_failure_is_error);
    tcase_add_test(imds, test_aws_creds_imds_v1_only_is_error);
    tcase_add_test(imds, test_aws_creds_imds_no_role_is_error);
    tcase_add_test(imds, test_aws_creds_imds_timeout_is_bounded);
    tcase_add_test(imds, test_aws_creds_imds_disabled_by_env);
    suite_add_tcase(s, imds);

    tcase_add_checked_fixture(refresh, setup, teardown);
    tcase_set_timeout(refresh, 20);
    tcase_add_test(refresh, test_aws_creds_refresh_before_expiry);
    tcase_add_test(refresh, test_aws_creds_refresh_retries_after_failure);
    tcase_add_test(refresh, test_aws_creds_expired_without_refresh_is_eauth);
    suite_add_tcase(s, refresh);

    tcase_add_unchecked_fixture(moto, moto_setup, moto_teardown);
    tcase_add_checked_fixture(moto, setup, teardown);
    tcase_set_timeout(moto, 30);
    tcase_add_test(moto, test_aws_creds_imds_moto);
    tcase_add_test(moto, test_aws_creds_refresh_moto_while_reading);
    suite_add_tcase(s, moto);
    return s;
}
