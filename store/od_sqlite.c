/* od_sqlite: the SQLite store with group commit. */
#include "od_sqlite.h"
#include "od_status.h"

#include <apr_reslist.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <sqlite3.h>
#include <string.h>

#define OD_SQLITE_BUSY_MS 5000
#define OD_SQLITE_PURGE_EVERY apr_time_from_sec(1)
/* Expired idempotency rows are deleted in small slices: a few per order inside each batch, and
 * a slice a second when idle. Deleting a whole second's worth at once (thousands of rows at high
 * rates) stalled the writer and showed as a p99 spike once the first records expired. */
#define OD_SQLITE_PURGE_IDLE_ROWS 512
#define OD_SQLITE_PURGE_PER_ORDER 2

typedef enum od_sqlite_kind_e {
    OD_SQLITE_PUT,
    OD_SQLITE_PUBLISHED,
    OD_SQLITE_RESCHEDULE
} od_sqlite_kind_e;

/* One queued write; lives on the waiting caller's stack. */
typedef struct od_sqlite_req_t {
    od_sqlite_kind_e kind;
    const od_store_event_t *event; /* PUBLISHED (an array of nevents), RESCHEDULE */
    int nevents;
    apr_time_t due; /* RESCHEDULE */
    const od_store_order_t *order;
    od_store_result_t *result;
    apr_pool_t *pool; /* the caller's; used by the writer only while the caller waits */
    apr_status_t status;
    int done;
    apr_thread_cond_t *wake; /* signalled for this request alone, so a batch wakes only its own */
    struct od_sqlite_req_t *next;
} od_sqlite_req_t;

/* The writer connection's prepared statements; used only by the writer thread. */
typedef struct od_sqlite_writer_t {
    sqlite3 *db;
    sqlite3_stmt *idem_get;
    sqlite3_stmt *idem_put;
    sqlite3_stmt *order_get;
    sqlite3_stmt *order_put;
    sqlite3_stmt *purge;
    sqlite3_stmt *outbox_put;
    sqlite3_stmt *outbox_done;
    sqlite3_stmt *outbox_later;
} od_sqlite_writer_t;

/* A read connection, pooled in the reslist. */
typedef struct od_sqlite_reader_t {
    sqlite3 *db;
    sqlite3_stmt *get;
    sqlite3_stmt *pending;
} od_sqlite_reader_t;

typedef struct od_sqlite_s {
    const char *path;
    od_log_t *log;
    int batch_max;
    od_sqlite_writer_t w;
    apr_reslist_t *readers;
    apr_thread_t *thread;
    apr_thread_mutex_t *lock;
    /* Guarded by lock: the queue, stopping, and every queued request's done/status. */
    apr_thread_cond_t *work; /* signalled when the queue gains an item or stopping is set */
    od_sqlite_req_t *head;
    od_sqlite_req_t *tail;
    int stopping;
} od_sqlite_t;

static const char od_sqlite_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, caller TEXT NOT NULL,"
    " idem_key TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS idem (caller TEXT NOT NULL, idem_key TEXT NOT NULL,"
    " order_id TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (caller, idem_key));"
    "CREATE INDEX IF NOT EXISTS idem_expires ON idem(expires_at);"
    "CREATE TABLE IF NOT EXISTS outbox (event_id TEXT PRIMARY KEY, order_id TEXT NOT NULL,"
    " body TEXT NOT NULL, created_at INTEGER NOT NULL, due_at INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(due_at);"
    "PRAGMA user_version=2;";

static apr_status_t od_sqlite_fail(od_sqlite_t *s, sqlite3 *db, const char *call)
{
    od_log_error(s->log, "sqlite: %s failed on %s: %s", call, s->path,
                 db != NULL ? sqlite3_errmsg(db) : "out of memory");
    return OD_EUNAVAIL;
}

static apr_status_t od_sqlite_open(od_sqlite_t *s, sqlite3 **db, int flags)
{
    if (sqlite3_open_v2(s->path, db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        return od_sqlite_fail(s, *db, "sqlite3_open_v2");
    }
    sqlite3_busy_timeout(*db, OD_SQLITE_BUSY_MS);
    return APR_SUCCESS;
}

static apr_status_t od_sqlite_prepare(od_sqlite_t *s, sqlite3 *db, sqlite3_stmt **st,
                                      const char *sql)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        return od_sqlite_fail(s, db, "sqlite3_prepare_v3");
    }
    return APR_SUCCESS;
}

static apr_status_t od_sqlite_exec(od_sqlite_t *s, const char *sql)
{
    if (sqlite3_exec(s->w.db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        od_log_error(s->log, "sqlite: sqlite3_exec(%.40s) failed on %s: %s", sql, s->path,
                     sqlite3_errmsg(s->w.db));
        return OD_EUNAVAIL;
    }
    return APR_SUCCESS;
}

static apr_status_t od_sqlite_writer_open(od_sqlite_t *s)
{
    od_sqlite_writer_t *w = &s->w;
    apr_status_t rv = od_sqlite_open(s, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);

    if (rv == APR_SUCCESS) {
        rv = od_sqlite_exec(s, od_sqlite_schema);
    }
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        {&w->idem_get, "SELECT order_id, expires_at FROM idem WHERE caller = ?1 AND idem_key = ?2"},
        {&w->idem_put, "INSERT INTO idem (caller, idem_key, order_id, expires_at)"
                       " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (caller, idem_key) DO UPDATE SET"
                       " order_id = excluded.order_id, expires_at = excluded.expires_at"},
        {&w->order_get, "SELECT body, created_at FROM orders WHERE order_id = ?1"},
        {&w->order_put, "INSERT INTO orders (order_id, caller, idem_key, body, created_at)"
                        " VALUES (?1, ?2, ?3, ?4, ?5)"},
        {&w->purge, "DELETE FROM idem WHERE rowid IN"
                    " (SELECT rowid FROM idem WHERE expires_at <= ?1 LIMIT ?2)"},
        {&w->outbox_put, "INSERT INTO outbox (event_id, order_id, body, created_at, due_at)"
                         " VALUES (?1, ?2, ?3, ?4, ?5)"},
        {&w->outbox_done, "DELETE FROM outbox WHERE event_id = ?1"},
        {&w->outbox_later, "UPDATE outbox SET due_at = ?2, attempts = attempts + 1"
                           " WHERE event_id = ?1"},
    };
    for (apr_size_t i = 0; rv == APR_SUCCESS && i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        rv = od_sqlite_prepare(s, w->db, stmts[i].st, stmts[i].sql);
    }
    return rv;
}

static void od_sqlite_writer_close(od_sqlite_writer_t *w)
{
    sqlite3_stmt *all[] = {w->idem_get, w->idem_put,   w->order_get,   w->order_put,
                           w->purge,    w->outbox_put, w->outbox_done, w->outbox_later};

    for (apr_size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        sqlite3_finalize(all[i]);
    }
    sqlite3_close(w->db);
    memset(w, 0, sizeof(*w));
}

/* ---- the writer: one order inside the batch transaction ---- */

static void od_sqlite_bind_text(sqlite3_stmt *st, int i, const char *v, apr_size_t len)
{
    sqlite3_bind_text(st, i, v, (int) len, SQLITE_STATIC);
}

/* Finds a live idempotency record; on a hit fills result with the original order.
 * Returns SQLITE_ROW for a hit, SQLITE_DONE for none, or an error code. */
static int od_sqlite_find_live(od_sqlite_t *s, od_sqlite_req_t *req)
{
    od_sqlite_writer_t *w = &s->w;
    const od_store_order_t *o = req->order;
    int rc;

    sqlite3_reset(w->idem_get);
    od_sqlite_bind_text(w->idem_get, 1, o->caller, strlen(o->caller));
    od_sqlite_bind_text(w->idem_get, 2, o->idem_key, strlen(o->idem_key));
    rc = sqlite3_step(w->idem_get);
    if (rc != SQLITE_ROW || sqlite3_column_int64(w->idem_get, 1) <= o->created_at) {
        return rc == SQLITE_ROW ? SQLITE_DONE : rc;
    }
    sqlite3_reset(w->order_get);
    sqlite3_bind_value(w->order_get, 1, sqlite3_column_value(w->idem_get, 0));
    rc = sqlite3_step(w->order_get);
    if (rc != SQLITE_ROW) {
        /* A record pointing nowhere cannot be replayed; the new order replaces it. */
        return rc == SQLITE_DONE ? SQLITE_DONE : rc;
    }
    od_store_result_t *r = req->result;
    r->outcome = OD_STORE_REPLAYED;
    r->order_id = apr_pstrdup(req->pool, (const char *) sqlite3_column_text(w->idem_get, 0));
    r->body_len = (apr_size_t) sqlite3_column_bytes(w->order_get, 0);
    r->body =
        apr_pstrmemdup(req->pool, (const char *) sqlite3_column_text(w->order_get, 0), r->body_len);
    r->created_at = sqlite3_column_int64(w->order_get, 1);
    return SQLITE_ROW;
}

/* The outbox row, in the order's own transaction: the event can never be lost apart from it. */
static int od_sqlite_insert_event(od_sqlite_t *s, const od_store_order_t *o)
{
    sqlite3_stmt *st = s->w.outbox_put;

    if (o->event_id == NULL) {
        return SQLITE_DONE;
    }
    sqlite3_reset(st);
    od_sqlite_bind_text(st, 1, o->event_id, strlen(o->event_id));
    od_sqlite_bind_text(st, 2, o->order_id, strlen(o->order_id));
    od_sqlite_bind_text(st, 3, o->event, o->event_len);
    sqlite3_bind_int64(st, 4, o->created_at);
    sqlite3_bind_int64(st, 5, o->event_due);
    return sqlite3_step(st);
}

static int od_sqlite_insert(od_sqlite_t *s, od_sqlite_req_t *req)
{
    od_sqlite_writer_t *w = &s->w;
    const od_store_order_t *o = req->order;
    int rc;

    sqlite3_reset(w->order_put);
    od_sqlite_bind_text(w->order_put, 1, o->order_id, strlen(o->order_id));
    od_sqlite_bind_text(w->order_put, 2, o->caller, strlen(o->caller));
    od_sqlite_bind_text(w->order_put, 3, o->idem_key, strlen(o->idem_key));
    od_sqlite_bind_text(w->order_put, 4, o->body, o->body_len);
    sqlite3_bind_int64(w->order_put, 5, o->created_at);
    if ((rc = sqlite3_step(w->order_put)) != SQLITE_DONE) {
        return rc;
    }
    sqlite3_reset(w->idem_put);
    od_sqlite_bind_text(w->idem_put, 1, o->caller, strlen(o->caller));
    od_sqlite_bind_text(w->idem_put, 2, o->idem_key, strlen(o->idem_key));
    od_sqlite_bind_text(w->idem_put, 3, o->order_id, strlen(o->order_id));
    sqlite3_bind_int64(w->idem_put, 4, o->expires_at);
    if ((rc = sqlite3_step(w->idem_put)) != SQLITE_DONE) {
        return rc;
    }
    if ((rc = od_sqlite_insert_event(s, o)) != SQLITE_DONE) {
        return rc;
    }
    req->result->outcome = OD_STORE_CREATED;
    req->result->order_id = o->order_id;
    req->result->body = o->body;
    req->result->body_len = o->body_len;
    req->result->created_at = o->created_at;
    return SQLITE_DONE;
}

/* Marks outbox events published (their rows go) or one due later. */
static int od_sqlite_outbox_update(od_sqlite_t *s, od_sqlite_req_t *req)
{
    sqlite3_stmt *st = req->kind == OD_SQLITE_PUBLISHED ? s->w.outbox_done : s->w.outbox_later;
    int rc = SQLITE_DONE;

    for (int i = 0; i < req->nevents && rc == SQLITE_DONE; i++) {
        const char *id = req->event[i].event_id;
        sqlite3_reset(st);
        od_sqlite_bind_text(st, 1, id, strlen(id));
        if (req->kind == OD_SQLITE_RESCHEDULE) {
            sqlite3_bind_int64(st, 2, req->due);
        }
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    return rc;
}

/* One write in its own savepoint, so a failure undoes that write alone. */
static apr_status_t od_sqlite_apply(od_sqlite_t *s, od_sqlite_req_t *req)
{
    int rc;

    if (od_sqlite_exec(s, "SAVEPOINT o") != APR_SUCCESS) {
        return OD_EUNAVAIL;
    }
    if (req->kind != OD_SQLITE_PUT) {
        rc = od_sqlite_outbox_update(s, req);
    } else if ((rc = od_sqlite_find_live(s, req)) == SQLITE_DONE) {
        rc = od_sqlite_insert(s, req);
    }
    sqlite3_reset(s->w.idem_get);
    sqlite3_reset(s->w.order_get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        od_log_error(s->log, "sqlite: writing %s failed: %s",
                     req->kind == OD_SQLITE_PUT ? req->order->order_id : req->event[0].event_id,
                     sqlite3_errmsg(s->w.db));
        od_sqlite_exec(s, "ROLLBACK TO o");
        od_sqlite_exec(s, "RELEASE o");
        return OD_EUNAVAIL;
    }
    return od_sqlite_exec(s, "RELEASE o");
}

static void od_sqlite_purge(od_sqlite_t *s, apr_time_t now, int rows);

static void od_sqlite_commit_batch(od_sqlite_t *s, od_sqlite_req_t *batch)
{
    apr_status_t rv = od_sqlite_exec(s, "BEGIN IMMEDIATE");
    int n = 0;

    for (od_sqlite_req_t *r = batch; r != NULL; r = r->next, n++) {
        r->status = rv == APR_SUCCESS ? od_sqlite_apply(s, r) : OD_EUNAVAIL;
    }
    if (rv == APR_SUCCESS) {
        od_sqlite_purge(s, apr_time_now(), OD_SQLITE_PURGE_PER_ORDER * n + 16);
    }
    if (rv == APR_SUCCESS && od_sqlite_exec(s, "COMMIT") != APR_SUCCESS) {
        od_sqlite_exec(s, "ROLLBACK");
        for (od_sqlite_req_t *r = batch; r != NULL; r = r->next) {
            r->status = OD_EUNAVAIL;
        }
    }
}

static void od_sqlite_purge(od_sqlite_t *s, apr_time_t now, int rows)
{
    sqlite3_stmt *st = s->w.purge;

    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, rows);
    if (sqlite3_step(st) != SQLITE_DONE) {
        od_log_warn(s->log, "sqlite: purging expired idempotency records failed: %s",
                    sqlite3_errmsg(s->w.db));
    }
    sqlite3_reset(st);
}

/* Detaches up to batch_max queued requests. Called with the lock held. */
static od_sqlite_req_t *od_sqlite_take(od_sqlite_t *s)
{
    od_sqlite_req_t *batch = s->head, *last = s->head;

    for (int n = 1; n < s->batch_max && last->next != NULL; n++) {
        last = last->next;
    }
    s->head = last->next;
    if (s->head == NULL) {
        s->tail = NULL;
    }
    last->next = NULL;
    return batch;
}

/* Waits for work; on an idle second, purges a slice. Called and returns with the lock held;
 * returns 0 when it is time to end. */
static int od_sqlite_wait(od_sqlite_t *s, apr_time_t *last_purge)
{
    while (s->head == NULL && !s->stopping) {
        apr_thread_cond_timedwait(s->work, s->lock, OD_SQLITE_PURGE_EVERY);
        if (s->head == NULL && apr_time_now() - *last_purge >= OD_SQLITE_PURGE_EVERY) {
            *last_purge = apr_time_now();
            apr_thread_mutex_unlock(s->lock);
            od_sqlite_purge(s, *last_purge, OD_SQLITE_PURGE_IDLE_ROWS);
            apr_thread_mutex_lock(s->lock);
        }
    }
    return s->head != NULL || !s->stopping;
}

static void *APR_THREAD_FUNC od_sqlite_writer(apr_thread_t *thread, void *data)
{
    od_sqlite_t *s = data;
    apr_time_t last_purge = apr_time_now();

    apr_thread_mutex_lock(s->lock);
    while (od_sqlite_wait(s, &last_purge)) {
        od_sqlite_req_t *batch = od_sqlite_take(s);
        apr_thread_mutex_unlock(s->lock);
        od_sqlite_commit_batch(s, batch);
        apr_thread_mutex_lock(s->lock);
        for (od_sqlite_req_t *r = batch; r != NULL;) {
            od_sqlite_req_t *next = r->next; /* r may be gone once done is seen */
            r->done = 1;
            apr_thread_cond_signal(r->wake);
            r = next;
        }
    }
    apr_thread_mutex_unlock(s->lock);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* ---- the store interface ---- */

/* Queues a write for the writer thread and waits until its batch is committed. */
static apr_status_t od_sqlite_submit(od_sqlite_t *s, od_sqlite_req_t *req)
{
    /* In the caller's pool, which only the caller uses: gone with it. */
    if (apr_thread_cond_create(&req->wake, req->pool) != APR_SUCCESS) {
        od_log_error(s->log, "sqlite: apr_thread_cond_create failed");
        return OD_EUNAVAIL;
    }
    apr_thread_mutex_lock(s->lock);
    if (s->stopping) {
        apr_thread_mutex_unlock(s->lock);
        return OD_ESHUTDOWN;
    }
    if (s->tail != NULL) {
        s->tail->next = req;
    } else {
        s->head = req;
    }
    s->tail = req;
    apr_thread_cond_signal(s->work);
    while (!req->done) {
        apr_thread_cond_wait(req->wake, s->lock);
    }
    apr_thread_mutex_unlock(s->lock);
    return req->status;
}

static apr_status_t od_sqlite_put(void *impl, const od_store_order_t *order,
                                  od_store_result_t *result, apr_pool_t *p)
{
    od_sqlite_req_t req = {OD_SQLITE_PUT, NULL, 0, 0, order, result, p, APR_SUCCESS, 0, NULL, NULL};
    return od_sqlite_submit(impl, &req);
}

static apr_status_t od_sqlite_published(void *impl, const od_store_event_t *events, int n,
                                        apr_pool_t *p)
{
    od_sqlite_req_t req = {OD_SQLITE_PUBLISHED, events, n,    0,   NULL, NULL, p,
                           APR_SUCCESS,         0,      NULL, NULL};
    return od_sqlite_submit(impl, &req);
}

static apr_status_t od_sqlite_reschedule(void *impl, const od_store_event_t *event, apr_time_t due,
                                         apr_pool_t *p)
{
    od_sqlite_req_t req = {OD_SQLITE_RESCHEDULE, event, 1,    due, NULL, NULL, p,
                           APR_SUCCESS,          0,     NULL, NULL};
    return od_sqlite_submit(impl, &req);
}

static apr_status_t od_sqlite_read(od_sqlite_t *s, od_sqlite_reader_t *r, const char *caller,
                                   const char *order_id, od_store_result_t *result, apr_pool_t *p)
{
    sqlite3_reset(r->get);
    od_sqlite_bind_text(r->get, 1, order_id, strlen(order_id));
    od_sqlite_bind_text(r->get, 2, caller, strlen(caller));
    int rc = sqlite3_step(r->get);
    if (rc == SQLITE_ROW) {
        result->outcome = OD_STORE_CREATED;
        result->order_id = apr_pstrdup(p, order_id);
        result->body_len = (apr_size_t) sqlite3_column_bytes(r->get, 0);
        result->body =
            apr_pstrmemdup(p, (const char *) sqlite3_column_text(r->get, 0), result->body_len);
        result->created_at = sqlite3_column_int64(r->get, 1);
    }
    sqlite3_reset(r->get);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        return rc == SQLITE_ROW ? APR_SUCCESS : OD_ENOTFOUND;
    }
    return od_sqlite_fail(s, r->db, "sqlite3_step(get order)");
}

static apr_status_t od_sqlite_get(void *impl, const char *caller, const char *order_id,
                                  od_store_result_t *result, apr_pool_t *p)
{
    od_sqlite_t *s = impl;
    void *res = NULL;
    apr_status_t rv = apr_reslist_acquire(s->readers, &res);

    if (rv != APR_SUCCESS) {
        od_log_error(s->log, "sqlite: apr_reslist_acquire (read connection) failed: %d", rv);
        return OD_EUNAVAIL;
    }
    rv = od_sqlite_read(s, res, caller, order_id, result, p);
    if (rv == OD_EUNAVAIL) {
        apr_reslist_invalidate(s->readers, res);
    } else {
        apr_reslist_release(s->readers, res);
    }
    return rv;
}

static void od_sqlite_event_row(sqlite3_stmt *st, apr_array_header_t *events, apr_pool_t *p)
{
    od_store_event_t *e = apr_array_push(events);

    e->event_id = apr_pstrdup(p, (const char *) sqlite3_column_text(st, 0));
    e->order_id = apr_pstrdup(p, (const char *) sqlite3_column_text(st, 1));
    e->event_len = (apr_size_t) sqlite3_column_bytes(st, 2);
    e->event = apr_pstrmemdup(p, (const char *) sqlite3_column_text(st, 2), e->event_len);
    e->created_at = sqlite3_column_int64(st, 3);
    e->attempts = sqlite3_column_int(st, 4);
}

static apr_status_t od_sqlite_pending(void *impl, apr_time_t due_before, int max,
                                      apr_array_header_t **events, apr_pool_t *p)
{
    od_sqlite_t *s = impl;
    void *res = NULL;
    int rc = SQLITE_DONE;

    *events = apr_array_make(p, max > 0 ? max : 1, sizeof(od_store_event_t));
    if (apr_reslist_acquire(s->readers, &res) != APR_SUCCESS) {
        od_log_error(s->log, "sqlite: apr_reslist_acquire (read connection) failed");
        return OD_EUNAVAIL;
    }
    od_sqlite_reader_t *r = res;
    sqlite3_reset(r->pending);
    sqlite3_bind_int64(r->pending, 1, due_before);
    sqlite3_bind_int(r->pending, 2, max);
    while ((rc = sqlite3_step(r->pending)) == SQLITE_ROW) {
        od_sqlite_event_row(r->pending, *events, p);
    }
    sqlite3_reset(r->pending);
    if (rc != SQLITE_DONE) {
        od_sqlite_fail(s, r->db, "sqlite3_step(pending events)");
        apr_reslist_invalidate(s->readers, res);
        return OD_EUNAVAIL;
    }
    apr_reslist_release(s->readers, res);
    return APR_SUCCESS;
}

static const od_store_ops_t od_sqlite_ops = {.name = "sqlite",
                                             .put = od_sqlite_put,
                                             .get = od_sqlite_get,
                                             .pending = od_sqlite_pending,
                                             .published = od_sqlite_published,
                                             .reschedule = od_sqlite_reschedule,
                                             .put_async = NULL};

/* ---- life cycle ---- */

static apr_status_t od_sqlite_reader_make(void **res, void *params, apr_pool_t *p)
{
    od_sqlite_t *s = params;
    od_sqlite_reader_t *r = apr_pcalloc(p, sizeof(*r));
    apr_status_t rv = od_sqlite_open(s, &r->db, SQLITE_OPEN_READONLY);

    if (rv == APR_SUCCESS) {
        rv = od_sqlite_prepare(s, r->db, &r->get,
                               "SELECT body, created_at FROM orders"
                               " WHERE order_id = ?1 AND caller = ?2");
    }
    if (rv == APR_SUCCESS) {
        rv = od_sqlite_prepare(s, r->db, &r->pending,
                               "SELECT event_id, order_id, body, created_at, attempts FROM outbox"
                               " WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2");
    }
    if (rv != APR_SUCCESS) {
        sqlite3_finalize(r->get);
        sqlite3_close(r->db);
        return rv;
    }
    *res = r;
    return APR_SUCCESS;
}

static apr_status_t od_sqlite_reader_free(void *res, void *params, apr_pool_t *p)
{
    od_sqlite_reader_t *r = res;

    sqlite3_finalize(r->get);
    sqlite3_finalize(r->pending);
    sqlite3_close(r->db);
    return APR_SUCCESS;
}

/* Stops the writer after it has drained the queue, then closes the connections. Registered as a
 * pre-cleanup: APR destroys subpools (the writer thread's among them) and runs the mutex's own
 * cleanup before ordinary cleanups, and the writer must be gone before either. Idempotent and
 * safe on a partly built store, so creation undoes itself by calling it. */
static apr_status_t od_sqlite_cleanup(void *data)
{
    od_sqlite_t *s = data;
    apr_status_t trv = APR_SUCCESS;

    if (s->thread != NULL) {
        apr_thread_mutex_lock(s->lock);
        s->stopping = 1;
        apr_thread_cond_signal(s->work);
        apr_thread_mutex_unlock(s->lock);
        apr_thread_join(&trv, s->thread);
        s->thread = NULL;
    }
    if (s->readers != NULL) {
        apr_reslist_destroy(s->readers);
        s->readers = NULL;
    }
    od_sqlite_writer_close(&s->w);
    return APR_SUCCESS;
}

static apr_status_t od_sqlite_start(od_sqlite_t *s, int readers, apr_pool_t *p)
{
    apr_status_t rv = od_sqlite_writer_open(s);

    if (rv == APR_SUCCESS) {
        rv = apr_thread_mutex_create(&s->lock, APR_THREAD_MUTEX_DEFAULT, p);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&s->work, p);
    }

    if (rv == APR_SUCCESS) {
        rv = apr_reslist_create(&s->readers, 1, readers, readers, 0, od_sqlite_reader_make,
                                od_sqlite_reader_free, s, p);
        if (rv != APR_SUCCESS) {
            s->readers = NULL;
            od_log_error(s->log, "sqlite: apr_reslist_create (read connections) failed: %d", rv);
        }
    }
    if (rv == APR_SUCCESS) {
        rv = apr_thread_create(&s->thread, NULL, od_sqlite_writer, s, p);
        if (rv != APR_SUCCESS) {
            s->thread = NULL;
            od_log_error(s->log, "sqlite: apr_thread_create (writer) failed: %d", rv);
        }
    }
    return rv;
}

apr_status_t od_sqlite_create(od_store_t **out, const char *path, int readers, int batch_max,
                              od_log_t *log, apr_pool_t *p)
{
    od_sqlite_t *s = apr_pcalloc(p, sizeof(*s));

    *out = NULL;
    s->path = apr_pstrdup(p, path);
    s->log = log;
    s->batch_max = batch_max < 1 ? 1 : batch_max;
    apr_pool_pre_cleanup_register(p, s, od_sqlite_cleanup);
    apr_status_t rv = od_sqlite_start(s, readers < 1 ? 1 : readers, p);
    if (rv != APR_SUCCESS) {
        od_sqlite_cleanup(s);
        return OD_EUNAVAIL;
    }
    return od_store_create(out, &od_sqlite_ops, s, p);
}
