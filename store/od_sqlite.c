/* od_sqlite: the SQLite store with group commit. */
#include "od_sqlite.h"
#include "od_event.h"
#include "od_idemidx.h"
#include "od_status.h"

#include <apr_atomic.h>
#include <apr_file_io.h>
#include <apr_reslist.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define OD_SQLITE_BUSY_MS 5000
/* An idle writer drops expired idempotency index entries this often. */
#define OD_SQLITE_IDLE_EXPIRE_EVERY apr_time_from_sec(1)
/* Room in the idempotency index before it doubles: 2^20 entries (32 MiB with its table), a 15 s
 * window (plus the grace below) at 65,000 orders/s, about twice what this store commits on the
 * benchmark machine. 2^19 held 32,000 orders/s, which this store now reaches: the index then
 * doubled half-way through a run (RSS +33 MB at once), which is growth an operator would see. */
#define OD_SQLITE_IDEM_CAPACITY (1u << 20)
/* Index entries are dropped this long after they expire: an order is timed on an HTTP thread
 * before it reaches the writer, so its created_at may be a little older than the writer's now. */
#define OD_SQLITE_IDEM_GRACE apr_time_from_sec(1)
/* Rebuilding the index reads orders newest first and stops at the first one created this long
 * before the window began; created_at follows insertion order up to such clock steps. */
#define OD_SQLITE_IDEM_SLACK apr_time_from_sec(60)
/* The checkpointer copies the WAL into the database once this many pages wait. Small passes keep
 * commits fast: a commit's fdatasync is a disk cache flush, which waits for whatever the
 * checkpointer has written just before it, and the writer's catch-up (below) copies what arrived
 * during the last pass. At 5,000 orders/s (bench scenario 5, batch-traced, 20 s runs): 1000 pages
 * (SQLite's own auto-checkpoint threshold) gave 9-48 commits over 5 ms, catch-ups of 4.5 ms and
 * p99 9.5-15 ms; 128 pages gave 2-5, 0.9 ms and p99 5.7-6.1 ms, for about 3 % of peak rate. */
#define OD_SQLITE_CKPT_PAGES 128
/* Frames a checkpoint left behind (the writer went on meanwhile) are tried again after this
 * pause: once writes pause the WAL is then fully copied, and the writer's next transaction
 * starts it over from its beginning instead of appending. */
#define OD_SQLITE_CKPT_RETRY apr_time_from_msec(100)
/* The WAL starts over only when the writer begins a transaction after a checkpoint copied all
 * of it. Beside a busy writer that never happens (the writer has begun its next batch before a
 * pass ends), and under steady load the WAL grew without bound (280 MB in 2 s in a benchmark).
 * Past this length the writer itself copies what the checkpointer's last pass left, between two
 * batches, so the WAL stays around 20 MB. */
#define OD_SQLITE_CKPT_RESTART_PAGES 4000
/* The writer's share is kept small: it is asked to copy the rest only after a pass that found at
 * most this many new frames (or after this many passes in a row, should none). */
#define OD_SQLITE_CKPT_TAIL_PAGES 256
#define OD_SQLITE_CKPT_REPEATS 4
/* A WAL this long after a checkpoint means it cannot start over (readers kept old snapshots). */
#define OD_SQLITE_CKPT_WARN_PAGES 100000
#define OD_SQLITE_CKPT_WARN_EVERY apr_time_from_sec(60)
/* Published marks waiting for a commit, at most; past it od_sqlite_published waits for a commit
 * of its own, which paces the publisher instead of growing the queue without bound. */
#define OD_SQLITE_MARKS_MAX 65536

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
    apr_uint64_t fp; /* PUT: the order's idempotency fingerprint (od_idemidx) */
    od_store_result_t *result;
    apr_pool_t *pool; /* the caller's; used by the writer only while the caller waits */
    apr_status_t status;
    int done;
    apr_thread_cond_t *wake;  /* signalled for this request alone, so a batch wakes only its own */
    od_store_done_fn done_fn; /* an asynchronous PUT: completed by the writer, nobody waits */
    void *baton;
    struct od_sqlite_req_t *next;
} od_sqlite_req_t;

/* The outbox rows of one od_sqlite_published call, waiting for the writer's next commit. One
 * malloc'd block. */
typedef struct od_sqlite_marks_t {
    struct od_sqlite_marks_t *next;
    int n;
    apr_int64_t rows[];
} od_sqlite_marks_t;

/* The writer connection's prepared statements; used only by the writer thread. */
typedef struct od_sqlite_writer_t {
    sqlite3 *db;
    sqlite3_stmt *row_get;
    sqlite3_stmt *order_put;
    sqlite3_stmt *outbox_put;
    sqlite3_stmt *outbox_done;
    sqlite3_stmt *outbox_later;
    /* Transaction control, prepared once: sqlite3_exec would parse each again per order. */
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
    sqlite3_stmt *sp_begin;
    sqlite3_stmt *sp_release;
    sqlite3_stmt *sp_rollback;
    int catch_up; /* set by the WAL hook (on this thread): finish a checkpoint after the batch */
    /* The live idempotency records: the writer alone decides whether an order is new, so the
     * index is its own (filled from the orders table before the thread starts). */
    od_idemidx_t *idx;
    apr_size_t added; /* entries added to idx by the batch being written */
} od_sqlite_writer_t;

/* The checkpointer: a thread with a connection of its own, so that no commit waits for the WAL
 * to be copied into the database (the auto-checkpoint ran inside COMMIT, with an fsync). */
typedef struct od_sqlite_ckpt_t {
    sqlite3 *db; /* used by the checkpointer thread alone while it runs */
    apr_thread_t *thread;
    apr_thread_mutex_t *lock;
    /* Guarded by lock: wanted, done, restart, stopping. */
    apr_thread_cond_t *work; /* signalled when wanted or stopping is set */
    int wanted;              /* the writer's WAL hook asks for a checkpoint */
    int done;                /* frames of the current WAL already copied */
    int restart;             /* the WAL is long: the writer should copy the rest (catch_up) */
    int stopping;
    apr_time_t warned; /* the last warning; the checkpointer thread's own */
} od_sqlite_ckpt_t;

/* A read connection, pooled in the reslist. */
typedef struct od_sqlite_reader_t {
    sqlite3 *db;
    sqlite3_stmt *get;
    sqlite3_stmt *pending;
    sqlite3_stmt *backlog;
} od_sqlite_reader_t;

typedef struct od_sqlite_s {
    const char *path;
    od_log_t *log;
    int batch_max;
    apr_interval_time_t ttl; /* the idempotency window, for rebuilding the index */
    apr_file_t *lock_file;   /* held locked while the store is open: one orderd per file */
    /* The index's size as of the writer's last batch, for od_store_stats (apr_atomic). */
    volatile apr_uint64_t idx_entries;
    volatile apr_uint64_t idx_capacity;
    od_sqlite_writer_t w;
    od_sqlite_ckpt_t ckpt;
    apr_reslist_t *readers;
    apr_thread_t *thread;
    apr_thread_mutex_t *lock;
    /* Guarded by lock: the queue, the marks and their count, idle, stopping, and every queued
     * request's done/status. */
    apr_thread_cond_t *work; /* signalled when the queue gains an item, marks arrive for an idle
                              * writer, or stopping is set */
    od_sqlite_req_t *head;
    od_sqlite_req_t *tail;
    od_sqlite_marks_t *marks; /* applied in the writer's next commit, in any order */
    int marks_queued;         /* rows in marks */
    int idle;                 /* the writer is waiting for work */
    int stopping;
} od_sqlite_t;

/* The schema version this orderd writes (PRAGMA user_version). The tables keep their rowids:
 * WITHOUT ROWID was measured slower for each of them at these row sizes (its interior pages
 * hold whole rows, and its secondary indexes carry the text key instead of an integer). */
#define OD_SQLITE_VERSION 4

/* Creating what is missing also brings older files up to version 4: version 1 had no outbox;
 * versions 1 and 2 kept idempotency records in a table of their own (idem), which version 3
 * replaced by the in-memory index, rebuilt from the orders themselves. An outbox row is the
 * event's id and schedule, keyed by its order's row: the envelope is rendered again from the
 * order when the relay needs it (version 2 and 3 rows held a copy of it, keyed by event_id,
 * which doubled what each order wrote). */
static const char od_sqlite_schema[] =
    "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, caller TEXT NOT NULL,"
    " idem_key TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "DROP TABLE IF EXISTS idem;"
    "CREATE TABLE IF NOT EXISTS outbox (order_row INTEGER PRIMARY KEY, event_id TEXT NOT NULL,"
    " due_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(due_at);"
    "PRAGMA user_version=4;";

/* Versions 2 and 3: the old outbox steps aside before the schema creates the new one ... */
static const char od_sqlite_outbox_v3_aside[] = "ALTER TABLE outbox RENAME TO outbox_v3;"
                                                "DROP INDEX IF EXISTS outbox_due;";
/* ... and its pending events move into it. */
static const char od_sqlite_outbox_v3_move[] =
    "INSERT INTO outbox (order_row, event_id, due_at, attempts)"
    " SELECT orders.rowid, outbox_v3.event_id, outbox_v3.due_at, outbox_v3.attempts"
    " FROM outbox_v3 JOIN orders ON orders.order_id = outbox_v3.order_id;"
    "DROP TABLE outbox_v3;";

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

/* A mutex and a condition variable for one of the store's threads (@p what names it). */
static apr_status_t od_sqlite_sync_create(od_sqlite_t *s, apr_thread_mutex_t **lock,
                                          apr_thread_cond_t **cond, const char *what, apr_pool_t *p)
{
    apr_status_t rv = apr_thread_mutex_create(lock, APR_THREAD_MUTEX_DEFAULT, p);

    if (rv != APR_SUCCESS) {
        od_log_error(s->log, "sqlite: apr_thread_mutex_create (%s) failed: %d", what, rv);
        return OD_EUNAVAIL;
    }
    if ((rv = apr_thread_cond_create(cond, p)) != APR_SUCCESS) {
        od_log_error(s->log, "sqlite: apr_thread_cond_create (%s) failed: %d", what, rv);
        return OD_EUNAVAIL;
    }
    return APR_SUCCESS;
}

static apr_status_t od_sqlite_exec(od_sqlite_t *s, sqlite3 *db, const char *sql)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        od_log_error(s->log, "sqlite: sqlite3_exec(%.40s) failed on %s: %s", sql, s->path,
                     sqlite3_errmsg(db));
        return OD_EUNAVAIL;
    }
    return APR_SUCCESS;
}

static apr_status_t od_sqlite_version(od_sqlite_t *s, int *version)
{
    sqlite3_stmt *st = NULL;
    apr_status_t rv = od_sqlite_prepare(s, s->w.db, &st, "PRAGMA user_version");

    if (rv == APR_SUCCESS && sqlite3_step(st) != SQLITE_ROW) {
        rv = od_sqlite_fail(s, s->w.db, "sqlite3_step(PRAGMA user_version)");
    }
    if (rv == APR_SUCCESS) {
        *version = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return rv;
}

/* Creates the schema, or brings a file of an older @p version up to this one. */
static apr_status_t od_sqlite_upgrade(od_sqlite_t *s, int version)
{
    int old_outbox = version == 2 || version == 3;
    apr_status_t rv =
        old_outbox ? od_sqlite_exec(s, s->w.db, od_sqlite_outbox_v3_aside) : APR_SUCCESS;

    if (rv == APR_SUCCESS) {
        rv = od_sqlite_exec(s, s->w.db, od_sqlite_schema);
    }
    if (rv == APR_SUCCESS && old_outbox) {
        rv = od_sqlite_exec(s, s->w.db, od_sqlite_outbox_v3_move);
    }
    return rv;
}

/* Creates or completes the schema in one transaction. The version is checked before anything
 * is written: a newer orderd's file is refused untouched, as its tables may mean other things.
 * WAL comes last because journal_mode cannot change inside a transaction. */
static apr_status_t od_sqlite_schema_open(od_sqlite_t *s)
{
    sqlite3 *db = s->w.db;
    int version = 0;
    apr_status_t rv = od_sqlite_exec(s, db, "PRAGMA synchronous=FULL; BEGIN IMMEDIATE");

    if (rv == APR_SUCCESS) {
        rv = od_sqlite_version(s, &version);
        if (rv == APR_SUCCESS && version > OD_SQLITE_VERSION) {
            od_log_error(s->log,
                         "sqlite: %s has schema version %d, newer than this orderd's %d (written"
                         " by a newer orderd?); refusing to use it",
                         s->path, version, OD_SQLITE_VERSION);
            rv = OD_EUNAVAIL;
        }
        if (rv == APR_SUCCESS && version < OD_SQLITE_VERSION) {
            rv = od_sqlite_upgrade(s, version);
        }
        if (rv == APR_SUCCESS) {
            rv = od_sqlite_exec(s, db, "COMMIT");
        }
        if (rv != APR_SUCCESS) {
            /* Quietly: the failure itself is logged, and this undoes whatever it did. */
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    /* The checkpointer copies the WAL; see od_sqlite_wal_hook. */
    return rv == APR_SUCCESS
               ? od_sqlite_exec(s, db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0")
               : rv;
}

static apr_status_t od_sqlite_writer_open(od_sqlite_t *s)
{
    od_sqlite_writer_t *w = &s->w;
    apr_status_t rv = od_sqlite_open(s, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);

    if (rv == APR_SUCCESS) {
        rv = od_sqlite_schema_open(s);
    }
#ifdef ORDERD_FAULT_INJECTION
    /* Test builds: ORDERD_FAULT_SQLITE_MAX_PAGES=N makes the file "full" at N pages. */
    const char *max_pages = getenv("ORDERD_FAULT_SQLITE_MAX_PAGES");
    if (rv == APR_SUCCESS && max_pages != NULL) {
        char sql[64];
        apr_snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%d", atoi(max_pages));
        rv = od_sqlite_exec(s, w->db, sql);
    }
#endif
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        {&w->row_get, "SELECT caller, idem_key, order_id, body, created_at FROM orders"
                      " WHERE rowid = ?1"},
        {&w->order_put, "INSERT INTO orders (order_id, caller, idem_key, body, created_at)"
                        " VALUES (?1, ?2, ?3, ?4, ?5)"},
        {&w->outbox_put, "INSERT INTO outbox (order_row, event_id, due_at) VALUES (?1, ?2, ?3)"},
        {&w->outbox_done, "DELETE FROM outbox WHERE order_row = ?1"},
        {&w->outbox_later, "UPDATE outbox SET due_at = ?2, attempts = attempts + 1"
                           " WHERE order_row = ?1"},
        {&w->begin, "BEGIN IMMEDIATE"},
        {&w->commit, "COMMIT"},
        {&w->rollback, "ROLLBACK"},
        {&w->sp_begin, "SAVEPOINT o"},
        {&w->sp_release, "RELEASE o"},
        {&w->sp_rollback, "ROLLBACK TO o"},
    };
    for (apr_size_t i = 0; rv == APR_SUCCESS && i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        rv = od_sqlite_prepare(s, w->db, stmts[i].st, stmts[i].sql);
    }
    return rv;
}

static void od_sqlite_writer_close(od_sqlite_writer_t *w)
{
    sqlite3_stmt *all[] = {w->row_get,      w->order_put,  w->outbox_put, w->outbox_done,
                           w->outbox_later, w->begin,      w->commit,     w->rollback,
                           w->sp_begin,     w->sp_release, w->sp_rollback};

    for (apr_size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        sqlite3_finalize(all[i]);
    }
    sqlite3_close(w->db);
    memset(w, 0, sizeof(*w));
}

/* ---- the writer: one order inside the batch transaction ---- */

/* Steps a prepared statement that returns no rows (transaction control) and resets it. */
static apr_status_t od_sqlite_run(od_sqlite_t *s, sqlite3_stmt *st)
{
    apr_status_t rv = APR_SUCCESS;

    if (sqlite3_step(st) != SQLITE_DONE) {
        od_log_error(s->log, "sqlite: sqlite3_step(%s) failed on %s: %s", sqlite3_sql(st), s->path,
                     sqlite3_errmsg(s->w.db));
        rv = OD_EUNAVAIL;
    }
    sqlite3_reset(st);
    return rv;
}

static void od_sqlite_bind_text(sqlite3_stmt *st, int i, const char *v, apr_size_t len)
{
    sqlite3_bind_text(st, i, v, (int) len, SQLITE_STATIC);
}

/* Adds an order to the idempotency index. The index doubles when it is full (more orders in one
 * window than it was sized for), which operators should see: it is memory held for good. */
static void od_sqlite_remember(od_sqlite_t *s, apr_uint64_t fp, apr_int64_t row,
                               apr_time_t expires_at)
{
    apr_size_t capacity = od_idemidx_capacity(s->w.idx);

    od_idemidx_add(s->w.idx, fp, row, expires_at);
    if (od_idemidx_capacity(s->w.idx) != capacity) {
        od_log_info(s->log,
                    "sqlite: the idempotency index grew to %" APR_SIZE_T_FMT
                    " entries (%" APR_SIZE_T_FMT
                    " MiB): a window held more orders than it had room for",
                    od_idemidx_capacity(s->w.idx), od_idemidx_bytes(s->w.idx) >> 20);
    }
}

/* Reads the order stored at @p row; if it has @p req's key, fills the result with it.
 * Returns SQLITE_ROW for a hit, SQLITE_DONE for another key (or no such row), or an error. */
static int od_sqlite_replay_row(od_sqlite_t *s, od_sqlite_req_t *req, apr_int64_t row)
{
    sqlite3_stmt *st = s->w.row_get;
    const od_store_order_t *o = req->order;

    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, row);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        return rc;
    }
    if (strcmp((const char *) sqlite3_column_text(st, 0), o->caller) != 0 ||
        strcmp((const char *) sqlite3_column_text(st, 1), o->idem_key) != 0) {
        return SQLITE_DONE; /* another key with the same fingerprint */
    }
    od_store_result_t *r = req->result;
    r->outcome = OD_STORE_REPLAYED;
    r->order_id = apr_pstrdup(req->pool, (const char *) sqlite3_column_text(st, 2));
    r->body_len = (apr_size_t) sqlite3_column_bytes(st, 3);
    r->body = apr_pstrmemdup(req->pool, (const char *) sqlite3_column_text(st, 3), r->body_len);
    r->created_at = sqlite3_column_int64(st, 4);
    r->event_seq = 0; /* the event is the original order's */
    return SQLITE_ROW;
}

/* Finds the order of a live idempotency record for @p req's key; on a hit fills the result
 * with it. Returns SQLITE_ROW for a hit, SQLITE_DONE for none, or an error code. */
static int od_sqlite_find_live(od_sqlite_t *s, od_sqlite_req_t *req)
{
    od_idemidx_iter_t it;
    apr_int64_t row = 0;
    int rc = SQLITE_DONE;

    req->fp = od_idemidx_fingerprint(s->w.idx, req->order->caller, req->order->idem_key);
    od_idemidx_find(s->w.idx, req->fp, req->order->created_at, &it);
    while (rc == SQLITE_DONE && od_idemidx_next(s->w.idx, &it, &row)) {
        rc = od_sqlite_replay_row(s, req, row);
    }
    sqlite3_reset(s->w.row_get);
    return rc;
}

/* The outbox row of the order at @p row, in the order's own transaction: the event can never be
 * lost apart from it. Its envelope is not stored: od_sqlite_event_row renders it again from the
 * order (od_event_render of the same event id, document and time gives the same bytes). */
static int od_sqlite_insert_event(od_sqlite_t *s, const od_store_order_t *o, apr_int64_t row)
{
    sqlite3_stmt *st = s->w.outbox_put;

    if (o->event_id == NULL) {
        return SQLITE_DONE;
    }
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, row);
    od_sqlite_bind_text(st, 2, o->event_id, strlen(o->event_id));
    sqlite3_bind_int64(st, 3, o->event_due);
    return sqlite3_step(st);
}

/* Stores a new order and its event; sets @p *added_row to the order's row. */
static int od_sqlite_insert(od_sqlite_t *s, od_sqlite_req_t *req, apr_int64_t *added_row)
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
    apr_int64_t row = sqlite3_last_insert_rowid(w->db);
    if ((rc = od_sqlite_insert_event(s, o, row)) != SQLITE_DONE) {
        return rc;
    }
    req->result->outcome = OD_STORE_CREATED;
    req->result->order_id = o->order_id;
    req->result->body = o->body;
    req->result->body_len = o->body_len;
    req->result->created_at = o->created_at;
    req->result->event_seq = o->event_id != NULL ? row : 0;
    *added_row = row;
    return SQLITE_DONE;
}

/* Marks outbox events published (their rows go) or one due later. An event without a row (seq
 * 0: not read from this store) matches nothing and stays pending, to be published again. */
static int od_sqlite_outbox_update(od_sqlite_t *s, od_sqlite_req_t *req)
{
    sqlite3_stmt *st = req->kind == OD_SQLITE_PUBLISHED ? s->w.outbox_done : s->w.outbox_later;
    int rc = SQLITE_DONE;

    for (int i = 0; i < req->nevents && rc == SQLITE_DONE; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, req->event[i].seq);
        if (req->kind == OD_SQLITE_RESCHEDULE) {
            sqlite3_bind_int64(st, 2, req->due);
        }
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    return rc;
}

/* After some errors (SQLITE_FULL, I/O errors) SQLite rolls the whole transaction back by itself;
 * sqlite3_get_autocommit then says no transaction is active. */
static int od_sqlite_rolled_back(const od_sqlite_t *s)
{
    return sqlite3_get_autocommit(s->w.db);
}

/* A write of the batch failed; logged once, here. Its savepoint is undone, unless SQLite has
 * rolled back the whole transaction already: then there is no savepoint to undo (a ROLLBACK TO
 * would only fail, and log a second error), and od_sqlite_in_transaction fails the batch. */
static apr_status_t od_sqlite_apply_failed(od_sqlite_t *s, const od_sqlite_req_t *req)
{
    int gone = od_sqlite_rolled_back(s);

    od_log_error(s->log, "sqlite: writing %s failed on %s: %s%s",
                 req->kind == OD_SQLITE_PUT ? req->order->order_id : req->event[0].event_id,
                 s->path, sqlite3_errmsg(s->w.db),
                 gone ? "; SQLite rolled the batch back, the whole batch fails" : "");
    if (!gone) {
        od_sqlite_run(s, s->w.sp_rollback);
        od_sqlite_run(s, s->w.sp_release);
    }
    return OD_EUNAVAIL;
}

/* One write in its own savepoint, so a failure undoes that write alone. A new order enters the
 * idempotency index once its savepoint is released: later orders of the batch see it, and a
 * failed commit takes it out again (od_sqlite_commit_batch). */
static apr_status_t od_sqlite_apply(od_sqlite_t *s, od_sqlite_req_t *req)
{
    apr_int64_t row = 0;
    int rc;

    if (od_sqlite_run(s, s->w.sp_begin) != APR_SUCCESS) {
        return OD_EUNAVAIL;
    }
    if (req->kind != OD_SQLITE_PUT) {
        rc = od_sqlite_outbox_update(s, req);
    } else if ((rc = od_sqlite_find_live(s, req)) == SQLITE_DONE) {
        rc = od_sqlite_insert(s, req, &row);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return od_sqlite_apply_failed(s, req);
    }
    apr_status_t rv = od_sqlite_run(s, s->w.sp_release);
    /* Even if the release failed: the order stays in the batch's transaction, and the index must
     * follow whatever the commit stores (a failed commit takes the entry out again). */
    if (row != 0) {
        od_sqlite_remember(s, req->fp, row, req->order->expires_at);
        s->w.added++;
    }
    return rv;
}

/* Publishes the index's size for od_store_stats. */
static void od_sqlite_index_gauges(od_sqlite_t *s)
{
    apr_atomic_set64(&s->idx_entries, od_idemidx_count(s->w.idx));
    apr_atomic_set64(&s->idx_capacity, od_idemidx_capacity(s->w.idx));
}

/* Drops the index entries expired at @p now (see OD_SQLITE_IDEM_GRACE). */
static void od_sqlite_expire(od_sqlite_t *s, apr_time_t now)
{
    od_idemidx_expire(s->w.idx, now - OD_SQLITE_IDEM_GRACE);
}

/* Deletes the outbox rows of events marked published, in a savepoint of the batch's
 * transaction: a failure drops these marks alone, and their events, still pending, are
 * published again (at least once). */
static void od_sqlite_apply_marks(od_sqlite_t *s, const od_sqlite_marks_t *marks)
{
    sqlite3_stmt *st = s->w.outbox_done;
    int rc = SQLITE_DONE, n = 0;

    if (marks == NULL || od_sqlite_run(s, s->w.sp_begin) != APR_SUCCESS) {
        return;
    }
    for (const od_sqlite_marks_t *m = marks; m != NULL; m = m->next) {
        for (int i = 0; i < m->n && rc == SQLITE_DONE; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, m->rows[i]);
            rc = sqlite3_step(st);
        }
        n += m->n;
    }
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        od_sqlite_run(s, s->w.sp_release);
    } else if (od_sqlite_rolled_back(s)) {
        od_log_error(s->log,
                     "sqlite: sqlite3_step(DELETE FROM outbox) failed on %s: %s; SQLite rolled the"
                     " batch back, the whole batch fails",
                     s->path, sqlite3_errmsg(s->w.db));
        sqlite3_reset(st);
    } else {
        od_log_warn(s->log,
                    "sqlite: sqlite3_step(DELETE FROM outbox) failed on %s: %s; the %d published"
                    " mark(s) of this batch are dropped, their events will be published again",
                    s->path, sqlite3_errmsg(s->w.db), n);
        sqlite3_reset(st);
        od_sqlite_run(s, s->w.sp_rollback);
        od_sqlite_run(s, s->w.sp_release);
    }
}

/* APR_SUCCESS while the batch's transaction is open. When SQLite has rolled it back by itself
 * the batch's earlier orders are gone too, and the rest must not run one by one outside a
 * transaction. Not logged: the failure that ended it was, where it happened. */
static apr_status_t od_sqlite_in_transaction(od_sqlite_t *s)
{
    return od_sqlite_rolled_back(s) ? OD_EUNAVAIL : APR_SUCCESS;
}

/* No order of a failed batch exists for this process: neither may their index entries. With
 * @p unknown (see od_sqlite_commit_batch) the orders it wrote may still exist after a restart. */
static void od_sqlite_fail_batch(od_sqlite_t *s, od_sqlite_req_t *batch, int unknown)
{
    od_idemidx_drop_newest(s->w.idx, s->w.added);
    for (od_sqlite_req_t *r = batch; r != NULL; r = r->next) {
        int wrote = r->kind == OD_SQLITE_PUT && r->status == APR_SUCCESS &&
                    r->result->outcome == OD_STORE_CREATED;
        r->status = unknown && wrote ? OD_EUNKNOWN : OD_EUNAVAIL;
    }
}

/* One transaction: each queued write in its savepoint, then the published marks. */
static void od_sqlite_commit_batch(od_sqlite_t *s, od_sqlite_req_t *batch,
                                   const od_sqlite_marks_t *marks)
{
    apr_status_t rv = od_sqlite_run(s, s->w.begin);
    int unknown = 0;

    od_sqlite_expire(s, apr_time_now());
    s->w.added = 0;
    for (od_sqlite_req_t *r = batch; r != NULL && rv == APR_SUCCESS; r = r->next) {
        r->status = od_sqlite_apply(s, r);
        rv = od_sqlite_in_transaction(s);
    }
    if (rv == APR_SUCCESS) {
        od_sqlite_apply_marks(s, marks);
        rv = od_sqlite_in_transaction(s);
    }
    /* A failed COMMIT is logged by od_sqlite_run. After SQLITE_FULL or an I/O error SQLite has
     * rolled back already (a ROLLBACK would fail with "no transaction is active" and log a
     * second error for one failure); after SQLITE_BUSY the transaction is still open. */
    if (rv == APR_SUCCESS && (rv = od_sqlite_run(s, s->w.commit)) != APR_SUCCESS) {
        /* An I/O error in COMMIT (the WAL's fsync failed) leaves the batch rolled back for this
         * process, which overwrites its frames with the next commit; but those frames, with
         * their commit mark, may be in the file, and if the process stops before then, the next
         * open recovers them. So the orders are not known to be absent. Any other failure of
         * COMMIT happens before its commit frame is written whole. */
        unknown = (sqlite3_extended_errcode(s->w.db) & 0xff) == SQLITE_IOERR;
        if (!od_sqlite_rolled_back(s)) {
            od_sqlite_run(s, s->w.rollback);
        }
    }
    if (rv != APR_SUCCESS) {
        od_sqlite_fail_batch(s, batch, unknown);
    }
}

/* ---- the checkpointer ---- */

/* Runs on the writer thread after each commit, with the WAL's length in pages. It only wakes
 * the checkpointer, under a mutex nobody holds for long: no order waits for a checkpoint. */
static int od_sqlite_wal_hook(void *data, sqlite3 *db, const char *name, int pages)
{
    od_sqlite_t *s = data;
    od_sqlite_ckpt_t *c = &s->ckpt;

    if (pages < OD_SQLITE_CKPT_PAGES) {
        return SQLITE_OK;
    }
    apr_thread_mutex_lock(c->lock);
    if (pages < c->done) {
        c->done = 0; /* shorter than what was copied: the WAL has restarted */
    }
    if (!c->wanted && pages - c->done >= OD_SQLITE_CKPT_PAGES) {
        c->wanted = 1;
        apr_thread_cond_signal(c->work);
    }
    /* Stale if the WAL has restarted since. */
    s->w.catch_up |= c->restart && pages >= OD_SQLITE_CKPT_RESTART_PAGES;
    c->restart = 0;
    apr_thread_mutex_unlock(c->lock);
    return SQLITE_OK;
}

/* Copies what the checkpointer left of a long WAL, on the writer's connection between two
 * batches: with no commit running meanwhile it copies everything, so the next transaction
 * starts the WAL over. It costs the next batch a wait of about two fsyncs (the frames since the
 * checkpointer's last pass; 1-5 ms measured), once per OD_SQLITE_CKPT_RESTART_PAGES pages,
 * where the auto-checkpoint stalled a commit for a whole 1000-page copy every 1000 pages. */
static void od_sqlite_catch_up(od_sqlite_t *s)
{
    int log = -1, ckpt = -1;
    int rc = sqlite3_wal_checkpoint_v2(s->w.db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt);

    /* Busy: the checkpointer is copying just now; try again after the next batch. */
    s->w.catch_up = rc == SQLITE_BUSY;
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        od_log_warn(s->log, "sqlite: sqlite3_wal_checkpoint_v2 (writer) failed on %s: %s", s->path,
                    sqlite3_errmsg(s->w.db));
    }
}

/* One passive checkpoint: copies what it can without waiting for the writer or the readers, so
 * it never blocks them (in WAL mode). Returns SQLITE_OK with the WAL's length and the frames
 * copied, or another code (a failure is logged, at most once a minute). */
static int od_sqlite_checkpoint(od_sqlite_t *s, int *log, int *ckpt)
{
    od_sqlite_ckpt_t *c = &s->ckpt;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, log, ckpt);
    int warn = apr_time_now() - c->warned >= OD_SQLITE_CKPT_WARN_EVERY;

    if (rc != SQLITE_OK && rc != SQLITE_BUSY && warn) {
        od_log_warn(s->log, "sqlite: sqlite3_wal_checkpoint_v2 failed on %s: %s", s->path,
                    sqlite3_errmsg(c->db));
        c->warned = apr_time_now();
    } else if (rc == SQLITE_OK && *log > OD_SQLITE_CKPT_WARN_PAGES && warn) {
        od_log_warn(s->log,
                    "sqlite: the WAL of %s still holds %d pages after a checkpoint (%d copied):"
                    " it starts over only once readers leave their old snapshots",
                    s->path, *log, *ckpt);
        c->warned = apr_time_now();
    }
    return rc;
}

/* Waits until the writer wants a checkpoint or, when the last one left frames behind, for a
 * short pause. Called and returns with the lock held; returns 0 when it is time to end. */
static int od_sqlite_ckpt_wait(od_sqlite_ckpt_t *c, int left)
{
    if (left && !c->wanted && !c->stopping) {
        apr_thread_cond_timedwait(c->work, c->lock, OD_SQLITE_CKPT_RETRY);
    }
    while (!left && !c->wanted && !c->stopping) {
        apr_thread_cond_wait(c->work, c->lock);
    }
    return !c->stopping;
}

/* After a pass (lock held): records what it copied and, once the WAL is long, either passes
 * again at once or asks the writer to copy the rest. The writer's share is what was committed
 * since the last pass began, so passes repeat (each shorter) until one finds little new. */
static void od_sqlite_ckpt_passed(od_sqlite_ckpt_t *c, int log, int ckpt, int *repeats)
{
    int fresh = ckpt >= c->done ? ckpt - c->done : ckpt; /* less: the WAL had restarted */

    c->done = ckpt;
    if (log < OD_SQLITE_CKPT_RESTART_PAGES) {
        *repeats = 0;
    } else if (fresh <= OD_SQLITE_CKPT_TAIL_PAGES || *repeats >= OD_SQLITE_CKPT_REPEATS) {
        c->restart = 1;
        *repeats = 0;
    } else {
        c->wanted = 1;
        (*repeats)++;
    }
}

static void *APR_THREAD_FUNC od_sqlite_checkpointer(apr_thread_t *thread, void *data)
{
    od_sqlite_t *s = data;
    od_sqlite_ckpt_t *c = &s->ckpt;
    int left = 0, repeats = 0;

    apr_thread_mutex_lock(c->lock);
    while (od_sqlite_ckpt_wait(c, left)) {
        int log = -1, ckpt = -1;
        c->wanted = 0;
        apr_thread_mutex_unlock(c->lock);
        int rc = od_sqlite_checkpoint(s, &log, &ckpt);
        apr_thread_mutex_lock(c->lock);
        /* Frames left behind are tried again after a pause (see OD_SQLITE_CKPT_RETRY). */
        left = rc == SQLITE_OK && ckpt < log;
        if (rc == SQLITE_OK) {
            od_sqlite_ckpt_passed(c, log, ckpt, &repeats);
        }
    }
    apr_thread_mutex_unlock(c->lock);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* Opens the checkpointer's connection, starts its thread, then hooks it to the writer's commits. */
static apr_status_t od_sqlite_ckpt_start(od_sqlite_t *s, apr_pool_t *p)
{
    od_sqlite_ckpt_t *c = &s->ckpt;
    apr_status_t rv = od_sqlite_sync_create(s, &c->lock, &c->work, "checkpointer", p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = od_sqlite_open(s, &c->db, SQLITE_OPEN_READWRITE);
    if (rv == APR_SUCCESS) {
        rv = od_sqlite_exec(s, c->db, "PRAGMA synchronous=FULL");
    }
    if (rv == APR_SUCCESS) {
        rv = apr_thread_create(&c->thread, NULL, od_sqlite_checkpointer, s, p);
        if (rv != APR_SUCCESS) {
            c->thread = NULL;
            od_log_error(s->log, "sqlite: apr_thread_create (checkpointer) failed: %d", rv);
        }
    }
    if (rv == APR_SUCCESS) {
        sqlite3_wal_hook(s->w.db, od_sqlite_wal_hook, s);
    }
    return rv;
}

/* Stops the checkpointer and closes its connection. Idempotent; safe on a partial start. */
static void od_sqlite_ckpt_stop(od_sqlite_t *s)
{
    od_sqlite_ckpt_t *c = &s->ckpt;
    apr_status_t trv = APR_SUCCESS;

    if (c->thread != NULL) {
        apr_thread_mutex_lock(c->lock);
        c->stopping = 1;
        apr_thread_cond_signal(c->work);
        apr_thread_mutex_unlock(c->lock);
        apr_thread_join(&trv, c->thread);
        c->thread = NULL;
    }
    if (s->w.db != NULL) {
        sqlite3_wal_hook(s->w.db, NULL, NULL);
    }
    sqlite3_close(c->db);
    c->db = NULL;
}

/* ---- the writer thread ---- */

static void od_sqlite_marks_free(od_sqlite_marks_t *marks)
{
    while (marks != NULL) {
        od_sqlite_marks_t *next = marks->next;
        free(marks);
        marks = next;
    }
}

/* Detaches up to batch_max queued requests (NULL if none). Called with the lock held. */
static od_sqlite_req_t *od_sqlite_take(od_sqlite_t *s)
{
    od_sqlite_req_t *batch = s->head, *last = s->head;

    if (batch == NULL) {
        return NULL;
    }
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

/* Detaches every queued mark. Called with the lock held. */
static od_sqlite_marks_t *od_sqlite_take_marks(od_sqlite_t *s)
{
    od_sqlite_marks_t *marks = s->marks;

    s->marks = NULL;
    s->marks_queued = 0;
    return marks;
}

/* Waits for work; after an idle second, drops expired index entries outside the lock (the index
 * is the writer's alone, and HTTP threads queue under that lock without waiting). Called and
 * returns with the lock held; returns 0 when it is time to end: stopping, and the queue and the
 * marks drained. */
static int od_sqlite_wait(od_sqlite_t *s)
{
    while (s->head == NULL && s->marks == NULL && !s->stopping) {
        s->idle = 1;
        apr_status_t rv = apr_thread_cond_timedwait(s->work, s->lock, OD_SQLITE_IDLE_EXPIRE_EVERY);
        s->idle = 0;
        if (APR_STATUS_IS_TIMEUP(rv)) {
            apr_thread_mutex_unlock(s->lock);
            od_sqlite_expire(s, apr_time_now());
            od_sqlite_index_gauges(s);
            apr_thread_mutex_lock(s->lock);
        }
    }
    return s->head != NULL || s->marks != NULL || !s->stopping;
}

/* Wakes the waiting callers of a committed batch and returns its asynchronous requests, linked
 * through next. Called without the lock; returns without it. */
static od_sqlite_req_t *od_sqlite_wake(od_sqlite_t *s, od_sqlite_req_t *batch)
{
    od_sqlite_req_t *async = NULL, **tail = &async;

    apr_thread_mutex_lock(s->lock);
    for (od_sqlite_req_t *r = batch; r != NULL;) {
        od_sqlite_req_t *next = r->next; /* a waiter's r may be gone once done is seen */
        if (r->done_fn != NULL) {
            *tail = r;
            tail = &r->next;
        } else {
            r->done = 1;
            apr_thread_cond_signal(r->wake);
        }
        r = next;
    }
    *tail = NULL;
    apr_thread_mutex_unlock(s->lock);
    return async;
}

/* Completes asynchronous requests outside the lock: a completion answers its HTTP request,
 * after which the request (and r, in its pool) may be gone. */
static void od_sqlite_complete(od_sqlite_req_t *async)
{
    while (async != NULL) {
        od_sqlite_req_t *r = async;
        async = r->next;
        r->done_fn(r->baton, r->status);
    }
}

static void *APR_THREAD_FUNC od_sqlite_writer(apr_thread_t *thread, void *data)
{
    od_sqlite_t *s = data;

    apr_thread_mutex_lock(s->lock);
    while (od_sqlite_wait(s)) {
        od_sqlite_req_t *batch = od_sqlite_take(s);
        od_sqlite_marks_t *marks = od_sqlite_take_marks(s);
        apr_thread_mutex_unlock(s->lock);
        od_sqlite_commit_batch(s, batch, marks);
        od_sqlite_marks_free(marks);
        /* Before the answers: a client that has its 201 finds its order counted in /metrics. */
        od_sqlite_index_gauges(s);
        od_sqlite_complete(od_sqlite_wake(s, batch));
        if (s->w.catch_up) {
            od_sqlite_catch_up(s);
        }
        apr_thread_mutex_lock(s->lock);
    }
    apr_thread_mutex_unlock(s->lock);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* ---- the store interface ---- */

/* Appends @p req to the writer's queue; 0 when stopping (nothing queued). Called with the lock
 * held. */
static int od_sqlite_enqueue(od_sqlite_t *s, od_sqlite_req_t *req)
{
    if (s->stopping) {
        return 0;
    }
    if (s->tail != NULL) {
        s->tail->next = req;
    } else {
        s->head = req;
    }
    s->tail = req;
    /* A busy writer looks at the queue before it waits again: only an idle one needs waking
     * (a signal per order cost a futex call each). */
    if (s->idle) {
        apr_thread_cond_signal(s->work);
    }
    return 1;
}

/* Queues a write for the writer thread and waits until its batch is committed. */
static apr_status_t od_sqlite_submit(od_sqlite_t *s, od_sqlite_req_t *req)
{
    /* In the caller's pool, which only the caller uses: gone with it. */
    if (apr_thread_cond_create(&req->wake, req->pool) != APR_SUCCESS) {
        od_log_error(s->log, "sqlite: apr_thread_cond_create failed");
        return OD_EUNAVAIL;
    }
    apr_thread_mutex_lock(s->lock);
    if (!od_sqlite_enqueue(s, req)) {
        apr_thread_mutex_unlock(s->lock);
        return OD_ESHUTDOWN;
    }
    while (!req->done) {
        apr_thread_cond_wait(req->wake, s->lock);
    }
    apr_thread_mutex_unlock(s->lock);
    return req->status;
}

static apr_status_t od_sqlite_put(void *impl, const od_store_order_t *order,
                                  od_store_result_t *result, apr_pool_t *p)
{
    od_sqlite_req_t req = {.kind = OD_SQLITE_PUT, .order = order, .result = result, .pool = p};
    return od_sqlite_submit(impl, &req);
}

/* The request lives in the caller's pool, which stays alive until done_fn has run. */
static void od_sqlite_put_async(void *impl, const od_store_order_t *order,
                                od_store_result_t *result, od_store_done_fn done, void *baton,
                                apr_pool_t *p)
{
    od_sqlite_t *s = impl;
    od_sqlite_req_t *req = apr_pcalloc(p, sizeof(*req));

    req->kind = OD_SQLITE_PUT;
    req->order = order;
    req->result = result;
    req->pool = p;
    req->done_fn = done;
    req->baton = baton;
    apr_thread_mutex_lock(s->lock);
    int queued = od_sqlite_enqueue(s, req);
    apr_thread_mutex_unlock(s->lock);
    if (!queued) {
        done(baton, OD_ESHUTDOWN);
    }
}

/* Copies the outbox rows of @p events into one malloc'd block; NULL if out of memory. */
static od_sqlite_marks_t *od_sqlite_marks_copy(const od_store_event_t *events, int n)
{
    od_sqlite_marks_t *m = malloc(sizeof(od_sqlite_marks_t) + sizeof(apr_int64_t) * (apr_size_t) n);

    if (m == NULL) {
        return NULL;
    }
    m->next = NULL;
    m->n = n;
    for (int i = 0; i < n; i++) {
        m->rows[i] = events[i].seq; /* 0 (not from this store) matches no row */
    }
    return m;
}

/* Queues the marks for the writer's next commit and returns at once: a mark costs no commit of
 * its own, and a mark lost to a crash only means the event is published again. */
static apr_status_t od_sqlite_published(void *impl, const od_store_event_t *events, int n,
                                        apr_pool_t *p)
{
    od_sqlite_t *s = impl;
    int queued = 0;

    if (n <= 0) {
        return APR_SUCCESS;
    }
    od_sqlite_marks_t *m = od_sqlite_marks_copy(events, n);
    if (m == NULL) {
        od_log_error(s->log, "sqlite: malloc (%d published marks) failed; the events stay pending",
                     n);
        return OD_EUNAVAIL;
    }
    apr_thread_mutex_lock(s->lock);
    if (!s->stopping && s->marks_queued < OD_SQLITE_MARKS_MAX) {
        m->next = s->marks;
        s->marks = m;
        s->marks_queued += n;
        queued = 1;
        if (s->idle) {
            apr_thread_cond_signal(s->work);
        }
    }
    apr_thread_mutex_unlock(s->lock);
    if (queued) {
        return APR_SUCCESS;
    }
    /* Too many waiting (or stopping, which submit answers): wait for a commit like a put. */
    free(m);
    od_sqlite_req_t req = {.kind = OD_SQLITE_PUBLISHED, .event = events, .nevents = n, .pool = p};
    return od_sqlite_submit(s, &req);
}

static apr_status_t od_sqlite_reschedule(void *impl, const od_store_event_t *event, apr_time_t due,
                                         apr_pool_t *p)
{
    od_sqlite_req_t req = {
        .kind = OD_SQLITE_RESCHEDULE, .event = event, .nevents = 1, .due = due, .pool = p};
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
        result->event_seq = 0;
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

/* One pending event (order_row, event_id, order_id, body, created_at, attempts, due_at), its
 * envelope rendered from the order as the API rendered it when the order was accepted. */
static void od_sqlite_event_row(sqlite3_stmt *st, apr_array_header_t *events, apr_pool_t *p)
{
    od_store_event_t *e = apr_array_push(events);

    e->seq = sqlite3_column_int64(st, 0);
    e->event_id = apr_pstrdup(p, (const char *) sqlite3_column_text(st, 1));
    e->order_id = apr_pstrdup(p, (const char *) sqlite3_column_text(st, 2));
    e->created_at = sqlite3_column_int64(st, 4);
    e->event = od_event_render(e->event_id, (const char *) sqlite3_column_text(st, 3),
                               e->created_at, &e->event_len, p);
    e->attempts = sqlite3_column_int(st, 5);
    e->due = sqlite3_column_int64(st, 6);
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

/* The count scans the smallest index of the outbox (outbox_due); the oldest is the order of the
 * outbox's lowest row: orders are inserted, and get their rows, in the order they were accepted
 * (to within the moment two requests reach the writer's queue), and are never deleted. */
static apr_status_t od_sqlite_backlog(void *impl, volatile apr_uint32_t *stop, apr_size_t *count,
                                      apr_time_t *oldest, apr_pool_t *p)
{
    od_sqlite_t *s = impl;
    void *res = NULL;

    (void) stop; /* one statement, over an index of a few bytes per event */
    (void) p;
    if (apr_reslist_acquire(s->readers, &res) != APR_SUCCESS) {
        od_log_error(s->log, "sqlite: apr_reslist_acquire (read connection) failed");
        return OD_EUNAVAIL;
    }
    od_sqlite_reader_t *r = res;
    int rc = sqlite3_step(r->backlog);
    if (rc == SQLITE_ROW) {
        *count = (apr_size_t) sqlite3_column_int64(r->backlog, 0);
        *oldest = sqlite3_column_int64(r->backlog, 1); /* NULL (no event) reads as 0 */
    }
    sqlite3_reset(r->backlog);
    if (rc != SQLITE_ROW) {
        od_sqlite_fail(s, r->db, "sqlite3_step(outbox backlog)");
        apr_reslist_invalidate(s->readers, res);
        return OD_EUNAVAIL;
    }
    apr_reslist_release(s->readers, res);
    return APR_SUCCESS;
}

static void od_sqlite_stats(void *impl, od_store_stats_t *out)
{
    od_sqlite_t *s = impl;

    out->has_index = 1;
    out->index_entries = (apr_size_t) apr_atomic_read64(&s->idx_entries);
    out->index_capacity = (apr_size_t) apr_atomic_read64(&s->idx_capacity);
}

static const od_store_ops_t od_sqlite_ops = {.name = "sqlite",
                                             .stats = od_sqlite_stats,
                                             .put = od_sqlite_put,
                                             .get = od_sqlite_get,
                                             .pending = od_sqlite_pending,
                                             .published = od_sqlite_published,
                                             .reschedule = od_sqlite_reschedule,
                                             .put_async = od_sqlite_put_async,
                                             .backlog = od_sqlite_backlog};

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
                               "SELECT outbox.order_row, outbox.event_id, orders.order_id,"
                               " orders.body, orders.created_at, outbox.attempts,"
                               " outbox.due_at"
                               " FROM outbox JOIN orders ON orders.rowid = outbox.order_row"
                               " WHERE outbox.due_at <= ?1 ORDER BY outbox.due_at LIMIT ?2");
    }
    if (rv == APR_SUCCESS) {
        rv = od_sqlite_prepare(s, r->db, &r->backlog,
                               "SELECT (SELECT count(*) FROM outbox), (SELECT created_at FROM"
                               " orders WHERE rowid = (SELECT min(order_row) FROM outbox))");
    }
    if (rv != APR_SUCCESS) {
        sqlite3_finalize(r->get);
        sqlite3_finalize(r->pending);
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
    sqlite3_finalize(r->backlog);
    sqlite3_close(r->db);
    return APR_SUCCESS;
}

/* Stops the writer after it has drained the queue and applied the marks, then the
 * checkpointer, then closes the connections. Registered as a pre-cleanup: APR destroys subpools
 * (the threads' among them) and runs the mutexes' own cleanups before ordinary cleanups, and the
 * threads must be gone before either. Idempotent and safe on a partly built store, so creation
 * undoes itself by calling it. */
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
    od_sqlite_ckpt_stop(s);
    if (s->readers != NULL) {
        apr_reslist_destroy(s->readers);
        s->readers = NULL;
    }
    od_sqlite_writer_close(&s->w);
    od_sqlite_marks_free(s->marks); /* none: the writer applied them, or never started */
    s->marks = NULL;
    if (s->lock_file != NULL) {
        apr_file_close(s->lock_file); /* last: the database is closed */
        s->lock_file = NULL;
    }
    return APR_SUCCESS;
}

/* Takes the store's lock file, beside the database: the in-memory idempotency index is right only
 * while this process alone writes the file. A POSIX lock (apr_file_lock), so it goes with the
 * process, however it ends; the file itself stays. */
static apr_status_t od_sqlite_lock(od_sqlite_t *s, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, s->path, ".lock", NULL);
    char buf[256];
    apr_status_t rv = apr_file_open(&s->lock_file, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE,
                                    APR_FPROT_OS_DEFAULT, p);

    if (rv != APR_SUCCESS) {
        s->lock_file = NULL;
        od_log_error(s->log, "sqlite: apr_file_open(%s) failed: %s", path,
                     apr_strerror(rv, buf, sizeof(buf)));
        return OD_EUNAVAIL;
    }
    rv = apr_file_lock(s->lock_file, APR_FLOCK_EXCLUSIVE | APR_FLOCK_NONBLOCK);
    if (rv != APR_SUCCESS) {
        od_log_error(s->log,
                     "sqlite: %s is in use by another process (apr_file_lock(%s) failed: %s);"
                     " one orderd at a time may use an SQLite store",
                     s->path, path, apr_strerror(rv, buf, sizeof(buf)));
        apr_file_close(s->lock_file);
        s->lock_file = NULL;
        return OD_EUNAVAIL;
    }
    return APR_SUCCESS;
}

/* Where rebuilding starts: reading the orders newest first, the oldest row before the first one
 * created OD_SQLITE_IDEM_SLACK before @p since. Sets @p *first to 0 if there is none. */
static apr_status_t od_sqlite_rebuild_from(od_sqlite_t *s, apr_time_t since, apr_int64_t *first)
{
    sqlite3_stmt *st = NULL;
    apr_status_t rv = od_sqlite_prepare(s, s->w.db, &st,
                                        "SELECT rowid, created_at FROM orders ORDER BY rowid DESC");
    int rc = SQLITE_DONE;

    *first = 0;
    while (rv == APR_SUCCESS && (rc = sqlite3_step(st)) == SQLITE_ROW &&
           sqlite3_column_int64(st, 1) >= since - OD_SQLITE_IDEM_SLACK) {
        *first = sqlite3_column_int64(st, 0);
    }
    if (rv == APR_SUCCESS && rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rv = od_sqlite_fail(s, s->w.db, "sqlite3_step(orders, newest first)");
    }
    sqlite3_finalize(st);
    return rv;
}

/* Adds the order row (rowid, caller, idem_key, created_at) at @p st to the index if its window
 * is still open at @p now. */
static void od_sqlite_restore(od_sqlite_t *s, sqlite3_stmt *st, apr_time_t now)
{
    apr_time_t expires_at = sqlite3_column_int64(st, 3) + s->ttl;

    if (expires_at > now - OD_SQLITE_IDEM_GRACE) {
        const char *caller = (const char *) sqlite3_column_text(st, 1);
        const char *idem_key = (const char *) sqlite3_column_text(st, 2);
        od_sqlite_remember(s, od_idemidx_fingerprint(s->w.idx, caller, idem_key),
                           sqlite3_column_int64(st, 0), expires_at);
    }
}

/* Fills the idempotency index with the orders whose window is still open, oldest first. */
static apr_status_t od_sqlite_rebuild(od_sqlite_t *s)
{
    apr_time_t now = apr_time_now();
    apr_int64_t first = 0;
    sqlite3_stmt *st = NULL;
    apr_status_t rv = od_sqlite_rebuild_from(s, now - s->ttl, &first);
    int rc = SQLITE_DONE;

    if (rv != APR_SUCCESS || first == 0) {
        return rv;
    }
    rv = od_sqlite_prepare(s, s->w.db, &st,
                           "SELECT rowid, caller, idem_key, created_at FROM orders"
                           " WHERE rowid >= ?1 ORDER BY rowid");
    if (rv == APR_SUCCESS) {
        sqlite3_bind_int64(st, 1, first);
    }
    while (rv == APR_SUCCESS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        od_sqlite_restore(s, st, now);
    }
    if (rv == APR_SUCCESS && rc != SQLITE_DONE) {
        rv = od_sqlite_fail(s, s->w.db, "sqlite3_step(orders of the idempotency window)");
    }
    sqlite3_finalize(st);
    od_log_info(s->log, "sqlite: %" APR_SIZE_T_FMT " idempotency records restored from %s",
                od_idemidx_count(s->w.idx), s->path);
    return rv;
}

static apr_status_t od_sqlite_start(od_sqlite_t *s, int readers, apr_pool_t *p)
{
    apr_status_t rv = od_sqlite_lock(s, p);

    if (rv == APR_SUCCESS) {
        rv = od_sqlite_writer_open(s);
    }
    if (rv == APR_SUCCESS) {
        rv = od_idemidx_create(&s->w.idx, OD_SQLITE_IDEM_CAPACITY, p);
        if (rv != APR_SUCCESS) {
            od_log_error(s->log, "sqlite: od_idemidx_create failed: %d", rv);
            rv = OD_EUNAVAIL;
        }
    }
    if (rv == APR_SUCCESS) {
        rv = od_sqlite_rebuild(s);
        od_sqlite_index_gauges(s);
    }
    if (rv == APR_SUCCESS) {
        rv = od_sqlite_sync_create(s, &s->lock, &s->work, "writer", p);
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
        rv = od_sqlite_ckpt_start(s, p);
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
                              apr_interval_time_t ttl, od_log_t *log, apr_pool_t *p)
{
    od_sqlite_t *s = apr_pcalloc(p, sizeof(*s));

    *out = NULL;
    s->path = apr_pstrdup(p, path);
    s->ttl = ttl;
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
