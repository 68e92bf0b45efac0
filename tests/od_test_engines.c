/*
 * od_test_engines: moto_server, DynamoDB Local and a fault-injecting HTTP/1.1 proxy for tests.
 *
 * Engines run in their own session (setsid), so a stop reaches the whole process group, and with
 * PR_SET_PDEATHSIG, so they die with the thread that started them even when a test _exits. Each
 * engine writes its log to a temporary directory that is removed when it stops.
 *
 * The proxy runs one accept thread and one thread per client connection. Every blocking call is
 * a poll() of at most OD_ENG_SLICE_MS followed by a non-blocking read or write, so each thread
 * notices a stop within that slice; threads close their own sockets, the stop only joins them.
 */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* memmem, strcasestr, accept4, prctl, mkdtemp, nftw */
#endif

#include "od_test_engines.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OD_ENG_MOTO_MS 20000L /* moto_server (Python, via pyenv shims) starts in about 1 s */
#define OD_ENG_DDB_MS 30000L  /* a cold JVM loading DynamoDB Local takes a few seconds */
#define OD_ENG_STOP_MS 5000L  /* SIGTERM, then SIGKILL */
#define OD_ENG_POLL_MS 50L    /* between readiness probes */
#define OD_ENG_PROBE_MS 2000L /* one readiness probe */
#define OD_ENG_SLICE_MS 100   /* longest single poll(): how late a proxy thread sees a stop */
#define OD_ENG_IO_MS 30000L   /* a request body or an upstream response must arrive within */
#define OD_ENG_CONNECT_MS 5000L
#define OD_ENG_TAIL 1500 /* bytes of an engine's log shown when it fails to start */
#define OD_ENG_MSG 4096
#define OD_ENG_HEAD_MAX 65536
#define OD_ENG_BODY_MAX (16L * 1024 * 1024)
#define OD_ENG_READ 16384

extern char **environ;

/* ---- small helpers ---- */

static void od_eng_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static long od_eng_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long) ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int od_eng_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static void od_eng_remove_tree(const char *path)
{
    if (path[0] != '\0') {
        nftw(path, od_eng_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static struct sockaddr_in od_eng_loopback(int port)
{
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short) port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* A non-blocking listening socket on 127.0.0.1:@p port (0: any free port); -1 on failure. */
static int od_eng_listen(int port, int backlog, int *bound)
{
    struct sockaddr_in sa = od_eng_loopback(port);
    socklen_t len = sizeof(sa);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *) &sa, &len) != 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

/* A port that was free a moment ago; the engine binds it later (a small race, hence a retry). */
static int od_eng_free_port(void)
{
    int port = 0, fd = od_eng_listen(0, 1, &port);

    if (fd < 0) {
        return 0;
    }
    close(fd);
    return port;
}

/* Heads and bodies go out in separate sends: without TCP_NODELAY each request would wait for
 * a delayed ACK (about 40 ms). */
static void od_eng_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Connects to 127.0.0.1:@p port within @p timeout_ms; returns a non-blocking socket or -1. */
static int od_eng_connect(int port, long timeout_ms)
{
    struct sockaddr_in sa = od_eng_loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct pollfd pfd = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t elen = sizeof(err);

    if (fd < 0) {
        return -1;
    }
    od_eng_nodelay(fd);
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0) {
        return fd;
    }
    if (errno != EINPROGRESS || poll(&pfd, 1, (int) timeout_ms) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- engines: processes ---- */

struct od_test_engine_s {
    const char *name; /* "moto_server", "DynamoDB Local" */
    char dir[PATH_MAX];
    char log[PATH_MAX + 16];
    char url[64];
    int port;
    pid_t pid; /* 0: not running (or already reaped) */
};

/* What a spawn needs, all prepared before fork() so the child only makes syscalls. */
typedef struct od_eng_spawn_t {
    char *argv[12];
    char **envp;
    const char *log;
    const char *dir;
} od_eng_spawn_t;

/* Finds @p prog on PATH (or takes it as is if it has a slash); 0 or -1. */
static int od_eng_which(const char *prog, char *out, size_t cap)
{
    const char *path = getenv("PATH");

    if (strchr(prog, '/') != NULL) {
        snprintf(out, cap, "%s", prog);
        return access(out, X_OK);
    }
    while (path != NULL && *path != '\0') {
        const char *colon = strchr(path, ':');
        int n = colon != NULL ? (int) (colon - path) : (int) strlen(path);
        int w = snprintf(out, cap, "%.*s/%s", n, path, prog);
        if (w > 0 && (size_t) w < cap && access(out, X_OK) == 0) {
            return 0;
        }
        path = colon != NULL ? colon + 1 : NULL;
    }
    return -1;
}

static bool od_eng_env_overridden(const char *entry, const char *const *extra)
{
    size_t n = strcspn(entry, "=");

    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (strncmp(entry, extra[i], n) == 0 && extra[i][n] == '=') {
            return true;
        }
    }
    return false;
}

/* The environment plus @p extra (which wins over same-named entries); NULL if out of memory. */
static char **od_eng_env(const char *const *extra)
{
    size_t n = 0, m = 0, k = 0;

    while (environ[n] != NULL) {
        n++;
    }
    while (extra != NULL && extra[m] != NULL) {
        m++;
    }
    char **envp = calloc(n + m + 1, sizeof(*envp));
    for (size_t i = 0; envp != NULL && i < m; i++) {
        envp[k++] = (char *) extra[i];
    }
    for (size_t i = 0; envp != NULL && i < n; i++) {
        if (!od_eng_env_overridden(environ[i], extra)) {
            envp[k++] = environ[i];
        }
    }
    return envp;
}

/* In the child: its own session, output to the log, then exec. Never returns. */
static void od_eng_exec_child(pid_t parent, const od_eng_spawn_t *s)
{
    sigset_t none;
    struct sigaction dfl;

    /* Die with the test process, whatever way it ends (a failed Check assertion _exits). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(127);
    }
    setsid(); /* a process group of its own: stop signals it and any children it forks */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL); /* an ignored signal would stay ignored across exec */
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int in = open("/dev/null", O_RDONLY);
    int out = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 ||
        chdir(s->dir) != 0) {
        _exit(127);
    }
    execve(s->argv[0], s->argv, s->envp);
    _exit(127);
}

static pid_t od_eng_spawn(const od_eng_spawn_t *s)
{
    pid_t parent = getpid();

    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid == 0) {
        od_eng_exec_child(parent, s);
    }
    return pid;
}

/* Waits up to @p timeout_ms for @p pid to exit; 0 and its status, or -1 if still running. */
static int od_eng_wait_pid(pid_t pid, long timeout_ms, int *status)
{
    long deadline = od_eng_now_ms() + timeout_ms;

    for (;;) {
        pid_t got = waitpid(pid, status, WNOHANG);
        if (got == pid || (got < 0 && errno != EINTR)) {
            return 0; /* exited, or not our child any more: nothing left to wait for */
        }
        if (od_eng_now_ms() >= deadline) {
            return -1;
        }
        od_eng_sleep_ms(10);
    }
}

/* Signals the process and its group; before setsid() has run only the process is reached. */
static void od_eng_signal(pid_t pid, int sig)
{
    kill(-pid, sig);
    kill(pid, sig);
}

static void od_eng_kill(od_test_engine_t *e)
{
    int status;

    if (e->pid <= 0) {
        return;
    }
    od_eng_signal(e->pid, SIGTERM);
    if (od_eng_wait_pid(e->pid, OD_ENG_STOP_MS, &status) != 0) {
        od_eng_signal(e->pid, SIGKILL);
        od_eng_wait_pid(e->pid, OD_ENG_STOP_MS, &status);
    }
    kill(-e->pid, SIGKILL); /* whatever the engine forked and left behind in its group */
    e->pid = 0;
}

/* ---- engines: readiness ---- */

/* Sends @p probe to 127.0.0.1:@p port; 0 if any HTTP response starts coming back. */
static int od_eng_probe(int port, const char *probe)
{
    int fd = od_eng_connect(port, OD_ENG_PROBE_MS);
    char buf[8] = "";
    size_t got = 0;
    long deadline = od_eng_now_ms() + OD_ENG_PROBE_MS;

    if (fd < 0) {
        return -1;
    }
    if (send(fd, probe, strlen(probe), MSG_NOSIGNAL) != (ssize_t) strlen(probe)) {
        close(fd);
        return -1;
    }
    while (got < 5 && od_eng_now_ms() < deadline) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, OD_ENG_SLICE_MS) <= 0) {
            continue;
        }
        ssize_t n = recv(fd, buf + got, 5 - got, MSG_DONTWAIT);
        if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
            break;
        }
        got += n > 0 ? (size_t) n : 0;
    }
    close(fd);
    return got == 5 && memcmp(buf, "HTTP/", 5) == 0 ? 0 : -1;
}

/* The last OD_ENG_TAIL bytes of the engine's log, for a failure message. */
static void od_eng_log_tail(const od_test_engine_t *e, char *out, size_t cap)
{
    FILE *f = fopen(e->log, "rb");
    size_t n = 0;

    out[0] = '\0';
    if (f == NULL) {
        return;
    }
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        long from = size > OD_ENG_TAIL ? size - OD_ENG_TAIL : 0;
        if (fseek(f, from, SEEK_SET) == 0) {
            n = fread(out, 1, cap - 1, f);
        }
    }
    out[n] = '\0';
    fclose(f);
}

/* Waits for the engine to answer @p probe; on failure says why in @p why. */
static int od_eng_await(od_test_engine_t *e, const char *probe, long timeout_ms, char *why,
                        size_t cap)
{
    long start = od_eng_now_ms();
    int status = 0;

    for (;;) {
        pid_t got = waitpid(e->pid, &status, WNOHANG);
        if (got == e->pid) {
            e->pid = 0;
            snprintf(why, cap, "%s %d", WIFEXITED(status) ? "exited with status" : "died of signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            return -1;
        }
        if (od_eng_probe(e->port, probe) == 0) {
            return 0;
        }
        if (od_eng_now_ms() - start >= timeout_ms) {
            snprintf(why, cap, "did not answer within %ld ms", timeout_ms);
            return -1;
        }
        od_eng_sleep_ms(OD_ENG_POLL_MS);
    }
}

/* ---- engines: start and stop ---- */

static void od_eng_free(od_test_engine_t *e)
{
    od_eng_kill(e);
    od_eng_remove_tree(e->dir);
    free(e);
}

static od_test_engine_t *od_eng_new(const char *name, char *msg, size_t cap)
{
    od_test_engine_t *e = calloc(1, sizeof(*e));

    if (e == NULL) {
        snprintf(msg, cap, "%s: out of memory", name);
        return NULL;
    }
    e->name = name;
    snprintf(e->dir, sizeof(e->dir), "/tmp/orderd-engine-XXXXXX");
    if (mkdtemp(e->dir) == NULL) {
        snprintf(msg, cap, "%s: no temporary directory: %s", name, strerror(errno));
        free(e); /* nothing to remove: e->dir may name someone else's directory now */
        return NULL;
    }
    if ((e->port = od_eng_free_port()) == 0) {
        snprintf(msg, cap, "%s: no free port on 127.0.0.1: %s", name, strerror(errno));
        od_eng_free(e);
        return NULL;
    }
    snprintf(e->log, sizeof(e->log), "%s/engine.log", e->dir);
    snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%d", e->port);
    return e;
}

/* Starts one engine and waits for it; NULL (everything undone) with the reason in @p msg. */
static od_test_engine_t *od_eng_try(const char *name, od_eng_spawn_t *s, const char *probe,
                                    long timeout_ms, char *msg, size_t cap)
{
    char port[16], why[128], tail[OD_ENG_TAIL + 1];
    od_test_engine_t *e = od_eng_new(name, msg, cap);

    if (e == NULL) {
        return NULL;
    }
    snprintf(port, sizeof(port), "%d", e->port);
    for (size_t i = 0; s->argv[i] != NULL; i++) {
        s->argv[i] = strcmp(s->argv[i], "@PORT@") == 0 ? port : s->argv[i];
    }
    s->log = e->log;
    s->dir = e->dir;
    e->pid = od_eng_spawn(s);
    if (e->pid > 0 && od_eng_await(e, probe, timeout_ms, why, sizeof(why)) == 0) {
        return e;
    }
    if (e->pid < 0) {
        snprintf(why, sizeof(why), "fork failed: %s", strerror(errno));
        e->pid = 0;
    }
    od_eng_kill(e); /* before reading the log: the engine may still be writing it */
    od_eng_log_tail(e, tail, sizeof(tail));
    snprintf(msg, cap, "%s on port %d %s; end of its log:\n%s", name, e->port, why, tail);
    od_eng_free(e);
    return NULL;
}

/* Tries twice (a port found free can be taken before the engine binds it), else aborts. */
static od_test_engine_t *od_eng_start(const char *name, const od_eng_spawn_t *tmpl,
                                      const char *probe, long timeout_ms)
{
    char msg[OD_ENG_MSG] = "";
    od_test_engine_t *e = NULL;
    long start = od_eng_now_ms();

    for (int attempt = 0; attempt < 2 && e == NULL; attempt++) {
        od_eng_spawn_t s = *tmpl; /* a fresh argv: @PORT@ is replaced in place */
        e = od_eng_try(name, &s, probe, timeout_ms, msg, sizeof(msg));
    }
    free(tmpl->envp);
    if (e == NULL) {
        fprintf(stderr, "od_test_engines: %s\n", msg);
        ck_abort_msg("%s", msg);
    }
    fprintf(stderr, "od_test_engines: %s ready at %s in %ld ms\n", name, e->url,
            od_eng_now_ms() - start);
    return e;
}

od_test_engine_t *od_test_moto_start(const char *const *env)
{
    char bin[PATH_MAX];
    od_eng_spawn_t s = {{bin, "-H", "127.0.0.1", "-p", "@PORT@", NULL}, NULL, NULL, NULL};

    if (od_eng_which("moto_server", bin, sizeof(bin)) != 0) {
        ck_abort_msg("moto_server is not on PATH (scripts/test.sh installs it: moto[server])");
    }
    s.envp = od_eng_env(env);
    ck_assert_msg(s.envp != NULL, "out of memory");
    return od_eng_start("moto_server", &s,
                        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                        OD_ENG_MOTO_MS);
}

/* DynamoDB Local answers 400 MissingAuthenticationToken to this unsigned call: ready enough. */
#define OD_ENG_DDB_PROBE                                                                           \
    "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n"         \
    "Content-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"

od_test_engine_t *od_test_ddblocal_start(void)
{
    char java[PATH_MAX], jar[PATH_MAX], libpath[PATH_MAX + 32];
    const char *env_jar = getenv("ORDERD_TEST_DDB_JAR");
    od_eng_spawn_t s = {
        {java, libpath, "-jar", jar, "-inMemory", "-port", "@PORT@", NULL}, NULL, NULL, NULL};

    /* Absolute, because the engine runs in its own directory. */
    if (env_jar == NULL || *env_jar == '\0' || realpath(env_jar, jar) == NULL ||
        access(jar, R_OK) != 0) {
        ck_abort_msg("ORDERD_TEST_DDB_JAR is %s%s%s: it must name DynamoDBLocal.jar (scripts/"
                     "test.sh installs it from npm and exports it)",
                     env_jar ? "'" : "unset", env_jar ? env_jar : "", env_jar ? "', missing" : "");
    }
    if (od_eng_which("java", java, sizeof(java)) != 0) {
        ck_abort_msg("java is not on PATH (scripts/test.sh installs default-jre-headless)");
    }
    int dirlen = (int) (strrchr(jar, '/') - jar);
    snprintf(libpath, sizeof(libpath), "-Djava.library.path=%.*s/DynamoDBLocal_lib", dirlen, jar);
    s.envp = od_eng_env(NULL);
    ck_assert_msg(s.envp != NULL, "out of memory");
    return od_eng_start("DynamoDB Local", &s, OD_ENG_DDB_PROBE, OD_ENG_DDB_MS);
}

const char *od_test_engine_url(const od_test_engine_t *e)
{
    return e->url;
}

void od_test_engine_stop(od_test_engine_t *e)
{
    if (e != NULL) {
        od_eng_free(e);
    }
}

/* ---- proxy: buffers and HTTP messages ---- */

/* Received bytes, always NUL-terminated so the parsers below never run off the end. */
typedef struct od_eng_buf_t {
    char *data;
    size_t len;
    size_t cap;
} od_eng_buf_t;

static int od_eng_buf_reserve(od_eng_buf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap) {
        return 0;
    }
    size_t cap = b->cap > 0 ? b->cap : 4096;
    while (cap < b->len + more + 1) {
        cap *= 2;
    }
    char *grown = realloc(b->data, cap);
    if (grown == NULL) {
        return -1;
    }
    b->data = grown;
    b->cap = cap;
    return 0;
}

/* Drops the first @p n bytes (a handled message), keeping what follows it. */
static void od_eng_buf_consume(od_eng_buf_t *b, size_t n)
{
    n = n < b->len ? n : b->len;
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    if (b->data != NULL) {
        b->data[b->len] = '\0';
    }
}

/* What the proxy needs from a request or response head. */
typedef struct od_eng_head_t {
    size_t head_len; /* through the blank line */
    int status;      /* responses: the status code */
    bool head_req;   /* requests: HEAD (its response has no body) */
    bool has_length;
    size_t length;
    bool chunked;
    bool close;
    bool expect100;
    bool bad;
    char target[128]; /* requests: X-Amz-Target, or "" */
} od_eng_head_t;

static bool od_eng_is_field(const char *line, size_t nlen, const char *name)
{
    return nlen == strlen(name) && strncasecmp(line, name, nlen) == 0;
}

static void od_eng_parse_field(const char *line, size_t len, od_eng_head_t *h)
{
    const char *colon = memchr(line, ':', len);
    char value[256];

    if (colon == NULL) {
        return;
    }
    size_t nlen = (size_t) (colon - line), vlen = len - nlen - 1;
    const char *v = colon + 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    snprintf(value, sizeof(value), "%.*s", (int) vlen, v);
    if (od_eng_is_field(line, nlen, "Content-Length")) {
        char *end = NULL;
        h->length = strtoul(value, &end, 10);
        h->has_length = true;
        h->bad |= end == value || h->length > (size_t) OD_ENG_BODY_MAX;
    } else if (od_eng_is_field(line, nlen, "Transfer-Encoding")) {
        h->chunked = strcasestr(value, "chunked") != NULL;
    } else if (od_eng_is_field(line, nlen, "Connection")) {
        h->close = strcasestr(value, "close") != NULL;
    } else if (od_eng_is_field(line, nlen, "Expect")) {
        h->expect100 = strcasestr(value, "100-continue") != NULL;
    } else if (od_eng_is_field(line, nlen, "X-Amz-Target")) {
        snprintf(h->target, sizeof(h->target), "%.*s", (int) sizeof(h->target) - 1, value);
    }
}

/* Parses the head at the start of @p s (NUL-terminated, ends with a blank line at head_len). */
static void od_eng_parse_head(const char *s, size_t head_len, od_eng_head_t *h)
{
    const char *line = strstr(s, "\r\n") + 2, *end = s + head_len - 2;
    int major = 0, minor = 0;

    h->head_len = head_len;
    if (sscanf(s, "HTTP/%d.%d %d", &major, &minor, &h->status) != 3) {
        h->status = 0;
        h->head_req = strncmp(s, "HEAD ", 5) == 0;
    }
    while (line < end) {
        const char *eol = strstr(line, "\r\n");
        od_eng_parse_field(line, (size_t) (eol - line), h);
        line = eol + 2;
    }
    h->close |= h->status > 0 && major == 1 && minor == 0; /* HTTP/1.0: closes unless told */
}

/*
 * The length of the complete chunked body at @p s (@p n bytes, NUL-terminated), 0 while more is
 * needed, -1 if it is malformed. The proxy relays chunked responses as they are.
 */
static long od_eng_chunked_len(const char *s, size_t n)
{
    size_t pos = 0;

    for (int chunks = 0; chunks < 100000; chunks++) {
        const char *eol = strstr(s + pos, "\r\n");
        char *end = NULL;
        if (eol == NULL) {
            return 0;
        }
        unsigned long size = strtoul(s + pos, &end, 16);
        if (end == s + pos || size > (unsigned long) OD_ENG_BODY_MAX) {
            return -1;
        }
        pos = (size_t) (eol - s) + 2;
        if (size == 0) { /* then trailer fields up to a blank line */
            const char *fin = strstr(s + pos - 2, "\r\n\r\n");
            return fin != NULL ? (long) (fin - s) + 4 : 0;
        }
        if (n - pos < size + 2) {
            return 0;
        }
        pos += size + 2;
    }
    return -1;
}

/* ---- proxy: state ---- */

typedef struct od_eng_conn_s od_eng_conn_t;

struct od_test_proxy_s {
    int lfd;
    int up_port;
    char url[64];
    pthread_t acceptor;
    atomic_bool stopping;
    atomic_uint connects;
    atomic_uint requests;
    pthread_mutex_t mu;
    od_test_proxy_mode_e mode; /* under mu, like the three below */
    int count;                 /* requests left in mode; -1: until changed */
    char target[128];          /* faults only requests with this in X-Amz-Target; "": all */
    unsigned int open;
    unsigned int max_open;
    od_eng_conn_t *conns; /* written by the acceptor only; joined by the stop */
};

struct od_eng_conn_s {
    od_test_proxy_t *p;
    pthread_t thread;
    int fd; /* the client; this thread's own */
    int up; /* the upstream, -1 until a request is forwarded or after it closed */
    od_eng_buf_t in;
    od_eng_buf_t resp;
    od_eng_conn_t *next;
};

/* ---- proxy: socket I/O bounded by a deadline and the stop ---- */

/* Waits for @p events on @p fd; 0 when ready, -1 on stop, error or @p deadline (0: none). */
static int od_eng_wait_io(od_test_proxy_t *p, int fd, short events, long deadline)
{
    for (;;) {
        struct pollfd pfd = {fd, events, 0};
        if (atomic_load(&p->stopping) || (deadline > 0 && od_eng_now_ms() >= deadline)) {
            return -1;
        }
        int n = poll(&pfd, 1, OD_ENG_SLICE_MS);
        if (n > 0) {
            return 0;
        }
        if (n < 0 && errno != EINTR) {
            return -1;
        }
    }
}

/* Reads what arrives next into @p b: bytes read, 0 at end of stream, -1 on failure. */
static long od_eng_read_some(od_test_proxy_t *p, int fd, od_eng_buf_t *b, long deadline)
{
    for (;;) {
        if (od_eng_wait_io(p, fd, POLLIN, deadline) != 0 ||
            od_eng_buf_reserve(b, OD_ENG_READ) != 0) {
            return -1;
        }
        ssize_t n = recv(fd, b->data + b->len, OD_ENG_READ, MSG_DONTWAIT);
        if (n >= 0) {
            b->len += (size_t) n;
            b->data[b->len] = '\0';
            return (long) n;
        }
        if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
}

static int od_eng_write_all(od_test_proxy_t *p, int fd, const char *data, size_t len)
{
    long deadline = od_eng_now_ms() + OD_ENG_IO_MS;

    while (len > 0) {
        if (od_eng_wait_io(p, fd, POLLOUT, deadline) != 0) {
            return -1;
        }
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
        data += n > 0 ? n : 0;
        len -= n > 0 ? (size_t) n : 0;
    }
    return 0;
}

/* Reads until @p b holds a whole head: its length, 0 at a clean end of stream, -1 on failure. */
static long od_eng_read_head(od_test_proxy_t *p, int fd, od_eng_buf_t *b, long deadline)
{
    for (;;) {
        const char *end = b->len > 0 ? strstr(b->data, "\r\n\r\n") : NULL;
        if (end != NULL) {
            return (long) (end - b->data) + 4;
        }
        if (b->len > OD_ENG_HEAD_MAX) {
            return -1;
        }
        long n = od_eng_read_some(p, fd, b, deadline);
        if (n <= 0) {
            return n == 0 && b->len == 0 ? 0 : -1;
        }
    }
}

static int od_eng_read_upto(od_test_proxy_t *p, int fd, od_eng_buf_t *b, size_t want, long deadline)
{
    while (b->len < want) {
        if (od_eng_read_some(p, fd, b, deadline) <= 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- proxy: answers of its own ---- */

static int od_eng_answer(od_eng_conn_t *c, int status, const char *reason, const char *body,
                         bool close_after)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/x-amz-json-1.0\r\n"
                     "Content-Length: %zu\r\nx-amzn-RequestId: od-test-proxy\r\n"
                     "Connection: %s\r\n\r\n",
                     status, reason, strlen(body), close_after ? "close" : "keep-alive");

    if (od_eng_write_all(c->p, c->fd, head, (size_t) n) != 0 ||
        od_eng_write_all(c->p, c->fd, body, strlen(body)) != 0) {
        return -1;
    }
    return close_after ? -1 : 0;
}

#define OD_ENG_DDB_ERROR(type, msg)                                                                \
    "{\"__type\":\"com.amazonaws.dynamodb.v20120810#" type "\",\"message\":\"" msg "\"}"

static int od_eng_bad_gateway(od_eng_conn_t *c)
{
    return od_eng_answer(c, 502, "Bad Gateway",
                         OD_ENG_DDB_ERROR("BadGateway", "od_test_proxy: upstream failed"), true);
}

/* ---- proxy: forwarding ---- */

/* A kept upstream connection that is readable between requests has been closed by the peer. */
static bool od_eng_stale(int fd)
{
    struct pollfd pfd = {fd, POLLIN, 0};

    return poll(&pfd, 1, 0) != 0;
}

static int od_eng_upstream(od_eng_conn_t *c)
{
    if (c->up >= 0 && od_eng_stale(c->up)) {
        close(c->up);
        c->up = -1;
    }
    if (c->up < 0) {
        c->up = od_eng_connect(c->p->up_port, OD_ENG_CONNECT_MS);
    }
    return c->up >= 0 ? 0 : -1;
}

/* Reads the body after the head @p h in c->resp; sets @p *total; @p *by_eof if close-delimited. */
static int od_eng_read_resp_body(od_eng_conn_t *c, const od_eng_head_t *h, bool head_req,
                                 long deadline, size_t *total, bool *by_eof)
{
    od_eng_buf_t *b = &c->resp;

    *by_eof = false;
    if (head_req || h->status < 200 || h->status == 204 || h->status == 304) {
        *total = h->head_len;
        return 0;
    }
    if (h->has_length) {
        *total = h->head_len + h->length;
        return od_eng_read_upto(c->p, c->up, b, *total, deadline);
    }
    for (int reads = 0; reads < 100000; reads++) { /* chunked, or until the upstream closes */
        long n = h->chunked ? od_eng_chunked_len(b->data + h->head_len, b->len - h->head_len) : 0;
        if (n != 0) {
            *total = h->head_len + (size_t) n;
            return n > 0 ? 0 : -1;
        }
        n = od_eng_read_some(c->p, c->up, b, deadline);
        if (n == 0 && !h->chunked) {
            *total = b->len;
            *by_eof = true;
            return 0;
        }
        if (n <= 0 || b->len > (size_t) OD_ENG_BODY_MAX) {
            return -1;
        }
    }
    return -1;
}

/* Reads the final response (1xx ones are dropped: the proxy answered Expect itself). */
static int od_eng_read_response(od_eng_conn_t *c, bool head_req, od_eng_head_t *h, size_t *total,
                                bool *by_eof)
{
    long deadline = od_eng_now_ms() + OD_ENG_IO_MS;

    c->resp.len = 0;
    for (int interim = 0; interim < 10; interim++) {
        long head_len = od_eng_read_head(c->p, c->up, &c->resp, deadline);
        if (head_len <= 0) {
            return -1;
        }
        memset(h, 0, sizeof(*h));
        od_eng_parse_head(c->resp.data, (size_t) head_len, h);
        if (h->status < 100 || h->bad) {
            return -1;
        }
        if (h->status >= 200) {
            return od_eng_read_resp_body(c, h, head_req, deadline, total, by_eof);
        }
        od_eng_buf_consume(&c->resp, (size_t) head_len);
    }
    return -1;
}

/* Appends @p len bytes; the response head is rebuilt in a buffer of its own. */
static int od_eng_append(od_eng_buf_t *b, const char *data, size_t len)
{
    if (od_eng_buf_reserve(b, len) != 0) {
        return -1;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

/*
 * The upstream's head without its hop-by-hop fields, so that the client's connection stays
 * open however the upstream handles its own (moto answers every request with Connection: close).
 */
static int od_eng_client_head(const char *s, const od_eng_head_t *h, bool by_eof, size_t body_len,
                              od_eng_buf_t *out)
{
    const char *line = s, *end = s + h->head_len - 2;
    char len[64];

    while (line < end) {
        const char *eol = strstr(line, "\r\n") + 2;
        size_t nlen = strcspn(line, ":\r");
        if (!od_eng_is_field(line, nlen, "Connection") &&
            !od_eng_is_field(line, nlen, "Keep-Alive") &&
            od_eng_append(out, line, (size_t) (eol - line)) != 0) {
            return -1;
        }
        line = eol;
    }
    int n = snprintf(len, sizeof(len), "Content-Length: %zu\r\n", body_len);
    if (by_eof && od_eng_append(out, len, (size_t) n) != 0) {
        return -1;
    }
    return od_eng_append(out, "\r\n", 2);
}

static int od_eng_relay(od_eng_conn_t *c, const od_eng_head_t *h, size_t total, bool by_eof)
{
    od_eng_buf_t head = {NULL, 0, 0};
    size_t body_len = total - h->head_len;
    int rc = od_eng_client_head(c->resp.data, h, by_eof, body_len, &head);

    if (rc == 0) {
        rc = od_eng_write_all(c->p, c->fd, head.data, head.len);
    }
    if (rc == 0) {
        rc = od_eng_write_all(c->p, c->fd, c->resp.data + h->head_len, body_len);
    }
    free(head.data);
    return rc;
}

/* Sends the request (the first @p len bytes of c->in) upstream and reads the response into
 * c->resp: its head @p h, length @p total, @p by_eof as for od_eng_read_resp_body. 0, or -1 with
 * the upstream connection closed. */
static int od_eng_exchange(od_eng_conn_t *c, const od_eng_head_t *req, size_t len, od_eng_head_t *h,
                           size_t *total, bool *by_eof)
{
    if (od_eng_upstream(c) != 0 || od_eng_write_all(c->p, c->up, c->in.data, len) != 0 ||
        od_eng_read_response(c, req->head_req, h, total, by_eof) != 0) {
        if (c->up >= 0) {
            close(c->up);
            c->up = -1;
        }
        return -1;
    }
    if (h->close || *by_eof) { /* the next request opens a new upstream connection */
        close(c->up);
        c->up = -1;
    }
    return 0;
}

/* Forwards the request and relays the response. */
static int od_eng_forward(od_eng_conn_t *c, const od_eng_head_t *req, size_t len)
{
    od_eng_head_t h;
    size_t total = 0;
    bool by_eof = false;

    if (od_eng_exchange(c, req, len, &h, &total, &by_eof) != 0) {
        return od_eng_bad_gateway(c);
    }
    return od_eng_relay(c, &h, total, by_eof);
}

/* Forwards the request, so that the upstream applies it, and never answers it: the connection
 * is closed at once or, with @p hold, once the client closes it (bounded by OD_ENG_IO_MS and the
 * stop). Returns -1: the connection is done. */
static int od_eng_forward_unanswered(od_eng_conn_t *c, const od_eng_head_t *req, size_t len,
                                     bool hold)
{
    od_eng_head_t h;
    size_t total = 0;
    bool by_eof = false;
    long deadline = od_eng_now_ms() + OD_ENG_IO_MS;

    od_eng_exchange(c, req, len, &h, &total, &by_eof);
    while (hold && od_eng_read_some(c->p, c->fd, &c->in, deadline) > 0) {
    }
    return -1;
}

/* ---- proxy: one client connection ---- */

/* The mode for the request that just arrived (@p target: its X-Amz-Target); counts it down. */
static od_test_proxy_mode_e od_eng_take_mode(od_test_proxy_t *p, const char *target)
{
    pthread_mutex_lock(&p->mu);
    if (p->target[0] != '\0' && strstr(target, p->target) == NULL) {
        pthread_mutex_unlock(&p->mu);
        return OD_PROXY_PASS;
    }
    od_test_proxy_mode_e mode = p->count != 0 ? p->mode : OD_PROXY_PASS;
    if (p->count > 0 && --p->count == 0) {
        p->mode = OD_PROXY_PASS;
    }
    pthread_mutex_unlock(&p->mu);
    return mode;
}

/* Reads a whole request into c->in; its length, 0 when the client is gone, -1 on error. */
static long od_eng_read_request(od_eng_conn_t *c, od_eng_head_t *h)
{
    long head_len = od_eng_read_head(c->p, c->fd, &c->in, 0); /* idle: until the stop */

    if (head_len <= 0) {
        return head_len;
    }
    memset(h, 0, sizeof(*h));
    od_eng_parse_head(c->in.data, (size_t) head_len, h);
    if (h->chunked) { /* the AWS client always sends Content-Length */
        od_eng_answer(c, 501, "Not Implemented",
                      OD_ENG_DDB_ERROR("NotImplemented", "chunked requests"), true);
        return -1;
    }
    if (h->bad) {
        od_eng_answer(c, 400, "Bad Request", OD_ENG_DDB_ERROR("BadRequest", "bad head"), true);
        return -1;
    }
    size_t total = (size_t) head_len + (h->has_length ? h->length : 0);
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (h->expect100 && c->in.len < total &&
        od_eng_write_all(c->p, c->fd, cont, sizeof(cont) - 1) != 0) {
        return -1;
    }
    long deadline = od_eng_now_ms() + OD_ENG_IO_MS;
    return od_eng_read_upto(c->p, c->fd, &c->in, total, deadline) == 0 ? (long) total : -1;
}

/* Handles one request: 0 to go on with the connection, -1 to close it. */
static int od_eng_serve_one(od_eng_conn_t *c)
{
    od_eng_head_t h;
    long len = od_eng_read_request(c, &h);
    int rc = -1;

    if (len <= 0) {
        return -1;
    }
    atomic_fetch_add(&c->p->requests, 1);
    od_test_proxy_mode_e mode = od_eng_take_mode(c->p, h.target);
    switch (mode) {
    case OD_PROXY_PASS:
        rc = od_eng_forward(c, &h, (size_t) len);
        break;
    case OD_PROXY_THROTTLE:
        rc = od_eng_answer(c, 400, "Bad Request",
                           OD_ENG_DDB_ERROR("ThrottlingException", "Rate exceeded"), false);
        break;
    case OD_PROXY_ERROR500:
        rc = od_eng_answer(c, 500, "Internal Server Error",
                           OD_ENG_DDB_ERROR("InternalServerError", "Internal server error"), false);
        break;
    case OD_PROXY_DROP:
        rc = -1;
        break;
    case OD_PROXY_LOSE:
    case OD_PROXY_HOLD:
        rc = od_eng_forward_unanswered(c, &h, (size_t) len, mode == OD_PROXY_HOLD);
        break;
    }
    od_eng_buf_consume(&c->in, (size_t) len);
    return rc == 0 && !h.close ? 0 : -1;
}

static void *od_eng_conn_main(void *arg)
{
    od_eng_conn_t *c = arg;

    /* Bounded: each request either fails or waits at most until the stop. */
    while (!atomic_load(&c->p->stopping) && od_eng_serve_one(c) == 0) {
    }
    close(c->fd);
    if (c->up >= 0) {
        close(c->up);
    }
    free(c->in.data);
    free(c->resp.data);
    pthread_mutex_lock(&c->p->mu);
    c->p->open--;
    pthread_mutex_unlock(&c->p->mu);
    return NULL;
}

/* ---- proxy: accepting ---- */

static void od_eng_add_conn(od_test_proxy_t *p, int fd)
{
    od_eng_conn_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        close(fd);
        return;
    }
    c->p = p;
    c->fd = fd;
    c->up = -1;
    atomic_fetch_add(&p->connects, 1);
    pthread_mutex_lock(&p->mu);
    p->open++;
    p->max_open = p->open > p->max_open ? p->open : p->max_open;
    pthread_mutex_unlock(&p->mu);
    if (pthread_create(&c->thread, NULL, od_eng_conn_main, c) != 0) {
        close(fd);
        free(c);
        pthread_mutex_lock(&p->mu);
        p->open--;
        pthread_mutex_unlock(&p->mu);
        return;
    }
    c->next = p->conns;
    p->conns = c;
}

static void *od_eng_accept_main(void *arg)
{
    od_test_proxy_t *p = arg;

    /* Bounded by the stop: od_eng_wait_io returns -1 once it is requested. */
    while (od_eng_wait_io(p, p->lfd, POLLIN, 0) == 0) {
        int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            od_eng_nodelay(fd);
        }
        if (fd >= 0) {
            od_eng_add_conn(p, fd);
        } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            od_eng_sleep_ms(OD_ENG_SLICE_MS); /* e.g. EMFILE: do not spin */
        }
    }
    return NULL;
}

/* ---- proxy: API ---- */

od_test_proxy_t *od_test_proxy_start(const char *upstream_url)
{
    od_test_proxy_t *p = calloc(1, sizeof(*p));
    int port = 0, n = 0;

    ck_assert_msg(p != NULL, "out of memory");
    if (sscanf(upstream_url, "http://127.0.0.1:%d%n", &p->up_port, &n) != 1 ||
        (upstream_url[n] != '\0' && upstream_url[n] != '/') || p->up_port <= 0) {
        free(p);
        ck_abort_msg("od_test_proxy: upstream must be http://127.0.0.1:PORT, not '%s'",
                     upstream_url);
    }
    p->lfd = od_eng_listen(0, 64, &port);
    if (p->lfd < 0) {
        free(p);
        ck_abort_msg("od_test_proxy: cannot listen on 127.0.0.1: %s", strerror(errno));
    }
    snprintf(p->url, sizeof(p->url), "http://127.0.0.1:%d", port);
    atomic_init(&p->stopping, false);
    atomic_init(&p->connects, 0);
    atomic_init(&p->requests, 0);
    pthread_mutex_init(&p->mu, NULL);
    p->mode = OD_PROXY_PASS;
    if (pthread_create(&p->acceptor, NULL, od_eng_accept_main, p) != 0) {
        close(p->lfd);
        pthread_mutex_destroy(&p->mu);
        free(p);
        ck_abort_msg("od_test_proxy: cannot start its thread");
    }
    return p;
}

void od_test_proxy_set_mode(od_test_proxy_t *p, od_test_proxy_mode_e mode, int count)
{
    pthread_mutex_lock(&p->mu);
    p->mode = count != 0 ? mode : OD_PROXY_PASS;
    p->count = count;
    pthread_mutex_unlock(&p->mu);
}

void od_test_proxy_set_target(od_test_proxy_t *p, const char *target)
{
    pthread_mutex_lock(&p->mu);
    snprintf(p->target, sizeof(p->target), "%s", target != NULL ? target : "");
    pthread_mutex_unlock(&p->mu);
}

unsigned int od_test_proxy_connects(od_test_proxy_t *p)
{
    return atomic_load(&p->connects);
}

unsigned int od_test_proxy_requests(od_test_proxy_t *p)
{
    return atomic_load(&p->requests);
}

unsigned int od_test_proxy_max_open(od_test_proxy_t *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned int max = p->max_open;
    pthread_mutex_unlock(&p->mu);
    return max;
}

const char *od_test_proxy_url(const od_test_proxy_t *p)
{
    return p->url;
}

void od_test_proxy_stop(od_test_proxy_t *p)
{
    if (p == NULL) {
        return;
    }
    atomic_store(&p->stopping, true);
    pthread_join(p->acceptor, NULL); /* after this, p->conns no longer changes */
    for (od_eng_conn_t *c = p->conns, *next; c != NULL; c = next) {
        next = c->next;
        pthread_join(c->thread, NULL);
        free(c);
    }
    close(p->lfd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
