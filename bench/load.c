/*
 * odb-load: an open-loop, fixed-rate HTTP/1.1 load generator for orderd's API (loopback only).
 *
 * wrk measures peak rate, but it is closed-loop: a slow answer delays the next request, so its
 * latencies hide queueing ("coordinated omission"), and Debian has no wrk2. Here request i is
 * due at t0 + i / rate whatever happened before; its latency runs from that due time, so time
 * spent waiting for a free connection counts. With -r 0 it runs closed-loop as fast as the
 * server answers, up to -n requests (the memory scenario and the instruction count use that).
 *
 *   odb-load -p PORT -m unique|dup|invalid|get [-r RATE] [-d SECONDS] [-n MAX] [-c CONNS]
 *            [-s SALT] [-k DUP_KEYS] [-i IDS_FILE] [-g GRACE_S] [-l LABEL] [-P PROGRESS_EVERY]
 *            [-T TIMELINE_FILE]
 *
 * Prints one JSON object on stdout. -P N prints "progress N" on stderr every N answers (and
 * waits for a line on stdin before going on, so a caller can sample the server in between).
 */
#define _GNU_SOURCE

#include "hist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOAD_MAX_CONNS 1024
#define LOAD_OUT_BYTES 512
#define LOAD_IN_BYTES 16384
#define LOAD_MAX_IDS 100000
#define LOAD_SLOT_NS 100000000LL /* timeline resolution: 100 ms */
#define LOAD_SLOTS 36000         /* up to an hour */

typedef enum load_mode_e { LOAD_UNIQUE, LOAD_DUP, LOAD_INVALID, LOAD_GET } load_mode_e;
typedef enum conn_state_e { CONN_CLOSED, CONN_CONNECTING, CONN_IDLE, CONN_BUSY } conn_state_e;

typedef struct load_opts_t {
    int port;
    load_mode_e mode;
    double rate;     /* requests per second; 0: closed loop */
    double duration; /* seconds of sending */
    long max;        /* most requests in all */
    int conns;
    long salt;
    long dup_keys;
    const char *ids_file;
    double grace; /* seconds to wait for answers after sending ends */
    const char *label;
    long progress_every;
    const char *timeline; /* file for per-100-ms answer counts and worst latency, or NULL */
} load_opts_t;

typedef struct conn_t {
    int fd;
    conn_state_e state;
    char out[LOAD_OUT_BYTES];
    size_t out_len;
    size_t out_off;
    char in[LOAD_IN_BYTES];
    size_t in_len;
    long long due_ns; /* when the current request was due: latency starts there */
} conn_t;

typedef struct load_stats_t {
    hist_t all;
    hist_t first; /* requests due in the first second (the burst scenario's onset) */
    long s200, s201, s400, s503, s_other;
    long unexpected; /* answers with a status this mode does not expect */
    long io_errors;  /* connection refused, reset or closed under a request */
    long unsent;     /* due before the end but never sent */
    long unfinished; /* sent but unanswered when the grace period ended */
    long completed;
    long long last_done_ns;
    uint32_t *slot_count;  /* by due time, per LOAD_SLOT_NS: answers */
    uint32_t *slot_max_us; /* and their worst latency */
} load_stats_t;

typedef struct load_t {
    load_opts_t o;
    conn_t *conns;
    int *idle; /* stack of idle connection indexes */
    int nidle;
    int busy;
    int epfd;
    struct sockaddr_in addr;
    char (*ids)[32];
    long nids;
    long long t0;
    long issued;
    long next_progress;
    load_stats_t st;
} load_t;

static long long load_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void load_die(const char *what)
{
    fprintf(stderr, "odb-load: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- requests ---- */

/* Unique per (salt, i): the SKU carries both, so every body hashes to a new idempotency key. */
static int load_body(const load_t *l, long i, char *buf, size_t cap)
{
    long k = l->o.mode == LOAD_DUP ? i % l->o.dup_keys : i;

    if (l->o.mode == LOAD_INVALID) {
        return snprintf(buf, cap,
                        "{\"customer_id\":\"BAD-%ld\",\"currency\":\"EUR\",\"items\":"
                        "[{\"sku\":\"SKU-1001\",\"quantity\":0,"
                        "\"unit_price_cents\":1999}]}",
                        i % 1000);
    }
    return snprintf(buf, cap,
                    "{\"customer_id\":\"CUST-%06ld\",\"currency\":\"EUR\",\"items\":[{\"sku\":"
                    "\"L%ld-%ld\",\"quantity\":2,\"unit_price_cents\":1999}]}",
                    k % 1000000, l->o.salt, k);
}

static void load_format(const load_t *l, conn_t *c, long i)
{
    char body[256];
    int n;

    if (l->o.mode == LOAD_GET) {
        n = snprintf(c->out, sizeof(c->out), "GET /orders/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                     l->ids[i % l->nids]);
    } else {
        int blen = load_body(l, i, body, sizeof(body));
        n = snprintf(c->out, sizeof(c->out),
                     "POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     "application/json\r\nContent-Length: %d\r\n\r\n%s",
                     blen, body);
    }
    c->out_len = (size_t) n;
    c->out_off = 0;
    c->in_len = 0;
}

/* ---- connections ---- */

static void load_watch(load_t *l, int idx, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t) idx};

    if (epoll_ctl(l->epfd, op, l->conns[idx].fd, &ev) != 0) {
        load_die("epoll_ctl");
    }
}

static void load_open(load_t *l, int idx)
{
    conn_t *c = &l->conns[idx];
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        load_die("socket");
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *) &l->addr, sizeof(l->addr)) != 0 &&
        errno != EINPROGRESS) {
        load_die("connect");
    }
    c->state = CONN_CONNECTING;
    load_watch(l, idx, EPOLLOUT, EPOLL_CTL_ADD);
}

static void load_make_idle(load_t *l, int idx)
{
    l->conns[idx].state = CONN_IDLE;
    l->idle[l->nidle++] = idx;
    load_watch(l, idx, EPOLLIN, EPOLL_CTL_MOD);
}

/* Drops a connection (counting its request as failed, if any) and dials a new one. */
static void load_reset(load_t *l, int idx)
{
    conn_t *c = &l->conns[idx];

    if (c->state == CONN_BUSY) {
        l->st.io_errors++;
        l->busy--;
    } else if (c->state == CONN_IDLE) {
        for (int i = 0; i < l->nidle; i++) {
            if (l->idle[i] == idx) {
                l->idle[i] = l->idle[--l->nidle];
                break;
            }
        }
    }
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = CONN_CLOSED;
    load_open(l, idx);
}

static void load_flush(load_t *l, int idx)
{
    conn_t *c = &l->conns[idx];

    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            load_watch(l, idx, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
            return;
        }
        if (n <= 0) {
            load_reset(l, idx);
            return;
        }
        c->out_off += (size_t) n;
    }
    load_watch(l, idx, EPOLLIN, EPOLL_CTL_MOD);
}

static void load_send(load_t *l, long long due_ns)
{
    int idx = l->idle[--l->nidle];
    conn_t *c = &l->conns[idx];

    load_format(l, c, l->issued++);
    c->due_ns = due_ns;
    c->state = CONN_BUSY;
    l->busy++;
    load_flush(l, idx);
}

/* ---- answers ---- */

static int load_expected(const load_t *l, int status)
{
    switch (l->o.mode) {
    case LOAD_UNIQUE:
        return status == 201;
    case LOAD_DUP:
        return status == 200 || status == 201;
    case LOAD_INVALID:
        return status == 400;
    default:
        return status == 200;
    }
}

static void load_count(load_t *l, int status, long long due_ns, long long now)
{
    load_stats_t *s = &l->st;
    uint64_t us = now > due_ns ? (uint64_t) (now - due_ns) / 1000 : 0;

    s->s200 += status == 200;
    s->s201 += status == 201;
    s->s400 += status == 400;
    s->s503 += status == 503;
    s->s_other += status != 200 && status != 201 && status != 400 && status != 503;
    s->unexpected += !load_expected(l, status);
    s->completed++;
    s->last_done_ns = now;
    hist_record(&s->all, us);
    long long slot = (due_ns - l->t0) / LOAD_SLOT_NS;
    if (s->slot_count != NULL && slot >= 0 && slot < LOAD_SLOTS) {
        s->slot_count[slot]++;
        s->slot_max_us[slot] = us > s->slot_max_us[slot] ? (uint32_t) us : s->slot_max_us[slot];
    }
    if (due_ns - l->t0 < 1000000000LL) {
        hist_record(&s->first, us);
    }
}

/* The length of the whole answer once its head is in, or 0 while incomplete; -1 if malformed.
 * Sets *status and *close (the server said Connection: close). */
static long load_parse(const conn_t *c, int *status, int *close_after)
{
    const char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);

    if (end == NULL) {
        return c->in_len >= sizeof(c->in) - 1 ? -1 : 0;
    }
    size_t head = (size_t) (end - c->in) + 4;
    char hdr[LOAD_IN_BYTES];
    memcpy(hdr, c->in, head);
    hdr[head] = '\0';
    if (sscanf(hdr, "HTTP/1.%*d %d", status) != 1) {
        return -1;
    }
    const char *cl = strcasestr(hdr, "\r\ncontent-length:");
    long body = cl != NULL ? strtol(cl + 17, NULL, 10) : 0;
    *close_after = strcasestr(hdr, "\r\nconnection: close") != NULL;
    return (long) head + body;
}

static void load_read(load_t *l, int idx)
{
    conn_t *c = &l->conns[idx];
    int status = 0, close_after = 0;
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);

    if (n < 0 && errno == EAGAIN) {
        return;
    }
    if (n <= 0 || c->state != CONN_BUSY) {
        load_reset(l, idx); /* closed by the server, or bytes nobody asked for */
        return;
    }
    c->in_len += (size_t) n;
    long total = load_parse(c, &status, &close_after);
    if (total < 0) {
        load_reset(l, idx);
    } else if (total > 0 && c->in_len >= (size_t) total) {
        long long now = load_now();
        load_count(l, status, c->due_ns, now);
        c->state = CONN_IDLE; /* answered: not an error if it closes now */
        l->busy--;
        if (close_after) {
            load_reset(l, idx);
        } else {
            load_make_idle(l, idx);
        }
    }
}

static void load_event(load_t *l, const struct epoll_event *ev)
{
    int idx = (int) ev->data.u32;
    conn_t *c = &l->conns[idx];

    if (c->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            l->st.io_errors++;
            load_reset(l, idx);
        } else {
            load_make_idle(l, idx);
        }
        return;
    }
    if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        load_read(l, idx);
    }
    if (c->state == CONN_BUSY && (ev->events & EPOLLOUT)) {
        load_flush(l, idx);
    }
}

/* ---- the schedule ---- */

static long load_total(const load_t *l)
{
    if (l->o.rate <= 0) {
        return l->o.max;
    }
    long by_time = (long) (l->o.rate * l->o.duration);
    return l->o.max > 0 && l->o.max < by_time ? l->o.max : by_time;
}

static long long load_due(const load_t *l, long i)
{
    return l->t0 + (long long) ((double) i * 1e9 / l->o.rate);
}

/* Sends every request that is due while a connection is free. Returns 1 while more are due. */
static int load_issue(load_t *l, long long now, long long end_ns)
{
    long total = load_total(l);

    if (l->o.rate <= 0) {
        while (l->nidle > 0 && l->issued < total && now < end_ns && l->issued < l->next_progress) {
            load_send(l, load_now());
        }
        return l->issued < total && now < end_ns;
    }
    while (l->nidle > 0 && l->issued < total && load_due(l, l->issued) <= now) {
        load_send(l, load_due(l, l->issued));
    }
    return l->issued < total;
}

/* Every progress_every answers: report, then wait for the caller's go-ahead on stdin. */
static void load_progress(load_t *l)
{
    char line[64];

    if (l->o.progress_every <= 0 || l->st.completed < l->next_progress || l->busy > 0) {
        return;
    }
    fprintf(stderr, "progress %ld\n", l->st.completed);
    fflush(stderr);
    if (fgets(line, sizeof(line), stdin) == NULL) {
        l->o.progress_every = 0;
    }
    l->next_progress += l->o.progress_every;
}

/* Until the next request is due, if one can be sent then; else until an answer arrives (the
 * cap keeps the loop checking its deadlines). */
static struct timespec load_wait(const load_t *l, long long now, int more)
{
    long long ns = 5000000LL;

    if (more && l->o.rate > 0 && l->nidle > 0) {
        long long until = load_due(l, l->issued) - now;
        ns = until < 0 ? 0 : (until < ns ? until : ns);
    }
    return (struct timespec){0, ns};
}

static void load_loop(load_t *l)
{
    struct epoll_event evs[256];
    long long end_ns = l->t0 + (long long) (l->o.duration * 1e9);
    long long stop_ns = end_ns + (long long) (l->o.grace * 1e9);

    for (;;) {
        long long now = load_now();
        int more = load_issue(l, now, end_ns) && now < end_ns;
        if ((!more && l->busy == 0) || now >= stop_ns) {
            break;
        }
        struct timespec ts = load_wait(l, now, more);
        int n = epoll_pwait2(l->epfd, evs, 256, &ts, NULL);
        for (int i = 0; i < n; i++) {
            load_event(l, &evs[i]);
        }
        load_progress(l);
    }
    long total = load_total(l);
    l->st.unfinished = l->busy;
    l->st.unsent = l->o.rate > 0 ? total - l->issued : 0;
}

/* ---- set-up and report ---- */

static void load_read_ids(load_t *l)
{
    FILE *f = fopen(l->o.ids_file, "r");
    char line[128];

    if (f == NULL) {
        load_die(l->o.ids_file);
    }
    l->ids = calloc(LOAD_MAX_IDS, sizeof(*l->ids));
    while (l->nids < LOAD_MAX_IDS && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strlen(line) == 26) {
            memcpy(l->ids[l->nids++], line, 27);
        }
    }
    fclose(f);
    if (l->nids == 0) {
        fprintf(stderr, "odb-load: no ids in %s\n", l->o.ids_file);
        exit(1);
    }
}

static load_mode_e load_mode(const char *s)
{
    static const char *const names[] = {"unique", "dup", "invalid", "get"};

    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            return (load_mode_e) i;
        }
    }
    fprintf(stderr, "odb-load: unknown mode %s\n", s);
    exit(2);
}

static void load_parse_opts(load_opts_t *o, int argc, char **argv)
{
    int ch;

    *o = (load_opts_t){.mode = LOAD_UNIQUE,
                       .duration = 10,
                       .conns = 64,
                       .salt = (long) time(NULL) % 100000000L,
                       .dup_keys = 1000,
                       .grace = 5,
                       .label = "run"};
    while ((ch = getopt(argc, argv, "p:m:r:d:n:c:s:k:i:g:l:P:T:")) != -1) {
        switch (ch) {
        case 'p':
            o->port = atoi(optarg);
            break;
        case 'm':
            o->mode = load_mode(optarg);
            break;
        case 'r':
            o->rate = atof(optarg);
            break;
        case 'd':
            o->duration = atof(optarg);
            break;
        case 'n':
            o->max = atol(optarg);
            break;
        case 'c':
            o->conns = atoi(optarg);
            break;
        case 's':
            o->salt = atol(optarg);
            break;
        case 'k':
            o->dup_keys = atol(optarg);
            break;
        case 'i':
            o->ids_file = optarg;
            break;
        case 'g':
            o->grace = atof(optarg);
            break;
        case 'l':
            o->label = optarg;
            break;
        case 'P':
            o->progress_every = atol(optarg);
            break;
        case 'T':
            o->timeline = optarg;
            break;
        default:
            exit(2);
        }
    }
    if (o->port <= 0 || o->conns < 1 || o->conns > LOAD_MAX_CONNS || o->dup_keys < 1 ||
        (o->rate <= 0 && o->max <= 0) || (o->mode == LOAD_GET && o->ids_file == NULL)) {
        fprintf(stderr, "odb-load: bad arguments (see the comment at the top of load.c)\n");
        exit(2);
    }
}

/* The timeline: one line per 100 ms of due time, "seconds answers worst_ms", so stalls (a
 * checkpoint, a purge) show up where they happened. */
static void load_write_timeline(const load_t *l)
{
    FILE *f = fopen(l->o.timeline, "w");
    long long slots = (l->st.last_done_ns - l->t0) / LOAD_SLOT_NS + 1;

    if (f == NULL) {
        load_die(l->o.timeline);
    }
    for (long long i = 0; i < slots && i < LOAD_SLOTS; i++) {
        fprintf(f, "%.1f %u %.3f\n", (double) i / 10.0, l->st.slot_count[i],
                (double) l->st.slot_max_us[i] / 1000.0);
    }
    fclose(f);
}

static void load_report(const load_t *l)
{
    const load_stats_t *s = &l->st;
    double secs = (double) (s->last_done_ns - l->t0) / 1e9;
    double window = l->o.rate > 0 ? l->o.duration : secs;
    double span = secs > window ? secs : window;
    long errors = s->unexpected + s->io_errors + s->unsent + s->unfinished;

    printf("{\"label\":\"%s\",\"offered_rps\":%.0f,\"duration_s\":%.2f,\"sent\":%ld,"
           "\"completed\":%ld,\"achieved_rps\":%.1f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"max_ms\":%.3f,\"first_s_p99_ms\":%.3f,\"errors\":%ld,"
           "\"status\":{\"200\":%ld,\"201\":%ld,\"400\":%ld,\"503\":%ld,\"other\":%ld},"
           "\"error_detail\":{\"unexpected_status\":%ld,\"io\":%ld,\"unsent\":%ld,"
           "\"unfinished\":%ld}}\n",
           l->o.label, l->o.rate, span, l->issued, s->completed,
           span > 0 ? (double) s->completed / span : 0.0, hist_quantile_ms(&s->all, 0.50),
           hist_quantile_ms(&s->all, 0.95), hist_quantile_ms(&s->all, 0.99),
           (double) s->all.max_us / 1000.0, hist_quantile_ms(&s->first, 0.99), errors, s->s200,
           s->s201, s->s400, s->s503, s->s_other, s->unexpected, s->io_errors, s->unsent,
           s->unfinished);
}

int main(int argc, char **argv)
{
    static load_t l;

    load_parse_opts(&l.o, argc, argv);
    if (l.o.mode == LOAD_GET) {
        load_read_ids(&l);
    }
    signal(SIGPIPE, SIG_IGN);
    l.addr.sin_family = AF_INET;
    l.addr.sin_port = htons((uint16_t) l.o.port);
    l.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only, by construction */
    l.conns = calloc((size_t) l.o.conns, sizeof(*l.conns));
    l.idle = calloc((size_t) l.o.conns, sizeof(*l.idle));
    l.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l.conns == NULL || l.idle == NULL || l.epfd < 0) {
        load_die("set-up");
    }
    if (l.o.timeline != NULL) {
        l.st.slot_count = calloc(LOAD_SLOTS, sizeof(uint32_t));
        l.st.slot_max_us = calloc(LOAD_SLOTS, sizeof(uint32_t));
    }
    l.next_progress = l.o.progress_every > 0 ? l.o.progress_every : LONG_MAX;
    /* The clock starts before the connections are dialled: from idle, connecting is part of
     * what the first requests wait for. */
    l.t0 = load_now();
    for (int i = 0; i < l.o.conns; i++) {
        load_open(&l, i);
    }
    load_loop(&l);
    load_report(&l);
    if (l.o.timeline != NULL) {
        load_write_timeline(&l);
    }
    return 0;
}
