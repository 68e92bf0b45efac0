/* od_test_util: temp dirs, config and keys files, an orderd child process, libcurl requests. */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* mkdtemp, nftw, prctl, strndup: this harness is Linux-only */
#endif

#include "od_test_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OD_TEST_START_MS 10000L
#define OD_TEST_CHECK_MS 10000L
#define OD_TEST_KILL_MS 5000L
#define OD_TEST_POLL_MS 10L
#define OD_TEST_HTTP_MS 10000L
#define OD_TEST_CHUNK 100 /* bytes per chunk of a chunked upload */
#define OD_TEST_PORT_MARK "listening on 127.0.0.1:"

struct od_test_env_s {
    char dir[PATH_MAX];
    char conf[PATH_MAX];
    char keys[PATH_MAX];
    char db[PATH_MAX];
    char log[PATH_MAX];
    int has_keys;
    int dynamodb;    /* the config names store = dynamodb: --init-store before the first start */
    int initialised; /* --init-store has run */
    int nchecks;     /* names the stderr file of each od_test_check_config */
    pid_t pid;       /* 0: no daemon */
    atomic_int port; /* atomic: request threads read it while the test kills the daemon */
};

/* ---- small helpers ---- */

void od_test_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static long od_test_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long) ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int od_test_join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    return n > 0 && n < PATH_MAX ? 0 : -1;
}

/* Reads a whole file from @p offset; NULL if it cannot be read. */
static char *od_test_read_from(const char *path, long offset)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);

    if (f == NULL || buf == NULL || fseek(f, offset, SEEK_SET) != 0) {
        free(buf);
        buf = NULL;
    }
    while (buf != NULL) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1) {
            break;
        }
        char *grown = realloc(buf, cap * 2);
        if (grown == NULL) {
            free(buf);
            buf = NULL;
        }
        buf = grown;
        cap *= 2;
    }
    if (buf != NULL) {
        buf[len] = '\0';
    }
    if (f != NULL) {
        fclose(f);
    }
    return buf;
}

static long od_test_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long) st.st_size : 0;
}

static int od_test_write_path(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    size_t len = strlen(text);

    if (f == NULL) {
        return -1;
    }
    int ok = fwrite(text, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* ---- the environment ---- */

od_test_env_t *od_test_env_create(const char *parent)
{
    od_test_env_t *env = calloc(1, sizeof(*env));

    if (env == NULL) {
        return NULL;
    }
    snprintf(env->dir, sizeof(env->dir), "%s/orderd-e2e-XXXXXX", parent ? parent : "/tmp");
    if (mkdtemp(env->dir) == NULL || od_test_join(env->conf, env->dir, "orderd.conf") != 0 ||
        od_test_join(env->keys, env->dir, "api_keys") != 0 ||
        od_test_join(env->db, env->dir, "orders.db") != 0 ||
        od_test_join(env->log, env->dir, "orderd.log") != 0) {
        free(env);
        return NULL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return env;
}

static int od_test_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

void od_test_remove_tree(const char *path)
{
    nftw(path, od_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void od_test_env_destroy(od_test_env_t *env)
{
    if (env == NULL) {
        return;
    }
    od_test_server_kill(env);
    od_test_remove_tree(env->dir);
    curl_global_cleanup();
    free(env);
}

const char *od_test_env_dir(const od_test_env_t *env)
{
    return env->dir;
}

const char *od_test_env_config_path(const od_test_env_t *env)
{
    return env->conf;
}

char *od_test_env_write_file(od_test_env_t *env, const char *name, const char *text)
{
    char *path = malloc(PATH_MAX);

    if (path == NULL || od_test_join(path, env->dir, name) != 0 ||
        od_test_write_path(path, text) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

/* Appends "NAME HEX\n" for one caller to @p f. */
static int od_test_write_key_line(FILE *f, const od_test_key_t *k)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(k->key, strlen(k->key), md, &mdlen, EVP_sha256(), NULL) != 1) {
        return -1;
    }
    fprintf(f, "%s ", k->name);
    for (unsigned int i = 0; i < mdlen; i++) {
        fprintf(f, "%02x", md[i]);
    }
    return fputc('\n', f) == EOF ? -1 : 0;
}

int od_test_env_write_keys(od_test_env_t *env, const od_test_key_t *keys, size_t n)
{
    FILE *f = fopen(env->keys, "w");
    int rc = f != NULL ? 0 : -1;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = od_test_write_key_line(f, &keys[i]);
    }
    if (f != NULL && fclose(f) != 0) {
        rc = -1;
    }
    /* orderd refuses a keys file other users can read. */
    if (rc == 0 && chmod(env->keys, 0600) != 0) {
        rc = -1;
    }
    env->has_keys = rc == 0;
    return rc;
}

const char *od_test_env_keys_path(const od_test_env_t *env)
{
    return env->keys;
}

int od_test_server_signal(od_test_env_t *env, int sig)
{
    return env->pid != 0 ? kill(env->pid, sig) : -1;
}

/* $ORDERD_TEST_STORE_CONF (set by a suite fixture that started an engine) switches the store;
 * each environment then gets its own table, named after its directory, so tests never see each
 * other's orders. */
static void od_test_write_store(od_test_env_t *env, FILE *f)
{
    const char *store = getenv("ORDERD_TEST_STORE_CONF");
    const char *base = strrchr(env->dir, '/');

    if (store == NULL || *store == '\0') {
        return;
    }
    fprintf(f, "%s\ndynamodb_table = t_%s\n", store, base != NULL ? base + 1 : "orders");
    env->dynamodb = 1;
}

int od_test_env_write_config(od_test_env_t *env, const char *extra)
{
    FILE *f = fopen(env->conf, "w");

    if (f == NULL) {
        return -1;
    }
    fprintf(f, "# written by od_test_util\nlisten_address = 127.0.0.1\nlisten_port = 0\n");
    fprintf(f, "sqlite_path = %s\n", env->db);
    od_test_write_store(env, f);
    if (env->has_keys) {
        fprintf(f, "api_keys_file = %s\n", env->keys);
    }
    if (extra != NULL) {
        fprintf(f, "%s\n", extra);
        env->dynamodb |= strstr(extra, "store = dynamodb") != NULL;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- processes ---- */

/* Waits up to @p timeout_ms for @p pid; returns 0 and its wait status, or -1 if still running. */
static int od_test_wait_pid(pid_t pid, long timeout_ms, int *status)
{
    long deadline = od_test_now_ms() + timeout_ms;

    for (;;) {
        pid_t got = waitpid(pid, status, WNOHANG);
        if (got == pid || (got < 0 && errno != EINTR)) {
            return got == pid ? 0 : -1;
        }
        if (od_test_now_ms() >= deadline) {
            return -1;
        }
        od_test_sleep_ms(OD_TEST_POLL_MS);
    }
}

static int od_test_exit_code(int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

/* In the child: output to @p out_path (append), stderr to @p err_path (append), then exec. */
static void od_test_exec_child(pid_t parent, const char *out_path, const char *err_path,
                               char *const argv[])
{
    sigset_t none;

    /* Die with the test process, whatever way it ends (a failed Check assertion _exits). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(127);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int in = open("/dev/null", O_RDONLY);
    int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int err = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
        _exit(127);
    }
    execv(argv[0], argv);
    _exit(127);
}

/* Forks and execs $ORDERD_BIN with @p args (after argv[0]); returns the pid or -1. */
static pid_t od_test_spawn_bin(char *bin, const char *out_path, const char *err_path, char *arg1,
                               char *arg2, char *arg3)
{
    char *argv[] = {bin, arg1, arg2, arg3, NULL};
    pid_t parent = getpid();

    if (bin == NULL || access(bin, X_OK) != 0) {
        fprintf(stderr, "od_test_util: %s is not an executable\n", bin != NULL ? bin : "(null)");
        return -1;
    }
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid == 0) {
        od_test_exec_child(parent, out_path, err_path, argv);
    }
    return pid;
}

/* $ORDERD_BIN with up to three arguments. */
static pid_t od_test_spawn(const char *out_path, const char *err_path, char *arg1, char *arg2,
                           char *arg3)
{
    return od_test_spawn_bin(getenv("ORDERD_BIN"), out_path, err_path, arg1, arg2, arg3);
}

/* Scans the log written since @p offset for the port; 0 while not there yet. */
static int od_test_find_port(const char *log, long offset)
{
    char *text = od_test_read_from(log, offset);
    const char *mark = text != NULL ? strstr(text, OD_TEST_PORT_MARK) : NULL;
    int port = mark != NULL ? atoi(mark + strlen(OD_TEST_PORT_MARK)) : 0;

    free(text);
    return port;
}

static int od_test_await_port(od_test_env_t *env, long offset)
{
    long deadline = od_test_now_ms() + OD_TEST_START_MS;
    int status = 0;

    while (od_test_now_ms() < deadline) {
        atomic_store(&env->port, od_test_find_port(env->log, offset));
        if (atomic_load(&env->port) > 0) {
            return 0;
        }
        if (waitpid(env->pid, &status, WNOHANG) == env->pid) {
            env->pid = 0; /* exited during start-up: the log says why */
            return -1;
        }
        od_test_sleep_ms(OD_TEST_POLL_MS);
    }
    return -1;
}

void od_test_env_skip_init_store(od_test_env_t *env)
{
    env->initialised = 1;
}

/* Runs `orderd --init-store -c conf` once (bounded) for a DynamoDB-backed environment. */
static int od_test_init_store(od_test_env_t *env)
{
    int status = 0;

    if (!env->dynamodb || env->initialised) {
        return 0;
    }
    pid_t pid = od_test_spawn(env->log, env->log, "--init-store", "-c", env->conf);
    if (pid < 0 || od_test_wait_pid(pid, 60000, &status) != 0) {
        if (pid > 0) {
            kill(pid, SIGKILL);
            od_test_wait_pid(pid, 5000, &status);
        }
        return -1;
    }
    env->initialised = od_test_exit_code(status) == 0;
    return env->initialised ? 0 : -1;
}

int od_test_server_start(od_test_env_t *env)
{
    if (env->pid != 0 || od_test_init_store(env) != 0) {
        return -1;
    }
    /* Only what this start writes counts: the log keeps earlier runs for post-mortems. */
    long offset = od_test_file_size(env->log);
    atomic_store(&env->port, 0);
    env->pid = od_test_spawn(env->log, env->log, "-c", env->conf, NULL);
    if (env->pid < 0) {
        env->pid = 0;
        return -1;
    }
    if (od_test_await_port(env, offset) != 0) {
        od_test_server_kill(env);
        return -1;
    }
    return 0;
}

int od_test_server_port(const od_test_env_t *env)
{
    return env->pid != 0 ? atomic_load(&env->port) : 0;
}

int od_test_server_pid(const od_test_env_t *env)
{
    return (int) env->pid;
}

int od_test_server_stop(od_test_env_t *env, long timeout_ms)
{
    int status = 0;

    if (env->pid == 0) {
        return -1;
    }
    kill(env->pid, SIGTERM);
    if (od_test_wait_pid(env->pid, timeout_ms, &status) != 0) {
        od_test_server_kill(env);
        return -1;
    }
    env->pid = 0;
    atomic_store(&env->port, 0);
    return od_test_exit_code(status);
}

int od_test_server_kill(od_test_env_t *env)
{
    int status = 0;

    if (env->pid == 0) {
        return -1;
    }
    kill(env->pid, SIGKILL);
    od_test_wait_pid(env->pid, OD_TEST_KILL_MS, &status);
    env->pid = 0;
    atomic_store(&env->port, 0);
    return 0;
}

char *od_test_server_log(const od_test_env_t *env)
{
    return od_test_read_from(env->log, 0);
}

int od_test_check_config(od_test_env_t *env, const char *config_path, char **err)
{
    return od_test_run_once(env, "-t", config_path, err);
}

int od_test_run_once(od_test_env_t *env, const char *option, const char *config_path, char **err)
{
    char out_path[PATH_MAX], err_path[PATH_MAX], name[64];
    int status = 0, rc = -1;

    snprintf(name, sizeof(name), "check-%d.err", env->nchecks++);
    if (od_test_join(err_path, env->dir, name) != 0 ||
        od_test_join(out_path, env->dir, "check.out") != 0) {
        return -1;
    }
    pid_t pid = od_test_spawn(out_path, err_path, (char *) option, "-c", (char *) config_path);
    if (pid > 0 && od_test_wait_pid(pid, OD_TEST_CHECK_MS, &status) == 0) {
        rc = od_test_exit_code(status);
    } else if (pid > 0) {
        kill(pid, SIGKILL);
        od_test_wait_pid(pid, OD_TEST_KILL_MS, &status);
    }
    if (err != NULL) {
        *err = od_test_read_from(err_path, 0);
    }
    return rc;
}

/* ---- raw TCP ---- */

static int od_test_connect(int port, long timeout_ms)
{
    struct sockaddr_in sa;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short) port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
                    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
                    connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Reads until EOF, an error, or the deadline; keeps what fits in @p reply. */
static long od_test_drain(int fd, char *reply, size_t reply_size, long timeout_ms)
{
    long deadline = od_test_now_ms() + timeout_ms;
    size_t cap = reply_size > 0 ? reply_size - 1 : 0, total = 0;
    char buf[4096];
    ssize_t n;

    while (od_test_now_ms() < deadline && (n = recv(fd, buf, sizeof(buf), 0)) > 0) {
        size_t room = total < cap ? cap - total : 0;
        if (room > 0) {
            memcpy(reply + total, buf, (size_t) n < room ? (size_t) n : room);
        }
        total += (size_t) n;
    }
    if (reply_size > 0) {
        reply[total < cap ? total : cap] = '\0';
    }
    return (long) total;
}

static long od_test_raw(const od_test_env_t *env, const void *data, size_t len, int half_close,
                        char *reply, size_t reply_size, long timeout_ms)
{
    int port = atomic_load(&env->port);
    int fd = port > 0 ? od_test_connect(port, timeout_ms) : -1;
    long rc = -1;

    if (fd < 0) {
        return -1;
    }
    if (send(fd, data, len, MSG_NOSIGNAL) == (ssize_t) len) {
        if (half_close) {
            shutdown(fd, SHUT_WR);
        }
        rc = od_test_drain(fd, reply, reply_size, timeout_ms);
    }
    close(fd);
    return rc;
}

long od_test_send_raw(const od_test_env_t *env, const void *data, size_t len, char *reply,
                      size_t reply_size, long timeout_ms)
{
    return od_test_raw(env, data, len, 1, reply, reply_size, timeout_ms);
}

long od_test_exchange_raw(const od_test_env_t *env, const void *data, size_t len, char *reply,
                          size_t reply_size, long timeout_ms)
{
    return od_test_raw(env, data, len, 0, reply, reply_size, timeout_ms);
}

int od_test_stored_orders(const od_test_env_t *env)
{
    char cmd[PATH_MAX + 64];
    int n = -1;

    snprintf(cmd, sizeof(cmd), "sqlite3 %s/orders.db 'SELECT count(*) FROM orders'",
             od_test_env_dir(env));
    FILE *f = popen(cmd, "r");
    if (f != NULL && fscanf(f, "%d", &n) != 1) {
        n = -1;
    }
    if (f != NULL) {
        pclose(f);
    }
    return n;
}

int od_test_connect_from(const char *source, int port)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, source, &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    dst.sin_port = htons((unsigned short) port);
    if (fd >= 0 && (bind(fd, (struct sockaddr *) &src, sizeof(src)) != 0 ||
                    connect(fd, (struct sockaddr *) &dst, sizeof(dst)) != 0)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

double od_test_metric(const od_test_env_t *env, const char *series)
{
    od_test_request_t req = {.method = "GET", .path = "/metrics"};
    od_test_response_t resp;
    char want[256];
    double v = -1;

    snprintf(want, sizeof(want), "\n%s ", series);
    if (od_test_http(env, &req, &resp) == 0 && resp.status == 200) {
        const char *at = strstr(resp.body, want);
        v = at != NULL ? strtod(at + strlen(want), NULL) : -1;
    }
    od_test_response_free(&resp);
    return v;
}

int od_test_server_limit_fsize(od_test_env_t *env, long long bytes)
{
    struct rlimit lim;
    pid_t pid = (pid_t) od_test_server_pid(env);

    if (pid <= 0 || prlimit(pid, RLIMIT_FSIZE, NULL, &lim) != 0) {
        return -1;
    }
    lim.rlim_cur = bytes < 0 ? lim.rlim_max : (rlim_t) bytes;
    return prlimit(pid, RLIMIT_FSIZE, &lim, NULL) == 0 ? 0 : -1;
}

/* ---- HTTP ---- */

typedef struct od_test_upload_t {
    const char *data;
    size_t len;
    size_t pos;
} od_test_upload_t;

static size_t od_test_on_body(char *data, size_t size, size_t nmemb, void *baton)
{
    od_test_response_t *r = baton;
    size_t n = size * nmemb;
    char *grown = realloc(r->body, r->body_len + n + 1);

    if (grown == NULL) {
        return 0;
    }
    memcpy(grown + r->body_len, data, n);
    r->body = grown;
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

static void od_test_clear_headers(od_test_response_t *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i]);
    }
    free(r->headers);
    r->headers = NULL;
    r->nheaders = 0;
}

static size_t od_test_on_header(char *data, size_t size, size_t nmemb, void *baton)
{
    od_test_response_t *r = baton;
    size_t n = size * nmemb, len = n;

    while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n')) {
        len--;
    }
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        od_test_clear_headers(r); /* a new status line: keep only the final response's */
        return n;
    }
    char **grown = realloc(r->headers, (r->nheaders + 1) * sizeof(*grown));
    char *line = len > 0 ? strndup(data, len) : NULL;
    if (grown != NULL) {
        r->headers = grown;
    }
    if (grown == NULL || line == NULL) {
        free(line);
        return len > 0 ? 0 : n;
    }
    r->headers[r->nheaders++] = line;
    return n;
}

/* Hands out at most OD_TEST_CHUNK bytes a call, so a chunked upload really has many chunks. */
static size_t od_test_on_read(char *buf, size_t size, size_t nmemb, void *baton)
{
    od_test_upload_t *u = baton;
    size_t n = u->len - u->pos;

    if (n > size * nmemb) {
        n = size * nmemb;
    }
    if (n > OD_TEST_CHUNK) {
        n = OD_TEST_CHUNK;
    }
    memcpy(buf, u->data + u->pos, n);
    u->pos += n;
    return n;
}

static struct curl_slist *od_test_headers(const od_test_request_t *req)
{
    struct curl_slist *h = curl_slist_append(NULL, "Expect:"); /* no 100-continue round trip */
    char line[512];

    if (req->api_key != NULL) {
        snprintf(line, sizeof(line), "X-API-Key: %s", req->api_key);
        h = curl_slist_append(h, line);
    }
    if (req->content_type != NULL || req->body != NULL) {
        const char *ct = req->content_type != NULL ? req->content_type : "application/json";
        snprintf(line, sizeof(line), "Content-Type:%s%s", *ct ? " " : "", ct);
        h = curl_slist_append(h, line);
    }
    if (req->chunked) {
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
    }
    if (req->header != NULL) {
        h = curl_slist_append(h, req->header);
    }
    return h;
}

static void od_test_set_body(CURL *c, const od_test_request_t *req, od_test_upload_t *up)
{
    if (req->body == NULL) {
        if (strcmp(req->method, "HEAD") == 0) {
            curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        }
        return;
    }
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    if (req->chunked) {
        up->data = req->body;
        up->len = req->body_len;
        curl_easy_setopt(c, CURLOPT_READFUNCTION, od_test_on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, up);
    } else {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
    }
}

static void od_test_set_common(CURL *c, const od_test_request_t *req, od_test_response_t *out)
{
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never via a proxy from the environment */
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     req->timeout_ms > 0 ? req->timeout_ms : OD_TEST_HTTP_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, od_test_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, od_test_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
}

int od_test_http(const od_test_env_t *env, const od_test_request_t *req, od_test_response_t *out)
{
    char url[PATH_MAX + 64];
    od_test_upload_t up = {NULL, 0, 0};
    CURL *c = curl_easy_init();
    int port = atomic_load(&env->port);

    memset(out, 0, sizeof(*out));
    out->body = calloc(1, 1);
    if (c == NULL || out->body == NULL || port <= 0) {
        snprintf(out->error, sizeof(out->error), "no daemon, or out of memory");
        curl_easy_cleanup(c);
        return -1;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, req->path);
    struct curl_slist *headers = od_test_headers(req);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    od_test_set_common(c, req, out);
    od_test_set_body(c, req, &up);
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0 &&
        (strcmp(req->method, "POST") != 0 || req->body == NULL)) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    }
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, out->error);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (rc != CURLE_OK && out->error[0] == '\0') {
        snprintf(out->error, sizeof(out->error), "%s", curl_easy_strerror(rc));
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    return rc == CURLE_OK ? 0 : -1;
}

const char *od_test_response_header(const od_test_response_t *resp, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < resp->nheaders; i++) {
        const char *h = resp->headers[i];
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            h += n + 1;
            while (*h == ' ' || *h == '\t') {
                h++;
            }
            return h;
        }
    }
    return NULL;
}

void od_test_response_free(od_test_response_t *resp)
{
    od_test_clear_headers(resp);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

/* Whether @p pid runs @p bin and sleeps in openat(2): /proc/PID/syscall starts with the number
 * of the call a sleeping process is in ("running" otherwise). */
static int od_test_blocked_in_open(pid_t pid, const char *bin)
{
    char path[64], exe[PATH_MAX], want[PATH_MAX], call[64] = "";

    snprintf(path, sizeof(path), "/proc/%ld/exe", (long) pid);
    ssize_t n = readlink(path, exe, sizeof(exe) - 1);
    if (n <= 0 || realpath(bin, want) == NULL) {
        return 0;
    }
    exe[n] = '\0';
    snprintf(path, sizeof(path), "/proc/%ld/syscall", (long) pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    int got = fgets(call, sizeof(call), f) != NULL;
    fclose(f);
    return got && strcmp(exe, want) == 0 && call[0] >= '0' && call[0] <= '9' &&
           atol(call) == SYS_openat;
}

int od_test_signal_when_blocked(od_test_env_t *env, const char *bin, const char *option,
                                const char *config_path, int sig, long timeout_ms)
{
    char out_path[PATH_MAX];
    int status = 0, rc = -1, blocked = 0;

    bin = bin != NULL ? bin : getenv("ORDERD_BIN");
    if (bin == NULL || od_test_join(out_path, env->dir, "blocked.out") != 0) {
        return -1;
    }
    pid_t pid = od_test_spawn_bin((char *) bin, out_path, out_path, (char *) option, "-c",
                                  (char *) config_path);
    if (pid <= 0) {
        return -1;
    }
    for (long deadline = od_test_now_ms() + OD_TEST_CHECK_MS;
         !blocked && od_test_now_ms() < deadline; od_test_sleep_ms(OD_TEST_POLL_MS)) {
        blocked = od_test_blocked_in_open(pid, bin);
    }
    if (blocked) {
        kill(pid, sig);
        rc = od_test_wait_pid(pid, timeout_ms, &status) == 0 ? od_test_exit_code(status) : -1;
    }
    if (rc == -1) {
        kill(pid, SIGKILL);
        od_test_wait_pid(pid, OD_TEST_KILL_MS, &status);
    }
    return rc;
}
