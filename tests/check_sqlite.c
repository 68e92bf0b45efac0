/* Tests of od_sqlite: the atomic put-unless-duplicate, TTL at check time, concurrency,
 * durability across reopen (the idempotency index rebuilt for the window), failure to open, one
 * process per file, files of older and newer schema versions, the background checkpointer, and
 * published marks applied in later commits. */
#include "od_event.h"
#include "od_sqlite.h"
#include "od_status.h"
#include "od_suites.h"

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TTL apr_time_from_sec(15)

static apr_pool_t *pool;
static od_log_t *log_;
static char dir[64];
/* Test times are anchored at the real clock: the store drops idempotency records that expired
 * by the real clock, and rebuilds them on open for the window before the real now. */
static apr_time_t t0;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    od_log_create(&log_, OD_LOG_WARN, stderr, pool);
    t0 = apr_time_now();
    strcpy(dir, "/tmp/od-sqlite-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static od_store_t *open_store(apr_pool_t *p)
{
    od_store_t *s = NULL;
    ck_assert_int_eq(od_sqlite_create(&s, apr_pstrcat(p, dir, "/o.db", NULL), 4, 64, TTL, log_, p),
                     APR_SUCCESS);
    return s;
}

static od_store_order_t order(const char *caller, const char *key, const char *id, apr_time_t at)
{
    const char *body = apr_psprintf(pool, "{\"order_id\":\"%s\"}", id);
    od_store_order_t o = {.caller = caller,
                          .idem_key = key,
                          .order_id = id,
                          .body = body,
                          .body_len = strlen(body),
                          .created_at = at,
                          .expires_at = at + TTL};
    return o;
}

static od_store_order_t order_with_event(const char *key, const char *id, const char *event_id)
{
    od_store_order_t o = order("c1", key, id, t0);
    o.event_id = event_id;
    o.event = od_event_render(event_id, o.body, o.created_at, &o.event_len, pool);
    o.event_due = t0;
    return o;
}

static const char *db_path(void)
{
    return apr_pstrcat(pool, dir, "/o.db", NULL);
}

/* Runs @p sql on a connection of the test's own. */
static void sql_exec(const char *sql)
{
    sqlite3 *db = NULL;
    char *err = NULL;

    ck_assert_int_eq(sqlite3_open(db_path(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err != NULL ? err : "?");
    sqlite3_close(db);
}

/* The first column of the first row of @p sql, as text ("" if no row). */
static const char *sql_text(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const char *out = "";

    ck_assert_int_eq(sqlite3_open(db_path(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL) {
        out = apr_pstrdup(pool, (const char *) sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

/* Points the test's log (and the stores opened after it) at a fresh file; returns it. */
static FILE *log_to_file(void)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(od_log_create(&log_, OD_LOG_WARN, f, pool), APR_SUCCESS);
    return f;
}

/* The number of error lines logged to @p f. None may be the follow-up of a failed batch: a
 * ROLLBACK or RELEASE of what SQLite had already rolled back by itself. */
static int batch_errors(FILE *f)
{
    char line[8192];
    int n = 0;

    fflush(f);
    rewind(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "\"level\":\"error\"") == NULL) {
            continue;
        }
        ck_assert_msg(strstr(line, "ROLLBACK") == NULL && strstr(line, "RELEASE") == NULL &&
                          strstr(line, "no transaction is active") == NULL &&
                          strstr(line, "no such savepoint") == NULL,
                      "a failed batch logged a follow-up: %s", line);
        n++;
    }
    fseek(f, 0, SEEK_END);
    return n;
}

static apr_array_header_t *pending(od_store_t *s)
{
    apr_array_header_t *events = NULL;
    ck_assert_int_eq(od_store_pending(s, t0 + apr_time_from_sec(3600), 100, &events, pool),
                     APR_SUCCESS);
    return events;
}

START_TEST(test_sqlite_put_then_replay)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    od_store_order_t a = order("c1", "k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", t0);
    od_store_order_t b = order("c1", "k1", "01BBBBBBBBBBBBBBBBBBBBBBBB", t0 + TTL - 1);

    ck_assert_int_eq(od_store_put(s, &a, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_CREATED);
    ck_assert_str_eq(r.order_id, a.order_id);
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_REPLAYED);
    ck_assert_str_eq(r.order_id, a.order_id);
    ck_assert_str_eq(r.body, a.body);
    ck_assert_uint_eq(r.body_len, a.body_len);
    ck_assert_int_eq(r.created_at, a.created_at);
    ck_assert_str_eq(od_store_name(s), "sqlite");
}
END_TEST

START_TEST(test_sqlite_ttl_enforced_at_check_time)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    od_store_order_t a = order("c1", "k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", t0);
    od_store_order_t b = order("c1", "k1", "01BBBBBBBBBBBBBBBBBBBBBBBB", t0 + TTL);
    od_store_order_t c = order("c1", "k1", "01CCCCCCCCCCCCCCCCCCCCCCCC", t0 + TTL + 5);

    ck_assert_int_eq(od_store_put(s, &a, &r, pool), APR_SUCCESS);
    /* Exactly at expiry the window is closed: a new order. */
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_CREATED);
    ck_assert_str_eq(r.order_id, b.order_id);
    /* ... whose own window now answers replays. */
    ck_assert_int_eq(od_store_put(s, &c, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_REPLAYED);
    ck_assert_str_eq(r.order_id, b.order_id);
    /* Both orders stay readable. */
    ck_assert_int_eq(od_store_get(s, "c1", a.order_id, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(od_store_get(s, "c1", b.order_id, &r, pool), APR_SUCCESS);
}
END_TEST

START_TEST(test_sqlite_callers_are_scoped)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    od_store_order_t a = order("c1", "k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", t0);
    od_store_order_t b = order("c2", "k1", "01BBBBBBBBBBBBBBBBBBBBBBBB", t0);

    ck_assert_int_eq(od_store_put(s, &a, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_CREATED);
    ck_assert_int_eq(od_store_get(s, "c2", a.order_id, &r, pool), OD_ENOTFOUND);
    ck_assert_int_eq(od_store_get(s, "c1", a.order_id, &r, pool), APR_SUCCESS);
    ck_assert_str_eq(r.body, a.body);
    ck_assert_int_eq(od_store_get(s, "c1", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", &r, pool), OD_ENOTFOUND);
}
END_TEST

START_TEST(test_sqlite_durable_across_reopen)
{
    apr_pool_t *p1 = NULL;
    od_store_result_t r;
    od_store_order_t a = order("c1", "k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", apr_time_now());

    apr_pool_create(&p1, pool);
    ck_assert_int_eq(od_store_put(open_store(p1), &a, &r, pool), APR_SUCCESS);
    apr_pool_destroy(p1);
    od_store_t *s = open_store(pool);
    ck_assert_int_eq(od_store_get(s, "c1", a.order_id, &r, pool), APR_SUCCESS);
    ck_assert_str_eq(r.body, a.body);
    /* The idempotency record survived too. */
    od_store_order_t b = order("c1", "k1", "01BBBBBBBBBBBBBBBBBBBBBBBB", a.created_at + 1);
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_REPLAYED);
}
END_TEST

START_TEST(test_sqlite_open_failure_is_a_value)
{
    od_store_t *s = (od_store_t *) 1;

    ck_assert_int_eq(od_sqlite_create(&s, "/nonexistent-dir/x/o.db", 2, 8, TTL, log_, pool),
                     OD_EUNAVAIL);
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(test_sqlite_reopen_restores_only_live_records)
{
    apr_pool_t *p1 = NULL;
    od_store_result_t r;
    apr_time_t now = apr_time_now();
    od_store_order_t old =
        order("c1", "k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", now - TTL - apr_time_from_sec(2));
    od_store_order_t live = order("c1", "k2", "01BBBBBBBBBBBBBBBBBBBBBBBB", now);

    apr_pool_create(&p1, pool);
    od_store_t *s1 = open_store(p1);
    ck_assert_int_eq(od_store_put(s1, &old, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(od_store_put(s1, &live, &r, pool), APR_SUCCESS);
    apr_pool_destroy(p1);

    od_store_t *s = open_store(pool);
    od_store_order_t again_old = order("c1", "k1", "01CCCCCCCCCCCCCCCCCCCCCCCC", now + 1);
    od_store_order_t again_live = order("c1", "k2", "01DDDDDDDDDDDDDDDDDDDDDDDD", now + 1);
    ck_assert_int_eq(od_store_put(s, &again_old, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_CREATED);
    ck_assert_int_eq(od_store_put(s, &again_live, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_REPLAYED);
    ck_assert_str_eq(r.order_id, live.order_id);
    /* The expired one stays readable: only its idempotency record is gone. */
    ck_assert_int_eq(od_store_get(s, "c1", old.order_id, &r, pool), APR_SUCCESS);
}
END_TEST

START_TEST(test_sqlite_failed_order_leaves_no_record)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    od_store_order_t a =
        order_with_event("k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", "01EAAAAAAAAAAAAAAAAAAAAAAA");
    /* Its order id is taken: its insert fails inside the order's savepoint. */
    od_store_order_t b =
        order_with_event("k2", "01AAAAAAAAAAAAAAAAAAAAAAAA", "01EBBBBBBBBBBBBBBBBBBBBBBB");
    od_store_order_t c =
        order_with_event("k2", "01CCCCCCCCCCCCCCCCCCCCCCCC", "01ECCCCCCCCCCCCCCCCCCCCCCC");

    ck_assert_int_eq(od_store_put(s, &a, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), OD_EUNAVAIL);
    ck_assert_int_eq(pending(s)->nelts, 1); /* a's event alone */
    /* The same key again is a new order, not a replay of the one that failed. */
    ck_assert_int_eq(od_store_put(s, &c, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_CREATED);
    ck_assert_str_eq(r.order_id, c.order_id);
}
END_TEST

START_TEST(test_sqlite_second_process_refused)
{
    od_store_t *s = open_store(pool);
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        apr_pool_t *cp = NULL;
        od_store_t *other = NULL;
        apr_pool_create(&cp, NULL);
        _exit(od_sqlite_create(&other, db_path(), 1, 1, TTL, log_, cp) == OD_EUNAVAIL &&
                      other == NULL
                  ? 0
                  : 1);
    }
    int status = -1;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_ptr_nonnull(s);
}
END_TEST

/* ---- a COMMIT whose fsync fails ---- */

/* The default VFS with one change: once armed, the next sync of a WAL file by the connection
 * that last wrote a frame to it (not the 32-byte header) fails, as fsync can on a failing disk
 * after the bytes went to the file. Installed as the default VFS, in a child process only. */
static sqlite3_vfs *real_vfs;
static sqlite3_vfs faulty_vfs;
static pthread_mutex_t faulty_lock = PTHREAD_MUTEX_INITIALIZER;
static const sqlite3_io_methods *real_wal_io; /* set once, under faulty_lock */
static sqlite3_io_methods faulty_wal_io;      /* likewise */
static _Atomic(sqlite3_file *) frame_writer;
static atomic_int fail_frame_sync;

static int faulty_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 offset)
{
    atomic_store(&frame_writer, offset >= 32 ? f : NULL);
    return real_wal_io->xWrite(f, data, n, offset);
}

static int faulty_sync(sqlite3_file *f, int flags)
{
    if (atomic_load(&frame_writer) == f && atomic_exchange(&fail_frame_sync, 0)) {
        return SQLITE_IOERR_FSYNC;
    }
    return real_wal_io->xSync(f, flags);
}

static int faulty_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    int rc = real_vfs->xOpen(real_vfs, name, f, flags, out);

    if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL) != 0 && f->pMethods != NULL) {
        pthread_mutex_lock(&faulty_lock);
        if (real_wal_io == NULL) {
            real_wal_io = f->pMethods;
            faulty_wal_io = *f->pMethods;
            faulty_wal_io.xWrite = faulty_write;
            faulty_wal_io.xSync = faulty_sync;
        }
        f->pMethods = &faulty_wal_io;
        pthread_mutex_unlock(&faulty_lock);
    }
    return rc;
}

/* In the child: stores @p o with the commit's fsync failing. Exits 0 if the put said
 * OD_EUNKNOWN; 3 if the fault never fired, 4 for OD_EUNAVAIL, 5 for anything else. */
static void put_with_failing_sync(const od_store_order_t *o)
{
    apr_pool_t *cp = NULL;
    od_store_t *s = NULL;
    od_store_result_t r;

    real_vfs = sqlite3_vfs_find(NULL);
    faulty_vfs = *real_vfs;
    faulty_vfs.zName = "od-faulty-sync";
    faulty_vfs.xOpen = faulty_open;
    apr_pool_create(&cp, NULL);
    if (sqlite3_vfs_register(&faulty_vfs, 1) != SQLITE_OK ||
        od_sqlite_create(&s, db_path(), 1, 1, TTL, log_, cp) != APR_SUCCESS) {
        _exit(2);
    }
    atomic_store(&fail_frame_sync, 1);
    apr_status_t rv = od_store_put(s, o, &r, cp);
    /* No cleanup: the process stops as a crash would, before any later commit. */
    _exit(atomic_load(&fail_frame_sync) ? 3 : rv == OD_EUNKNOWN ? 0 : rv == OD_EUNAVAIL ? 4 : 5);
}

/*
 * The WAL's fsync fails in the COMMIT of a new order: SQLite reports an I/O error and rolls the
 * batch back, yet the frames it wrote are in the file with their commit mark. The process then
 * stops before its next commit, and the next open recovers the order. So the put must not say
 * that nothing was stored: OD_EUNKNOWN, not OD_EUNAVAIL. The same order again is its replay.
 */
START_TEST(test_sqlite_failed_commit_sync_outcome_unknown)
{
    od_store_order_t o =
        order_with_event("k-sync", "01SSSSSSSSSSSSSSSSSSSSSSSS", "01TTTTTTTTTTTTTTTTTTTTTTTT");
    od_store_order_t again =
        order_with_event("k-sync", "01VVVVVVVVVVVVVVVVVVVVVVVV", "01WWWWWWWWWWWWWWWWWWWWWWWW");
    od_store_result_t r;
    int status = -1;
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        put_with_failing_sync(&o);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child: wait status %d", status);
    ck_assert_int_eq(WEXITSTATUS(status), 0); /* 4: the put said OD_EUNAVAIL */
    od_store_t *s = open_store(pool);
    ck_assert_int_eq(od_store_get(s, "c1", o.order_id, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(od_store_put(s, &again, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_REPLAYED);
    ck_assert_str_eq(r.order_id, o.order_id);
}
END_TEST

/* ---- concurrency ---- */

#define THREADS 8
#define PER_THREAD 50

typedef struct worker_t {
    od_store_t *store;
    int index;
    int same_key; /* all threads race on one key */
    int created;
    int replayed;
    int failed;
    char first_id[32];
} worker_t;

static void *APR_THREAD_FUNC put_many(apr_thread_t *t, void *data)
{
    worker_t *w = data;
    apr_pool_t *p = NULL;

    apr_pool_create(&p, NULL);
    for (int i = 0; i < PER_THREAD; i++) {
        const char *key = w->same_key ? "same" : apr_psprintf(p, "k-%d-%d", w->index, i);
        const char *id = apr_psprintf(p, "01%02d%022d", w->index, i);
        od_store_order_t o = {.caller = "c",
                              .idem_key = key,
                              .order_id = id,
                              .body = id,
                              .body_len = strlen(id),
                              .created_at = apr_time_now(),
                              .expires_at = apr_time_now() + TTL};
        od_store_result_t r;
        if (od_store_put(w->store, &o, &r, p) != APR_SUCCESS) {
            w->failed++;
            continue;
        }
        r.outcome == OD_STORE_CREATED ? w->created++ : w->replayed++;
        if (i == 0) {
            snprintf(w->first_id, sizeof(w->first_id), "%s", r.order_id);
        }
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void run_workers(od_store_t *s, worker_t *w, int same_key)
{
    apr_thread_t *t[THREADS];
    apr_status_t rv;

    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){s, i, same_key, 0, 0, 0, ""};
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, put_many, &w[i], pool), APR_SUCCESS);
    }
    for (int i = 0; i < THREADS; i++) {
        apr_thread_join(&rv, t[i]);
    }
}

START_TEST(test_sqlite_concurrent_same_key_one_order)
{
    od_store_t *s = open_store(pool);
    worker_t w[THREADS];
    int created = 0;

    run_workers(s, w, 1);
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(w[i].failed, 0);
        created += w[i].created;
        ck_assert_str_eq(w[i].first_id, w[0].first_id);
    }
    ck_assert_int_eq(created, 1);
}
END_TEST

START_TEST(test_sqlite_concurrent_unique_all_stored)
{
    od_store_t *s = open_store(pool);
    worker_t w[THREADS];
    od_store_result_t r;

    run_workers(s, w, 0);
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(w[i].failed, 0);
        ck_assert_int_eq(w[i].created, PER_THREAD);
        for (int j = 0; j < PER_THREAD; j++) {
            const char *id = apr_psprintf(pool, "01%02d%022d", i, j);
            ck_assert_int_eq(od_store_get(s, "c", id, &r, pool), APR_SUCCESS);
            ck_assert_str_eq(r.body, id);
        }
    }
}
END_TEST

/* ---- files written by earlier and later versions ---- */

/* The schema of orderd versions with user_version 2, exactly as they created it. */
static const char v2_schema[] =
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

/* And with user_version 1 (before the outbox). */
static const char v1_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, caller TEXT NOT NULL,"
    " idem_key TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS idem (caller TEXT NOT NULL, idem_key TEXT NOT NULL,"
    " order_id TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (caller, idem_key));"
    "CREATE INDEX IF NOT EXISTS idem_expires ON idem(expires_at);"
    "PRAGMA user_version=1;";

/* An order "01AAAAAAAAAAAAAAAAAAAAAAAA" of c1 under key k1, as an older orderd stored it. */
static void old_order(void)
{
    sql_exec(apr_psprintf(pool,
                          "INSERT INTO orders VALUES ('01AAAAAAAAAAAAAAAAAAAAAAAA', 'c1', 'k1',"
                          " '{\"v\":1}', %" APR_TIME_T_FMT ");"
                          "INSERT INTO idem VALUES ('c1', 'k1', '01AAAAAAAAAAAAAAAAAAAAAAAA',"
                          " %" APR_TIME_T_FMT ");",
                          t0, t0 + TTL));
}

/* Version 4 has no idem table (the records come from the orders), and outbox rows point at their
 * orders instead of holding a copy of the envelope. */
static void assert_v4(void)
{
    ck_assert_str_eq(sql_text("PRAGMA user_version"), "4");
    ck_assert_str_eq(sql_text("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'idem%'"), "0");
    ck_assert_str_eq(sql_text("SELECT count(*) FROM pragma_table_info('outbox')"
                              " WHERE name IN ('order_row', 'body')"),
                     "1");
    ck_assert_str_eq(sql_text("SELECT count(*) FROM sqlite_schema WHERE name = 'outbox_v3'"), "0");
}

/* The order is readable, and a new order under its key replays it. */
static void assert_old_order(od_store_t *s)
{
    od_store_result_t r;
    od_store_order_t b = order("c1", "k1", "01BBBBBBBBBBBBBBBBBBBBBBBB", t0 + 1);

    ck_assert_int_eq(od_store_get(s, "c1", "01AAAAAAAAAAAAAAAAAAAAAAAA", &r, pool), APR_SUCCESS);
    ck_assert_str_eq(r.body, "{\"v\":1}");
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(r.outcome, OD_STORE_REPLAYED);
    ck_assert_str_eq(r.order_id, "01AAAAAAAAAAAAAAAAAAAAAAAA");
    ck_assert_int_eq(r.created_at, t0);
}

START_TEST(test_sqlite_v2_file_keeps_orders_keys_and_events)
{
    sql_exec(v2_schema);
    old_order();
    sql_exec(apr_psprintf(pool,
                          "INSERT INTO outbox (event_id, order_id, body, created_at, due_at)"
                          " VALUES ('01EEEEEEEEEEEEEEEEEEEEEEEE', '01AAAAAAAAAAAAAAAAAAAAAAAA',"
                          " '{\"e\":1}', %" APR_TIME_T_FMT ", %" APR_TIME_T_FMT ")",
                          t0, t0));
    od_store_t *s = open_store(pool);
    assert_old_order(s);
    apr_array_header_t *events = pending(s);
    ck_assert_int_eq(events->nelts, 1);
    od_store_event_t *e = (od_store_event_t *) events->elts;
    ck_assert_str_eq(e->event_id, "01EEEEEEEEEEEEEEEEEEEEEEEE");
    /* The envelope is rendered again from the order (the old row's copy was the same). */
    ck_assert_str_eq(e->event,
                     od_event_render("01EEEEEEEEEEEEEEEEEEEEEEEE", "{\"v\":1}", t0, NULL, pool));
    ck_assert_int_gt(e->seq, 0);
    assert_v4();
}
END_TEST

START_TEST(test_sqlite_v1_file_gains_the_outbox)
{
    sql_exec(v1_schema);
    old_order();
    od_store_t *s = open_store(pool);
    assert_old_order(s);
    ck_assert_int_eq(pending(s)->nelts, 0);
    assert_v4();
    ck_assert_str_eq(sql_text("SELECT name FROM sqlite_schema WHERE name = 'outbox_due'"),
                     "outbox_due");
}
END_TEST

START_TEST(test_sqlite_newer_schema_refused_untouched)
{
    od_store_t *s = (od_store_t *) 1;

    sql_exec("CREATE TABLE future (x); PRAGMA user_version=99;");
    ck_assert_int_eq(od_sqlite_create(&s, db_path(), 2, 8, TTL, log_, pool), OD_EUNAVAIL);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(sql_text("PRAGMA user_version"), "99");
    ck_assert_str_eq(sql_text("SELECT group_concat(name) FROM sqlite_schema"), "future");
    ck_assert_str_eq(sql_text("PRAGMA journal_mode"), "delete");
}
END_TEST

/* ---- the outbox: published marks ---- */

START_TEST(test_sqlite_published_mark_applied_without_waiting)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    od_store_order_t a =
        order_with_event("k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", "01EAAAAAAAAAAAAAAAAAAAAAAA");
    od_store_order_t b =
        order_with_event("k2", "01BBBBBBBBBBBBBBBBBBBBBBBB", "01EBBBBBBBBBBBBBBBBBBBBBBB");

    ck_assert_int_eq(od_store_put(s, &a, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(od_store_put(s, &b, &r, pool), APR_SUCCESS);
    apr_array_header_t *events = pending(s);
    ck_assert_int_eq(events->nelts, 2);
    /* a alone; no order follows, so the writer commits the mark by itself. */
    ck_assert_int_eq(od_store_published(s, (od_store_event_t *) events->elts, 1, pool),
                     APR_SUCCESS);
    for (int i = 0; i < 500 && events->nelts != 1; i++) {
        apr_sleep(apr_time_from_msec(10));
        events = pending(s);
    }
    ck_assert_int_eq(events->nelts, 1);
    ck_assert_str_eq(((od_store_event_t *) events->elts)->event_id, b.event_id);
    /* Marking again (another instance did too) is harmless. */
    ck_assert_int_eq(od_store_published(s, (od_store_event_t *) events->elts, 1, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(od_store_published(s, (od_store_event_t *) events->elts, 1, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(od_store_published(s, NULL, 0, pool), APR_SUCCESS);
    for (int i = 0; i < 500 && events->nelts != 0; i++) {
        apr_sleep(apr_time_from_msec(10));
        events = pending(s);
    }
    ck_assert_int_eq(events->nelts, 0);
}
END_TEST

START_TEST(test_sqlite_pending_event_as_accepted_and_rescheduled)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    od_store_order_t a =
        order_with_event("k1", "01AAAAAAAAAAAAAAAAAAAAAAAA", "01EAAAAAAAAAAAAAAAAAAAAAAA");
    apr_array_header_t *events = NULL;

    ck_assert_int_eq(od_store_put(s, &a, &r, pool), APR_SUCCESS);
    ck_assert_int_gt(r.event_seq, 0);
    events = pending(s);
    ck_assert_int_eq(events->nelts, 1);
    od_store_event_t e = *(od_store_event_t *) events->elts;
    ck_assert_int_eq(e.seq, r.event_seq);
    ck_assert_str_eq(e.event_id, a.event_id);
    ck_assert_str_eq(e.order_id, a.order_id);
    ck_assert_uint_eq(e.event_len, a.event_len);
    ck_assert_str_eq(e.event, a.event); /* byte for byte what the API published */
    ck_assert_int_eq(e.created_at, a.created_at);
    ck_assert_int_eq(e.attempts, 0);
    /* Due later: not pending before then, and one attempt counted. */
    ck_assert_int_eq(od_store_reschedule(s, &e, t0 + apr_time_from_sec(60), pool), APR_SUCCESS);
    ck_assert_int_eq(od_store_pending(s, t0 + apr_time_from_sec(59), 10, &events, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(events->nelts, 0);
    ck_assert_int_eq(od_store_pending(s, t0 + apr_time_from_sec(60), 10, &events, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(events->nelts, 1);
    ck_assert_int_eq(((od_store_event_t *) events->elts)->attempts, 1);
    /* An event that names no row of this store marks nothing. */
    od_store_event_t stranger = {.event_id = a.event_id, .order_id = a.order_id, .seq = 0};
    ck_assert_int_eq(od_store_reschedule(s, &stranger, t0, pool), APR_SUCCESS);
    ck_assert_int_eq(od_store_pending(s, t0 + apr_time_from_sec(59), 10, &events, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(events->nelts, 0);
}
END_TEST

START_TEST(test_sqlite_published_marks_applied_before_close)
{
    apr_pool_t *p1 = NULL;
    od_store_result_t r;
    od_store_event_t done[20];

    apr_pool_create(&p1, pool);
    od_store_t *s = open_store(p1);
    for (int i = 0; i < 20; i++) {
        const char *id = apr_psprintf(pool, "01A%023d", i);
        od_store_order_t o =
            order_with_event(apr_psprintf(pool, "k%d", i), id, apr_psprintf(pool, "01E%023d", i));
        ck_assert_int_eq(od_store_put(s, &o, &r, pool), APR_SUCCESS);
        done[i] = (od_store_event_t){.event_id = o.event_id, .order_id = id, .seq = r.event_seq};
    }
    for (int i = 0; i < 20; i += 5) {
        ck_assert_int_eq(od_store_published(s, done + i, 5, pool), APR_SUCCESS);
    }
    apr_pool_destroy(p1); /* at once: the marks may still be queued */
    ck_assert_int_eq(pending(open_store(pool))->nelts, 0);
}
END_TEST

/* The backlog is every event not yet published, whatever its due time (one rescheduled far
 * ahead too), and its oldest is the earliest-accepted of them; a claim is a no-op here (one
 * instance per file) and keeps every event. */
START_TEST(test_sqlite_backlog_counts_every_unpublished_event)
{
    od_store_t *s = open_store(pool);
    od_store_result_t r;
    apr_size_t n = 99;
    apr_time_t oldest = 99;

    ck_assert_int_eq(od_store_backlog(s, NULL, &n, &oldest, pool), APR_SUCCESS);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(oldest, 0);
    for (int i = 0; i < 3; i++) {
        od_store_order_t o =
            order_with_event(apr_psprintf(pool, "k%d", i), apr_psprintf(pool, "01A%023d", i),
                             apr_psprintf(pool, "01E%023d", i));
        o.created_at = t0 - apr_time_from_sec(3 - i);
        o.event_due = o.created_at + apr_time_from_sec(10);
        ck_assert_int_eq(od_store_put(s, &o, &r, pool), APR_SUCCESS);
    }
    apr_array_header_t *events = NULL;
    ck_assert_int_eq(od_store_pending(s, t0 + apr_time_from_sec(60), 10, &events, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(events->nelts, 3);
    od_store_event_t *e = (od_store_event_t *) events->elts;
    ck_assert_int_eq(e[0].due, t0 + apr_time_from_sec(7));
    ck_assert_int_eq(od_store_claim(s, events, apr_time_from_sec(10), pool), APR_SUCCESS);
    ck_assert_int_eq(events->nelts, 3);
    ck_assert_int_eq(od_store_reschedule(s, &e[0], t0 + apr_time_from_sec(3600), pool),
                     APR_SUCCESS);
    ck_assert_int_eq(od_store_backlog(s, NULL, &n, &oldest, pool), APR_SUCCESS);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(oldest, t0 - apr_time_from_sec(3));
    ck_assert_int_eq(od_store_published(s, e, 1, pool), APR_SUCCESS);
    for (int i = 0; i < 500 && n != 2; i++) { /* the mark is applied in the writer's next commit */
        apr_sleep(apr_time_from_msec(10));
        ck_assert_int_eq(od_store_backlog(s, NULL, &n, &oldest, pool), APR_SUCCESS);
    }
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(oldest, t0 - apr_time_from_sec(2));
}
END_TEST

/* ---- the checkpointer ---- */

#define BIG_THREADS 8
#define BIG_PER_THREAD 1500
#define BIG_BODY 3500

/* ---- asynchronous puts ---- */

#define ASYNC_N 200

typedef struct async_t {
    od_store_t *store;
    apr_thread_mutex_t *lock;
    int calls[ASYNC_N]; /* guarded by lock: completions seen per request */
    apr_status_t rv[ASYNC_N];
    int readable[ASYNC_N]; /* the order could be read back inside its completion */
    int completed;         /* guarded by lock */
    od_store_order_t o[ASYNC_N];
    od_store_result_t res[ASYNC_N];
} async_t;

typedef struct async_req_t {
    async_t *a;
    int i;
} async_req_t;

/* Runs on the writer thread: the order must already be committed, so another connection reads
 * it back. */
static void async_done(void *baton, apr_status_t rv)
{
    async_req_t *req = baton;
    async_t *a = req->a;
    od_store_result_t got;
    apr_pool_t *p = NULL;

    apr_pool_create(&p, NULL);
    int readable = rv == APR_SUCCESS &&
                   od_store_get(a->store, "c1", a->res[req->i].order_id, &got, p) == APR_SUCCESS;
    apr_pool_destroy(p);
    apr_thread_mutex_lock(a->lock);
    a->calls[req->i]++;
    a->rv[req->i] = rv;
    a->readable[req->i] = readable;
    a->completed++;
    apr_thread_mutex_unlock(a->lock);
}

static int async_completed(async_t *a)
{
    apr_thread_mutex_lock(a->lock);
    int n = a->completed;
    apr_thread_mutex_unlock(a->lock);
    return n;
}

/* The file fills up (a page limit, in test builds) under batches of asynchronous puts. SQLite
 * then rolls back the whole transaction of the batch that hit it: each order either is stored
 * whole and was answered so, or failed and left nothing, not even its idempotency record. */
START_TEST(test_sqlite_full_file_fails_whole_orders)
{
#ifdef ORDERD_FAULT_INJECTION
    apr_pool_t *p1 = NULL;
    async_t *a = apr_pcalloc(pool, sizeof(*a));
    async_req_t *reqs = apr_pcalloc(pool, sizeof(*reqs) * ASYNC_N);
    const char *pad = apr_psprintf(pool, "{\"pad\":\"%0800d\"}", 0);
    od_store_result_t r;
    int ok = 0;

    FILE *lf = log_to_file();
    setenv("ORDERD_FAULT_SQLITE_MAX_PAGES", "48", 1);
    apr_pool_create(&p1, pool);
    a->store = open_store(p1);
    unsetenv("ORDERD_FAULT_SQLITE_MAX_PAGES");
    ck_assert_int_eq(apr_thread_mutex_create(&a->lock, APR_THREAD_MUTEX_DEFAULT, pool),
                     APR_SUCCESS);
    for (int i = 0; i < ASYNC_N; i++) {
        a->o[i] = order_with_event(apr_psprintf(pool, "k%d", i), apr_psprintf(pool, "01F%023d", i),
                                   apr_psprintf(pool, "01G%023d", i));
        a->o[i].body = pad;
        a->o[i].body_len = strlen(pad);
        reqs[i] = (async_req_t){a, i};
        od_store_put_async(a->store, &a->o[i], &a->res[i], async_done, &reqs[i], pool);
    }
    for (int waited = 0; async_completed(a) < ASYNC_N && waited < 500; waited++) {
        apr_sleep(apr_time_from_msec(10));
    }
    ck_assert_int_eq(async_completed(a), ASYNC_N);
    apr_pool_destroy(p1);

    od_store_t *s = open_store(pool); /* without the limit: the index is rebuilt from the file */
    for (int i = 0; i < ASYNC_N; i++) {
        int stored = a->rv[i] == APR_SUCCESS;
        od_store_order_t again =
            order("c1", apr_psprintf(pool, "k%d", i), apr_psprintf(pool, "01H%023d", i), t0 + 1);
        ck_assert_msg(stored || a->rv[i] == OD_EUNAVAIL, "order %d: status %d", i, a->rv[i]);
        ck_assert_int_eq(od_store_get(s, "c1", a->o[i].order_id, &r, pool),
                         (stored ? APR_SUCCESS : OD_ENOTFOUND));
        ck_assert_int_eq(od_store_put(s, &again, &r, pool), APR_SUCCESS);
        ck_assert_int_eq(r.outcome, (stored ? OD_STORE_REPLAYED : OD_STORE_CREATED));
        ok += stored;
    }
    ck_assert_int_gt(ok, 10);
    ck_assert_int_lt(ok, ASYNC_N);
    apr_array_header_t *events = NULL;
    ck_assert_int_eq(od_store_pending(s, t0 + apr_time_from_sec(3600), 10 * ASYNC_N, &events, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(events->nelts, ok); /* one per stored order; the failed left none */
    ck_assert_int_gt(batch_errors(lf), 0);
#endif
}
END_TEST

/* The disk fills up under the WAL (a file size limit: a write past it fails with EFBIG, as one
 * fails with ENOSPC on a full disk): each failed order is logged once, and the store recovers
 * once there is room again. */
START_TEST(test_sqlite_full_disk_batch_logged_once)
{
    FILE *lf = log_to_file();
    od_store_t *s = open_store(pool);
    const char *pad = apr_psprintf(pool, "{\"pad\":\"%08000d\"}", 0);
    struct rlimit old, lim;
    struct stat db, wal;
    od_store_result_t r;
    int failed = 0;

    od_store_order_t o = order("c1", "k", "01FULL0000000000000000000", t0);
    ck_assert_int_eq(od_store_put(s, &o, &r, pool), APR_SUCCESS);
    ck_assert_int_eq(stat(db_path(), &db), 0);
    ck_assert_int_eq(stat(apr_pstrcat(pool, db_path(), "-wal", NULL), &wal), 0);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t) (db.st_size > wal.st_size ? db.st_size : wal.st_size) + 65536;
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (int i = 0; i < 200 && failed < 3; i++) {
        o = order("c1", apr_psprintf(pool, "k%d", i), apr_psprintf(pool, "01FULL%020d", i), t0);
        o.body = pad;
        o.body_len = strlen(pad);
        failed += od_store_put(s, &o, &r, pool) != APR_SUCCESS;
    }
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    ck_assert_int_eq(failed, 3);
    ck_assert_int_eq(batch_errors(lf), failed);
    o = order("c1", "after", "01FULLAFTER000000000000000", t0);
    ck_assert_int_eq(od_store_put(s, &o, &r, pool), APR_SUCCESS);
}
END_TEST

START_TEST(test_sqlite_put_async_completes_once_after_commit)
{
    async_t *a = apr_pcalloc(pool, sizeof(*a));
    async_req_t *reqs = apr_pcalloc(pool, sizeof(*reqs) * ASYNC_N);

    a->store = open_store(pool);
    ck_assert_int_eq(apr_thread_mutex_create(&a->lock, APR_THREAD_MUTEX_DEFAULT, pool),
                     APR_SUCCESS);
    /* Requests 0 and 1 share a key: one is stored, the other replays it. */
    for (int i = 0; i < ASYNC_N; i++) {
        const char *key = i == 1 ? "k0" : apr_psprintf(pool, "k%d", i);
        a->o[i] = order("c1", key, apr_psprintf(pool, "01ASYNC%019d", i), t0);
        reqs[i] = (async_req_t){a, i};
        /* A pool per request, as the server has: the writer fills the result from it while
         * this thread goes on allocating. */
        apr_pool_t *rp = NULL;
        apr_pool_create(&rp, pool);
        od_store_put_async(a->store, &a->o[i], &a->res[i], async_done, &reqs[i], rp);
    }
    for (int waited = 0; async_completed(a) < ASYNC_N && waited < 500; waited++) {
        apr_sleep(apr_time_from_msec(10));
    }
    ck_assert_int_eq(async_completed(a), ASYNC_N);
    for (int i = 0; i < ASYNC_N; i++) {
        ck_assert_int_eq(a->calls[i], 1);
        ck_assert_int_eq(a->rv[i], APR_SUCCESS);
        ck_assert_msg(a->readable[i], "order %d not readable in its completion", i);
    }
    ck_assert_int_eq(a->res[0].outcome, OD_STORE_CREATED);
    ck_assert_int_eq(a->res[1].outcome, OD_STORE_REPLAYED);
    ck_assert_str_eq(a->res[1].order_id, a->o[0].order_id);
    ck_assert_int_eq(a->res[ASYNC_N - 1].outcome, OD_STORE_CREATED);
}
END_TEST

/* Registered on the store's pool before the store, so it runs after the store's own cleanup
 * has stopped the writer (pre-cleanups run last registered, first) while its memory is still
 * there: a put then is refused at once, on the caller's thread. */
static apr_status_t put_after_stop(void *data)
{
    async_t *a = data;
    async_req_t *req = apr_palloc(pool, sizeof(*req));

    *req = (async_req_t){a, 0};
    a->o[0] = order("c1", "late", "01LATE00000000000000000000", t0);
    od_store_put_async(a->store, &a->o[0], &a->res[0], async_done, req, pool);
    return APR_SUCCESS;
}

START_TEST(test_sqlite_put_async_after_stop_is_shutdown)
{
    async_t *a = apr_pcalloc(pool, sizeof(*a));
    apr_pool_t *sp = NULL;

    ck_assert_int_eq(apr_thread_mutex_create(&a->lock, APR_THREAD_MUTEX_DEFAULT, pool),
                     APR_SUCCESS);
    apr_pool_create(&sp, pool);
    apr_pool_pre_cleanup_register(sp, a, put_after_stop);
    a->store = open_store(sp);
    apr_pool_destroy(sp);
    ck_assert_int_eq(a->completed, 1);
    ck_assert_int_eq(a->calls[0], 1);
    ck_assert_int_eq(a->rv[0], OD_ESHUTDOWN);
}
END_TEST

static void *APR_THREAD_FUNC put_big(apr_thread_t *t, void *data)
{
    worker_t *w = data;
    apr_pool_t *p = NULL;
    char *body = malloc(BIG_BODY + 1);

    memset(body, 'x', BIG_BODY);
    body[BIG_BODY] = '\0';
    apr_pool_create(&p, NULL);
    for (int i = 0; i < BIG_PER_THREAD; i++) {
        const char *id = apr_psprintf(p, "01%02d%022d", w->index, i);
        od_store_order_t o = {.caller = "c",
                              .idem_key = id,
                              .order_id = id,
                              .body = body,
                              .body_len = BIG_BODY,
                              .created_at = apr_time_now(),
                              .expires_at = apr_time_now() + TTL};
        od_store_result_t r;
        w->failed += od_store_put(w->store, &o, &r, p) != APR_SUCCESS;
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    free(body);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static apr_off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (apr_off_t) st.st_size : 0;
}

/* 12000 orders of 3.5 KB (42 MB of bodies alone) go through a WAL that stays far smaller: it is
 * checkpointed while the writes go on, and starts over from its beginning. */
START_TEST(test_sqlite_wal_checkpointed_and_bounded)
{
    od_store_t *s = open_store(pool);
    apr_thread_t *t[BIG_THREADS];
    worker_t w[BIG_THREADS];
    apr_status_t rv;

    for (int i = 0; i < BIG_THREADS; i++) {
        w[i] = (worker_t){s, i, 0, 0, 0, 0, ""};
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, put_big, &w[i], pool), APR_SUCCESS);
    }
    for (int i = 0; i < BIG_THREADS; i++) {
        apr_thread_join(&rv, t[i]);
        ck_assert_int_eq(w[i].failed, 0);
    }
    /* A WAL file never shrinks: its size now is the most it held. */
    apr_off_t wal = file_size(apr_pstrcat(pool, db_path(), "-wal", NULL));
    apr_off_t db = file_size(db_path());
    ck_assert_msg(wal > 0 && wal < 28 * 1024 * 1024, "WAL %" APR_OFF_T_FMT " bytes", wal);
    ck_assert_msg(db > 20 * 1024 * 1024, "database %" APR_OFF_T_FMT " bytes", db);
}
END_TEST

Suite *od_sqlite_suite(void)
{
    Suite *s = suite_create("sqlite");
    TCase *tc = tcase_create("store");
    TCase *tc_conc = tcase_create("concurrency");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sqlite_put_then_replay);
    tcase_add_test(tc, test_sqlite_ttl_enforced_at_check_time);
    tcase_add_test(tc, test_sqlite_callers_are_scoped);
    tcase_add_test(tc, test_sqlite_durable_across_reopen);
    tcase_add_test(tc, test_sqlite_open_failure_is_a_value);
    tcase_add_test(tc, test_sqlite_reopen_restores_only_live_records);
    tcase_add_test(tc, test_sqlite_failed_order_leaves_no_record);
    tcase_add_test(tc, test_sqlite_second_process_refused);
    tcase_add_test(tc, test_sqlite_failed_commit_sync_outcome_unknown);
    tcase_add_test(tc, test_sqlite_v2_file_keeps_orders_keys_and_events);
    tcase_add_test(tc, test_sqlite_v1_file_gains_the_outbox);
    tcase_add_test(tc, test_sqlite_newer_schema_refused_untouched);
    tcase_add_test(tc, test_sqlite_published_mark_applied_without_waiting);
    tcase_add_test(tc, test_sqlite_published_marks_applied_before_close);
    tcase_add_test(tc, test_sqlite_pending_event_as_accepted_and_rescheduled);
    tcase_add_test(tc, test_sqlite_backlog_counts_every_unpublished_event);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(tc_conc, setup, teardown);
    tcase_set_timeout(tc_conc, 120);
    tcase_add_test(tc_conc, test_sqlite_concurrent_same_key_one_order);
    tcase_add_test(tc_conc, test_sqlite_concurrent_unique_all_stored);
    tcase_add_test(tc_conc, test_sqlite_wal_checkpointed_and_bounded);
    tcase_add_test(tc_conc, test_sqlite_put_async_completes_once_after_commit);
    tcase_add_test(tc_conc, test_sqlite_full_file_fails_whole_orders);
    tcase_add_test(tc_conc, test_sqlite_full_disk_batch_logged_once);
    tcase_add_test(tc, test_sqlite_put_async_after_stop_is_shutdown);
    suite_add_tcase(s, tc_conc);
    return s;
}
