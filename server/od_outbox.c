/* od_outbox: the prompt publisher and the relay, on one thread. */
#include "od_outbox.h"
#include "od_status.h"
#include "od_ulid.h"

#include <apr_atomic.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <string.h>

#define OD_OUTBOX_SLOT_BYTES 4096
#define OD_OUTBOX_RELAY_EVERY apr_time_from_sec(1)
#define OD_OUTBOX_BACKOFF_CAP apr_time_from_sec(300)
/* A prompt round starts this long after the previous one if, when the publisher looks, fewer than
 * batch_max events are queued (it then sleeps out the rest of the time: submits do not wake
 * it meanwhile, a stop does): a round costs the sink one call whatever it carries (the file sink: a
 * write and an fdatasync; the AWS sinks: a request per 10 events). Unique orders at ~25k/s made
 * 2,300 rounds a second of ~10 events, and the file sink's fdatasyncs took 15 % of orderd's CPU;
 * 2 ms rounds still cost the publisher 3.5 us and 0.09 context switches per order, 10 ms rounds
 * (of ~300 events, with events_batch_max 1000) 1.2 us and 0.02. An event waits at most this long
 * more than it would alone: nothing next to the order's own latency, which it never adds to. */
#define OD_OUTBOX_GATHER apr_time_from_msec(10)
/* The backlog (every event not yet published) is counted at most this often, and a count of N
 * events waits N / OD_OUTBOX_COUNT_RATE seconds if that is longer: a count reads every pending
 * event's index entry (on DynamoDB, read units in proportion to the backlog), so the backlog of
 * a long outage is counted less often instead of at a growing cost (on average, at most 5,000
 * entries a second: about 1,000 read request units a second for 1.5 KB events). */
#define OD_OUTBOX_COUNT_EVERY apr_time_from_sec(5)
#define OD_OUTBOX_COUNT_RATE 5000
/* The relay claims, publishes and marks its events in chunks of this many: an event's claim then
 * precedes its mark by one chunk's claims, publish and marks (about a second on DynamoDB at 5 ms
 * a call), well within its lease, however many events a round takes (events_batch_max). */
#define OD_OUTBOX_CLAIM_CHUNK 100
/* Rounds one catch-up (od_outbox_catch_up) makes before the ring gets its turn again. */
#define OD_OUTBOX_CATCH_UP_ROUNDS 4
#define OD_OUTBOX_RECENT_AGE apr_time_from_sec(2)
/* What a relay round returns when the store gave only events that recent rounds published (their
 * marks are on their way): come back in OD_OUTBOX_MARKS_WAIT, once they are committed. */
#define OD_OUTBOX_MARKS_AWAITED (-1)
#define OD_OUTBOX_MARKS_WAIT apr_time_from_msec(50)

/* A ring slot: fixed-size, so the ring is allocated once and never grows. */
typedef struct od_outbox_slot_t {
    char event_id[OD_ULID_LEN + 1];
    char order_id[OD_ULID_LEN + 1];
    char body[OD_OUTBOX_SLOT_BYTES];
    apr_size_t body_len;
    apr_time_t created_at;
    apr_int64_t seq;
} od_outbox_slot_t;

/* The publisher thread's own: the event ids of its latest rounds, whose published marks the
 * store may not have committed yet (SQLite applies marks with its writer's next commit), so that
 * a relay or catch-up round skips them instead of publishing them a second time. Two generations
 * of OD_OUTBOX_RECENT_AGE each: an id is kept 2 to 4 s, long after the writer committed its mark
 * (one fsync), and an event whose mark was lost is skipped that long at most. At 16,000
 * events/s that is up to 64,000 ids (about 4 MB). */
typedef struct od_outbox_recent_t {
    apr_pool_t *pool[2];
    apr_hash_t *ids[2]; /* [0]: the newer */
    apr_time_t since;   /* when [0] began */
} od_outbox_recent_t;

struct od_outbox_s {
    od_store_t *store;
    od_sink_t *sink;
    od_log_t *log;
    od_outbox_options_t opts;
    apr_thread_t *thread;
    apr_thread_mutex_t *lock;
    /* Guarded by lock: the ring (head, count), stopping, flush deadline and the stats. */
    apr_thread_cond_t *wake; /* signalled on submit and on stop */
    od_outbox_slot_t *ring;
    int head;
    int count;
    int stopping;
    apr_time_t flush_until;
    od_outbox_stats_t stats;
    apr_time_t oldest;     /* created_at of the oldest event at the last count (0: none) */
    apr_time_t overflow;   /* created_at of the newest event the full ring turned away (0: none) */
    apr_time_t last_round; /* the publisher thread's own: when its last prompt round began */
    od_outbox_recent_t recent;
    /* The counter: a thread of its own, so a long count never holds up publishing. */
    apr_thread_t *counter;
    apr_thread_cond_t *count_wake;    /* signalled on stop (with lock) */
    volatile apr_uint32_t count_stop; /* set (apr_atomic) on stop: a count under way ends */
};

/* ---- submitting ---- */

void od_outbox_submit(od_outbox_t *ob, const od_store_event_t *ev)
{
    if (ob == NULL || ob->opts.skip_prompt || ev->event_len >= OD_OUTBOX_SLOT_BYTES) {
        return;
    }
    apr_thread_mutex_lock(ob->lock);
    if (ob->stopping || ob->count == ob->opts.queue_slots) {
        /* Turned away, the event waits in the store; the publisher fetches it from there as
         * soon as the ring has caught up (od_outbox_catch_up), not a lease later. */
        if (!ob->stopping) {
            ob->stats.dropped++;
            ob->overflow = ev->created_at > ob->overflow ? ev->created_at : ob->overflow;
        }
        apr_thread_mutex_unlock(ob->lock);
        return;
    }
    od_outbox_slot_t *s = &ob->ring[(ob->head + ob->count) % ob->opts.queue_slots];
    apr_cpystrn(s->event_id, ev->event_id, sizeof(s->event_id));
    apr_cpystrn(s->order_id, ev->order_id, sizeof(s->order_id));
    memcpy(s->body, ev->event, ev->event_len);
    s->body[ev->event_len] = '\0';
    s->body_len = ev->event_len;
    s->created_at = ev->created_at;
    s->seq = ev->seq;
    /* The publisher waits for events only while the ring is empty (the gather's wait below ends
     * by its clock): so only the first event needs to wake it (signalling each one cost a futex
     * call per order). */
    if (ob->count++ == 0) {
        apr_thread_cond_signal(ob->wake);
    }
    apr_thread_mutex_unlock(ob->lock);
}

/* Copies up to batch_max queued events out of the ring, counting in @p *late those it leaves
 * to the relay. Called with the lock held.
 * An event is the prompt path's for the first half of its lease only (it is due for the relays
 * of every instance retry_after after its creation): one that waited longer in the ring is left
 * to the relay, which claims it once it is due. So a prompt publish and its mark have the other
 * half of the lease to finish before any relay may take the event, and the prompt path never
 * publishes what a relay may already have claimed. */
static apr_array_header_t *od_outbox_take(od_outbox_t *ob, int *late, apr_pool_t *p)
{
    apr_array_header_t *events = apr_array_make(p, ob->count, sizeof(od_store_event_t));
    apr_time_t stale = apr_time_now() - ob->opts.retry_after / 2;

    while (ob->count > 0 && events->nelts < ob->opts.batch_max) {
        od_outbox_slot_t *s = &ob->ring[ob->head];
        ob->head = (ob->head + 1) % ob->opts.queue_slots;
        ob->count--;
        if (s->created_at <= stale) {
            ob->stats.dropped++;
            (*late)++;
            continue;
        }
        od_store_event_t *e = apr_array_push(events);
        e->event_id = apr_pstrdup(p, s->event_id);
        e->order_id = apr_pstrdup(p, s->order_id);
        e->event = apr_pstrmemdup(p, s->body, s->body_len);
        e->event_len = s->body_len;
        e->created_at = s->created_at;
        e->attempts = 0;
        e->due = 0;
        e->seq = s->seq;
    }
    return events;
}

/* ---- publishing ---- */

/* Starts a new generation of recent ids once the newer is OD_OUTBOX_RECENT_AGE old. */
static void od_outbox_recent_age(od_outbox_t *ob, apr_time_t now)
{
    od_outbox_recent_t *r = &ob->recent;

    if (now - r->since > OD_OUTBOX_RECENT_AGE) {
        apr_pool_t *pool = r->pool[1];
        apr_pool_clear(pool);
        r->pool[1] = r->pool[0];
        r->ids[1] = r->ids[0];
        r->pool[0] = pool;
        r->ids[0] = apr_hash_make(pool);
        r->since = now;
    }
}

static void od_outbox_recent_add(od_outbox_t *ob, const od_store_event_t *events, int n)
{
    od_outbox_recent_t *r = &ob->recent;

    od_outbox_recent_age(ob, apr_time_now());
    for (int i = 0; i < n; i++) {
        const char *id = apr_pstrdup(r->pool[0], events[i].event_id);
        apr_hash_set(r->ids[0], id, APR_HASH_KEY_STRING, id);
    }
}

/* Drops from @p events those a recent round published. */
static void od_outbox_recent_skip(const od_outbox_t *ob, apr_array_header_t *events)
{
    od_store_event_t *ev = (od_store_event_t *) events->elts;
    int kept = 0;

    for (int i = 0; i < events->nelts; i++) {
        const char *id = ev[i].event_id;
        if (apr_hash_get(ob->recent.ids[0], id, APR_HASH_KEY_STRING) == NULL &&
            apr_hash_get(ob->recent.ids[1], id, APR_HASH_KEY_STRING) == NULL) {
            ev[kept++] = ev[i];
        }
    }
    events->nelts = kept;
}

static apr_interval_time_t od_outbox_backoff(const od_outbox_t *ob, int attempts)
{
    apr_interval_time_t d = ob->opts.retry_after << (attempts < 16 ? attempts : 16);
    return d > OD_OUTBOX_BACKOFF_CAP || d <= 0 ? OD_OUTBOX_BACKOFF_CAP : d;
}

/* Publishes @p events; marks the published ones in the store. From the relay, failures are
 * rescheduled with backoff; from the prompt path they simply stay due at their first due time. */
static void od_outbox_publish(od_outbox_t *ob, apr_array_header_t *events, int relay, apr_pool_t *p)
{
    const od_store_event_t *ev = (const od_store_event_t *) events->elts;
    int n = events->nelts, ok = 0;
    apr_status_t *results = apr_pcalloc(p, sizeof(*results) * (apr_size_t) (n > 0 ? n : 1));
    od_event_t *out = apr_pcalloc(p, sizeof(*out) * (apr_size_t) (n > 0 ? n : 1));
    od_store_event_t *done = apr_pcalloc(p, sizeof(*done) * (apr_size_t) (n > 0 ? n : 1));

    for (int i = 0; i < n; i++) {
        out[i] = (od_event_t){ev[i].event_id, ev[i].order_id, ev[i].event, ev[i].event_len};
    }
    od_sink_publish(ob->sink, out, n, results, p);
    for (int i = 0; i < n; i++) {
        if (results[i] == APR_SUCCESS) {
            done[ok++] = ev[i];
        } else if (relay) {
            od_store_reschedule(ob->store, &ev[i],
                                apr_time_now() + od_outbox_backoff(ob, ev[i].attempts + 1), p);
        }
    }
    if (od_store_published(ob->store, done, ok, p) != APR_SUCCESS) {
        od_log_warn(ob->log,
                    "outbox: could not mark %d published events; they will be "
                    "published again",
                    ok);
    } else {
        od_outbox_recent_add(ob, done, ok);
    }
    apr_thread_mutex_lock(ob->lock);
    ob->stats.published += (apr_uint64_t) ok;
    ob->stats.failed += (apr_uint64_t) (n - ok);
    apr_thread_mutex_unlock(ob->lock);
}

/* Claims the events [at, at + OD_OUTBOX_CLAIM_CHUNK) of @p events and publishes those it
 * claimed (no other instance does: the claim makes each event one instance's, for a lease of
 * retry_after, after which it is due again if it was not published). Returns how many. */
static int od_outbox_relay_chunk(od_outbox_t *ob, const apr_array_header_t *events, int at,
                                 apr_pool_t *p)
{
    int n = events->nelts - at < OD_OUTBOX_CLAIM_CHUNK ? events->nelts - at : OD_OUTBOX_CLAIM_CHUNK;
    apr_array_header_t *chunk = apr_array_make(p, n, sizeof(od_store_event_t));

    memcpy(chunk->elts, (const od_store_event_t *) events->elts + at,
           sizeof(od_store_event_t) * (size_t) n);
    chunk->nelts = n;
    od_store_claim(ob->store, chunk, ob->opts.retry_after, p); /* errors: logged, left out */
    if (chunk->nelts > 0) {
        od_outbox_publish(ob, chunk, 1, p);
    }
    return chunk->nelts;
}

/* One relay round: the events pending with a due time up to @p due_before that this instance
 * can claim, those of recent rounds skipped. Returns batch_max when the store gave all it was
 * asked for and every event was claimed (more may wait: the caller may go on at once);
 * OD_OUTBOX_MARKS_AWAITED when it gave only recent rounds' events; else fewer than batch_max
 * (how many it took; 0 when it could not ask the store). */
static int od_outbox_relay(od_outbox_t *ob, apr_time_t due_before, apr_pool_t *p)
{
    apr_array_header_t *events = NULL;
    apr_time_t now = apr_time_now();
    int claimed = 0;

    /* Events published by recent rounds may still read as pending (their marks on their way to
     * the store): asked for that many more, so that skipping them still leaves a full round. */
    od_outbox_recent_age(ob, now);
    int recent = (int) (apr_hash_count(ob->recent.ids[0]) + apr_hash_count(ob->recent.ids[1]));
    int want =
        ob->opts.batch_max + (recent < 4 * ob->opts.batch_max ? recent : 4 * ob->opts.batch_max);
    if (od_store_pending(ob->store, due_before, want, &events, p) != APR_SUCCESS) {
        return 0; /* the store has logged why; next round */
    }
    int full = events->nelts == want;
    od_outbox_recent_skip(ob, events);
    events->nelts = events->nelts < ob->opts.batch_max ? events->nelts : ob->opts.batch_max;
    if (events->nelts == 0) {
        return full ? OD_OUTBOX_MARKS_AWAITED : 0;
    }
    apr_interval_time_t oldest = 0;
    for (int i = 0; i < events->nelts; i++) {
        apr_time_t c = ((od_store_event_t *) events->elts)[i].created_at;
        oldest = now - c > oldest ? now - c : oldest;
    }
    od_log_info(ob->log, "outbox: re-publishing %d pending event(s), oldest %lld ms", events->nelts,
                (long long) apr_time_as_msec(oldest));
    for (int at = 0; at < events->nelts; at += OD_OUTBOX_CLAIM_CHUNK) {
        claimed += od_outbox_relay_chunk(ob, events, at, p);
    }
    if (claimed < events->nelts) {
        od_log_info(ob->log,
                    "outbox: %d of them left unpublished: claimed by another instance first (or "
                    "the claim failed)",
                    events->nelts - claimed);
    }
    return claimed == events->nelts && full ? ob->opts.batch_max : events->nelts;
}

/* The events the full ring turned away, from the store, once the ring holds none older than the
 * newest of them: those pending with a due time up to its due time (created + retry_after), so
 * exactly the events created until then that are still unpublished, none of them in the ring.
 * They are this instance's own and not yet due for any relay (claimed all the same). Without
 * this they would wait for the relay, a whole lease after their creation. Returns 0 when done
 * (or nothing to do); 1 when more remain after OD_OUTBOX_CATCH_UP_ROUNDS rounds (the ring gets
 * its turn, then the next call); 2 when only events whose marks are on their way came back. */
static int od_outbox_catch_up(od_outbox_t *ob, apr_pool_t *p)
{
    apr_thread_mutex_lock(ob->lock);
    apr_time_t upto = ob->overflow;
    int ready = upto != 0 && (ob->count == 0 || ob->ring[ob->head].created_at > upto);
    apr_thread_mutex_unlock(ob->lock);
    if (!ready) {
        return 0;
    }
    int drained = 0, got = 0;
    for (int round = 0; round < OD_OUTBOX_CATCH_UP_ROUNDS && !drained; round++) {
        got = od_outbox_relay(ob, upto + ob->opts.retry_after, p);
        drained = got >= 0 && got < ob->opts.batch_max;
        apr_pool_clear(p);
        if (got == OD_OUTBOX_MARKS_AWAITED) {
            break;
        }
    }
    apr_thread_mutex_lock(ob->lock);
    if (drained && ob->overflow == upto) {
        ob->overflow = 0; /* else more remain, or were turned away meanwhile: the next call */
    }
    apr_thread_mutex_unlock(ob->lock);
    return drained ? 0 : got == OD_OUTBOX_MARKS_AWAITED ? 2 : 1;
}

/* Waits for work; returns the prompt batch (possibly empty), or NULL when it is time to end. */
static apr_array_header_t *od_outbox_wait(od_outbox_t *ob, apr_time_t next_relay, apr_pool_t *p)
{
    apr_array_header_t *batch = NULL;

    apr_thread_mutex_lock(ob->lock);
    if (ob->count == 0 && !ob->stopping && apr_time_now() < next_relay) {
        apr_thread_cond_timedwait(ob->wake, ob->lock, next_relay - apr_time_now());
    }
    /* Gathers: the ring fills meanwhile without waking anyone; a stop wakes it at once. */
    apr_time_t until = ob->last_round + OD_OUTBOX_GATHER;
    if (ob->count > 0 && ob->count < ob->opts.batch_max && !ob->stopping &&
        apr_time_now() < until) {
        apr_thread_cond_timedwait(ob->wake, ob->lock, until - apr_time_now());
    }
    ob->last_round = apr_time_now();
    int late = 0;
    if (!ob->stopping || (ob->count > 0 && apr_time_now() < ob->flush_until)) {
        batch = od_outbox_take(ob, &late, p);
    }
    apr_thread_mutex_unlock(ob->lock);
    if (late > 0) {
        od_log_warn(ob->log,
                    "outbox: %d event(s) waited in the queue past half their lease "
                    "(events_retry_after_s / 2); left to the relay",
                    late);
    }
    return batch;
}

static void *APR_THREAD_FUNC od_outbox_main(apr_thread_t *thread, void *data)
{
    od_outbox_t *ob = data;
    apr_pool_t *p = NULL;
    apr_time_t next_relay = apr_time_now();

    apr_pool_create(&p, NULL);
    for (int i = 0; i < 2; i++) { /* not p's children: p is cleared after every round */
        apr_pool_create(&ob->recent.pool[i], NULL);
        ob->recent.ids[i] = apr_hash_make(ob->recent.pool[i]);
    }
    ob->recent.since = apr_time_now();
    for (;;) {
        apr_array_header_t *batch = od_outbox_wait(ob, next_relay, p);
        if (batch == NULL) {
            break;
        }
        if (batch->nelts > 0) {
            od_outbox_publish(ob, batch, 0, p);
        }
        int more = od_outbox_catch_up(ob, p);
        if (more) { /* no waiting before the next call, or only for the marks awaited */
            apr_time_t soon = apr_time_now() + (more == 2 ? OD_OUTBOX_MARKS_WAIT : 0);
            next_relay = soon < next_relay ? soon : next_relay;
        }
        /* A full round means a backlog (an outage, a restart): the next round follows at once,
         * between prompt rounds, instead of a second later. */
        if (apr_time_now() >= next_relay) {
            int got = od_outbox_relay(ob, apr_time_now(), p);
            next_relay =
                apr_time_now() + (got == ob->opts.batch_max        ? 0
                                  : got == OD_OUTBOX_MARKS_AWAITED ? OD_OUTBOX_MARKS_WAIT
                                                                   : OD_OUTBOX_RELAY_EVERY);
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(ob->recent.pool[0]);
    apr_pool_destroy(ob->recent.pool[1]);
    apr_pool_destroy(p);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* ---- counting the backlog ---- */

/* One count; the figures of the last count that succeeded stay until the next does. */
static apr_status_t od_outbox_count(od_outbox_t *ob, apr_size_t *counted, apr_pool_t *p)
{
    apr_size_t n = 0;
    apr_time_t oldest = 0;
    apr_status_t rv = od_store_backlog(ob->store, &ob->count_stop, &n, &oldest, p);

    *counted = n; /* also what a failed count read before it failed */
    if (rv == APR_SUCCESS) {
        apr_thread_mutex_lock(ob->lock);
        ob->stats.pending = n;
        ob->oldest = oldest;
        apr_thread_mutex_unlock(ob->lock);
    }
    return rv; /* failures are logged by the store */
}

/* Waits until @p next or a stop; returns 1 when stopping. */
static int od_outbox_count_wait(od_outbox_t *ob, apr_time_t next)
{
    apr_thread_mutex_lock(ob->lock);
    while (!ob->stopping && apr_time_now() < next) {
        apr_thread_cond_timedwait(ob->count_wake, ob->lock, next - apr_time_now());
    }
    int stopping = ob->stopping;
    apr_thread_mutex_unlock(ob->lock);
    return stopping;
}

static void *APR_THREAD_FUNC od_outbox_counter(apr_thread_t *thread, void *data)
{
    od_outbox_t *ob = data;
    apr_pool_t *p = NULL;
    apr_time_t next = 0; /* the first count at once */

    apr_pool_create(&p, NULL);
    while (!od_outbox_count_wait(ob, next)) {
        apr_size_t n = 0;
        apr_time_t t0 = apr_time_now();
        if (od_outbox_count(ob, &n, p) == APR_ENOTIMPL) {
            break; /* the store cannot count */
        }
        apr_pool_clear(p);
        /* The pause for the backlog's size (OD_OUTBOX_COUNT_RATE), and never counting more
         * than half the time (a slow or throttled store). */
        apr_interval_time_t took = apr_time_now() - t0;
        apr_interval_time_t pause = apr_time_from_sec(1) * (apr_int64_t) n / OD_OUTBOX_COUNT_RATE;
        pause = pause > 2 * took ? pause : 2 * took;
        next = t0 + (pause > OD_OUTBOX_COUNT_EVERY ? pause : OD_OUTBOX_COUNT_EVERY);
    }
    apr_pool_destroy(p);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* ---- life cycle ---- */

void od_outbox_stop(od_outbox_t *ob, apr_interval_time_t timeout)
{
    apr_status_t trv = APR_SUCCESS;

    if (ob->thread == NULL) {
        return;
    }
    apr_atomic_set32(&ob->count_stop, 1);
    apr_thread_mutex_lock(ob->lock);
    ob->stopping = 1;
    ob->flush_until = apr_time_now() + timeout;
    apr_thread_cond_signal(ob->wake);
    apr_thread_cond_signal(ob->count_wake);
    apr_thread_mutex_unlock(ob->lock);
    apr_thread_join(&trv, ob->thread);
    ob->thread = NULL;
    if (ob->counter != NULL) {
        apr_thread_join(&trv, ob->counter);
        ob->counter = NULL;
    }
    if (ob->count > 0) {
        od_log_warn(ob->log, "outbox: %d event(s) left pending for the relay", ob->count);
    }
}

static apr_status_t od_outbox_cleanup(void *data)
{
    od_outbox_stop(data, 0);
    return APR_SUCCESS;
}

void od_outbox_stats(od_outbox_t *ob, od_outbox_stats_t *out)
{
    apr_time_t now = apr_time_now();

    apr_thread_mutex_lock(ob->lock);
    *out = ob->stats;
    /* Ages as of now: between two counts the oldest event only gets older. */
    out->oldest_age = out->pending > 0 && ob->oldest > 0 && now > ob->oldest ? now - ob->oldest : 0;
    apr_thread_mutex_unlock(ob->lock);
}

apr_status_t od_outbox_create(od_outbox_t **out, od_store_t *store, od_sink_t *sink,
                              const od_outbox_options_t *opts, od_log_t *log, apr_pool_t *p)
{
    od_outbox_t *ob = apr_pcalloc(p, sizeof(*ob));

    *out = NULL;
    ob->store = store;
    ob->sink = sink;
    ob->log = log;
    ob->opts = *opts;
    ob->opts.queue_slots = opts->queue_slots > 0 ? opts->queue_slots : 1;
    ob->opts.batch_max = opts->batch_max > 0 ? opts->batch_max : 1;
    ob->ring = apr_pcalloc(p, sizeof(*ob->ring) * (apr_size_t) ob->opts.queue_slots);
    apr_status_t rv = apr_thread_mutex_create(&ob->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&ob->wake, p);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&ob->count_wake, p);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_thread_create(&ob->thread, NULL, od_outbox_main, ob, p);
    }
    if (rv != APR_SUCCESS) {
        ob->thread = NULL;
        od_log_error(log, "outbox: starting the publisher thread failed: %d", rv);
        return rv;
    }
    rv = apr_thread_create(&ob->counter, NULL, od_outbox_counter, ob, p);
    if (rv != APR_SUCCESS) {
        ob->counter = NULL;
        od_log_error(log, "outbox: starting the backlog counter thread failed: %d", rv);
        od_outbox_stop(ob, 0);
        return rv;
    }
    /* Before the pool's subpools (the thread's) and the mutex's own cleanup run. */
    apr_pool_pre_cleanup_register(p, ob, od_outbox_cleanup);
    *out = ob;
    return APR_SUCCESS;
}
