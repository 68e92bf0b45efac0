/* od_conns: connection states, head deadlines and free slots for the HTTP front end. */
#include "od_conns.h"

#include <apr_ring.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <sys/socket.h>

/* A connection that never completed a head is evicted only once it is this old: a client in
 * the middle of sending its first request is not one to drop. */
#define OD_CONNS_EVICT_MIN_AGE apr_time_from_msec(500)

typedef enum od_conns_state_e {
    OD_CONNS_WAITING, /* no complete request head yet */
    OD_CONNS_BUSY,    /* a request is being read or answered */
    OD_CONNS_IDLE,    /* between keep-alive requests */
    OD_CONNS_CLOSING  /* shut down here; libmicrohttpd has yet to close it */
} od_conns_state_e;

struct od_conns_entry_s {
    APR_RING_ENTRY(od_conns_entry_s) link;
    int fd;
    od_conns_state_e state;
    apr_time_t since; /* connected (waiting), or last answer (idle) */
};

APR_RING_HEAD(od_conns_ring_s, od_conns_entry_s);
typedef struct od_conns_ring_s od_conns_ring_t;

struct od_conns_s {
    od_conns_options_t opts;
    od_log_t *log;
    apr_pool_t *pool;
    /* lock guards everything below: the rings (each entry is in exactly one, by state; waiting
     * and idle in the order of their `since`), the counts, and the free list, whose entries are
     * reused so that a connection costs no allocation once the peak is reached. */
    apr_thread_mutex_t *lock;
    od_conns_ring_t rings[4]; /* by od_conns_state_e */
    od_conns_ring_t free;
    unsigned int counts[4];
    od_conns_stats_t stats;
    /* The sweeping thread waits on wake, under lock, until stopping. */
    apr_thread_cond_t *wake;
    apr_thread_t *thread;
    int stopping;
};

static void od_conns_move(od_conns_t *c, od_conns_entry_t *e, od_conns_state_e to)
{
    APR_RING_REMOVE(e, link);
    c->counts[e->state]--;
    e->state = to;
    c->counts[to]++;
    APR_RING_INSERT_TAIL(&c->rings[to], e, od_conns_entry_s, link);
}

od_conns_entry_t *od_conns_open(od_conns_t *c, int fd, apr_time_t now)
{
    od_conns_entry_t *e = NULL;

    if (c == NULL) {
        return NULL;
    }
    apr_thread_mutex_lock(c->lock);
    if (!APR_RING_EMPTY(&c->free, od_conns_entry_s, link)) {
        e = APR_RING_FIRST(&c->free);
        APR_RING_REMOVE(e, link);
    } else {
        e = apr_palloc(c->pool, sizeof(*e));
    }
    e->fd = fd;
    e->state = OD_CONNS_WAITING;
    e->since = now;
    c->counts[OD_CONNS_WAITING]++;
    APR_RING_INSERT_TAIL(&c->rings[OD_CONNS_WAITING], e, od_conns_entry_s, link);
    apr_thread_mutex_unlock(c->lock);
    return e;
}

void od_conns_busy(od_conns_t *c, od_conns_entry_t *e)
{
    if (e == NULL) {
        return;
    }
    apr_thread_mutex_lock(c->lock);
    if (e->state != OD_CONNS_CLOSING) {
        od_conns_move(c, e, OD_CONNS_BUSY);
    }
    apr_thread_mutex_unlock(c->lock);
}

void od_conns_idle(od_conns_t *c, od_conns_entry_t *e, apr_time_t now)
{
    if (e == NULL) {
        return;
    }
    apr_thread_mutex_lock(c->lock);
    if (e->state != OD_CONNS_CLOSING) {
        e->since = now;
        od_conns_move(c, e, OD_CONNS_IDLE);
    }
    apr_thread_mutex_unlock(c->lock);
}

void od_conns_close(od_conns_t *c, od_conns_entry_t *e)
{
    if (e == NULL) {
        return;
    }
    apr_thread_mutex_lock(c->lock);
    APR_RING_REMOVE(e, link);
    c->counts[e->state]--;
    APR_RING_INSERT_TAIL(&c->free, e, od_conns_entry_s, link);
    apr_thread_mutex_unlock(c->lock);
}

/* Under lock: shuts @p e's socket down, so libmicrohttpd sees the end of the stream. */
static void od_conns_shut(od_conns_t *c, od_conns_entry_t *e)
{
    shutdown(e->fd, SHUT_RDWR);
    od_conns_move(c, e, OD_CONNS_CLOSING);
}

/* Under lock: shuts down the connections of @p state whose `since` is older than @p limit
 * (the ring is in `since` order, so the walk stops at the first younger one). */
static int od_conns_expire(od_conns_t *c, od_conns_state_e state, apr_time_t limit)
{
    od_conns_ring_t *ring = &c->rings[state];
    int n = 0;

    while (!APR_RING_EMPTY(ring, od_conns_entry_s, link) && APR_RING_FIRST(ring)->since < limit) {
        od_conns_shut(c, APR_RING_FIRST(ring));
        n++;
    }
    c->stats.head_timeouts += (apr_uint64_t) n;
    return n;
}

/* Under lock: when fewer than `reserve` slots are free (those already shut down count as free),
 * shuts down every idle connection: keep-alive ones first, then those that never sent a head
 * and are OD_CONNS_EVICT_MIN_AGE old. All of them, not just `reserve`: libmicrohttpd refills
 * freed slots from the listen backlog at once, in arrival order, so a new client queued behind
 * a flood of idle connections is reached only when the whole flood is out of the way. */
static int od_conns_evict(od_conns_t *c, apr_time_t now)
{
    unsigned int held =
        c->counts[OD_CONNS_WAITING] + c->counts[OD_CONNS_BUSY] + c->counts[OD_CONNS_IDLE];
    od_conns_ring_t *idle = &c->rings[OD_CONNS_IDLE], *waiting = &c->rings[OD_CONNS_WAITING];
    int n = 0;

    if ((long) held + c->opts.reserve <= (long) c->opts.max_connections) {
        return 0;
    }
    for (; !APR_RING_EMPTY(idle, od_conns_entry_s, link); n++) {
        od_conns_shut(c, APR_RING_FIRST(idle));
    }
    for (; !APR_RING_EMPTY(waiting, od_conns_entry_s, link) &&
           APR_RING_FIRST(waiting)->since <= now - OD_CONNS_EVICT_MIN_AGE;
         n++) {
        od_conns_shut(c, APR_RING_FIRST(waiting));
    }
    c->stats.evicted += (apr_uint64_t) n;
    return n;
}

int od_conns_sweep(od_conns_t *c, apr_time_t now)
{
    apr_thread_mutex_lock(c->lock);
    int n = od_conns_expire(c, OD_CONNS_WAITING, now - c->opts.header_timeout);
    n += od_conns_expire(c, OD_CONNS_IDLE, now - c->opts.idle_timeout - c->opts.header_timeout);
    n += od_conns_evict(c, now);
    apr_thread_mutex_unlock(c->lock);
    return n;
}

void od_conns_stats(od_conns_t *c, od_conns_stats_t *out)
{
    apr_thread_mutex_lock(c->lock);
    *out = c->stats;
    out->open = c->counts[OD_CONNS_WAITING] + c->counts[OD_CONNS_BUSY] + c->counts[OD_CONNS_IDLE] +
                c->counts[OD_CONNS_CLOSING];
    out->idle = c->counts[OD_CONNS_IDLE];
    apr_thread_mutex_unlock(c->lock);
}

/* ---- the sweeping thread ---- */

static void *APR_THREAD_FUNC od_conns_loop(apr_thread_t *thread, void *data)
{
    od_conns_t *c = data;

    apr_thread_mutex_lock(c->lock);
    while (!c->stopping) {
        apr_thread_cond_timedwait(c->wake, c->lock, apr_time_from_msec(OD_CONNS_SWEEP_MS));
        if (!c->stopping) {
            apr_thread_mutex_unlock(c->lock);
            od_conns_sweep(c, apr_time_now());
            apr_thread_mutex_lock(c->lock);
        }
    }
    apr_thread_mutex_unlock(c->lock);
    return NULL;
}

apr_status_t od_conns_start(od_conns_t *c)
{
    apr_status_t rv = apr_thread_create(&c->thread, NULL, od_conns_loop, c, c->pool);

    if (rv != APR_SUCCESS) {
        c->thread = NULL;
        od_log_error(c->log, "http: apr_thread_create (connection sweeper) failed: %d", rv);
    }
    return rv;
}

void od_conns_stop(od_conns_t *c)
{
    apr_status_t ignored;

    if (c->thread == NULL) {
        return;
    }
    apr_thread_mutex_lock(c->lock);
    c->stopping = 1;
    apr_thread_cond_signal(c->wake);
    apr_thread_mutex_unlock(c->lock);
    apr_thread_join(&ignored, c->thread);
    c->thread = NULL;
}

static apr_status_t od_conns_cleanup(void *data)
{
    od_conns_stop(data);
    return APR_SUCCESS;
}

apr_status_t od_conns_create(od_conns_t **out, const od_conns_options_t *opts, od_log_t *log,
                             apr_pool_t *p)
{
    od_conns_t *c = apr_pcalloc(p, sizeof(*c));

    *out = NULL;
    c->opts = *opts;
    c->log = log;
    c->pool = p;
    for (int i = 0; i < 4; i++) {
        APR_RING_INIT(&c->rings[i], od_conns_entry_s, link);
    }
    APR_RING_INIT(&c->free, od_conns_entry_s, link);
    apr_status_t rv = apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&c->wake, p);
    }
    if (rv != APR_SUCCESS) {
        od_log_error(log, "http: creating the connection tracker's lock failed: %d", rv);
        return rv;
    }
    /* A pre-cleanup: the thread must stop before the lock and the entries go. */
    apr_pool_pre_cleanup_register(p, c, od_conns_cleanup);
    *out = c;
    return APR_SUCCESS;
}
