/* od_dedupe: claim / complete / release of processed events, on SQLite or DynamoDB. */
#include "od_dedupe.h"
#include "od_status.h"
#include "od_ulid.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <json-c/json.h>
#include <sqlite3.h>
#include <string.h>

#define OD_DD_BUSY_MS 5000
#define OD_DD_PURGE_EVERY apr_time_from_sec(60)
#define OD_DD_PURGE_ROWS 5000
#define OD_DD_CLAIM_TRIES 3
#define OD_DD_CONTENT_TYPE "application/x-amz-json-1.0"
#define OD_DD_TARGET "DynamoDB_20120810."

/* What a backend implements. Times are absolute; the wrapper computes them and the token. */
typedef struct od_dedupe_ops_t {
    const char *name;
    apr_status_t (*claim)(void *impl, const char *event_id, const char *token, apr_time_t now,
                          apr_time_t lease_until, od_dedupe_claim_t *out, apr_pool_t *p);
    apr_status_t (*complete)(void *impl, const char *event_id, const char *token,
                             apr_time_t expires_at, apr_pool_t *p);
    apr_status_t (*release)(void *impl, const char *event_id, const char *token, apr_pool_t *p);
} od_dedupe_ops_t;

struct od_dedupe_s {
    const od_dedupe_ops_t *ops;
    void *impl;
};

/* ==== SQLite ==== */

typedef struct od_dd_sqlite_t {
    const char *path;
    od_log_t *log;
    apr_thread_mutex_t *lock; /* one connection: every call holds the lock */
    sqlite3 *db;
    sqlite3_stmt *claim;
    sqlite3_stmt *find;
    sqlite3_stmt *complete;
    sqlite3_stmt *release;
    sqlite3_stmt *purge;
    apr_time_t last_purge; /* guarded by lock */
} od_dd_sqlite_t;

static const char od_dd_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS processed_events (event_id TEXT PRIMARY KEY,"
    " state TEXT NOT NULL CHECK (state IN ('processing', 'done')), owner TEXT NOT NULL,"
    " lease_until INTEGER NOT NULL, expires_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS processed_events_expires ON processed_events(expires_at);";

/* One statement, so the claim is atomic across connections and processes. A processing claim
 * expires with its lease, so its expires_at is the lease's end (the purge then removes it). */
static const char od_dd_claim_sql[] =
    "INSERT INTO processed_events (event_id, state, owner, lease_until, expires_at)"
    " VALUES (?1, 'processing', ?2, ?3, ?3) ON CONFLICT (event_id) DO UPDATE SET"
    " state = 'processing', owner = excluded.owner, lease_until = excluded.lease_until,"
    " expires_at = excluded.expires_at"
    " WHERE (processed_events.state = 'processing' AND processed_events.lease_until <= ?4)"
    " OR (processed_events.state = 'done' AND processed_events.expires_at <= ?4)";

static apr_status_t od_dd_sqlite_fail(od_dd_sqlite_t *s, const char *call)
{
    od_log_error(s->log, "dedupe: sqlite: %s failed on %s: %s", call, s->path,
                 s->db != NULL ? sqlite3_errmsg(s->db) : "out of memory");
    return OD_EUNAVAIL;
}

static apr_status_t od_dd_sqlite_open(od_dd_sqlite_t *s)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;

    if (sqlite3_open_v2(s->path, &s->db, flags, NULL) != SQLITE_OK) {
        return od_dd_sqlite_fail(s, "sqlite3_open_v2");
    }
    sqlite3_busy_timeout(s->db, OD_DD_BUSY_MS);
    if (sqlite3_exec(s->db, od_dd_schema, NULL, NULL, NULL) != SQLITE_OK) {
        return od_dd_sqlite_fail(s, "creating the schema");
    }
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        {&s->claim, od_dd_claim_sql},
        {&s->find, "SELECT state, lease_until FROM processed_events WHERE event_id = ?1"},
        {&s->complete, "INSERT INTO processed_events (event_id, state, owner, lease_until,"
                       " expires_at) VALUES (?1, 'done', ?2, 0, ?3) ON CONFLICT (event_id)"
                       " DO UPDATE SET state = 'done', owner = excluded.owner, lease_until = 0,"
                       " expires_at = excluded.expires_at"},
        {&s->release, "DELETE FROM processed_events WHERE event_id = ?1 AND owner = ?2"
                      " AND state = 'processing'"},
        {&s->purge, "DELETE FROM processed_events WHERE rowid IN (SELECT rowid FROM"
                    " processed_events WHERE expires_at <= ?1 LIMIT ?2)"},
    };
    for (apr_size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        if (sqlite3_prepare_v3(s->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, stmts[i].st,
                               NULL) != SQLITE_OK) {
            return od_dd_sqlite_fail(s, "sqlite3_prepare_v3");
        }
    }
    return APR_SUCCESS;
}

/* Idempotent and safe on a partly opened database, so a failed create undoes itself with it. */
static apr_status_t od_dd_sqlite_cleanup(void *data)
{
    od_dd_sqlite_t *s = data;
    sqlite3_stmt *all[] = {s->claim, s->find, s->complete, s->release, s->purge};

    for (apr_size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        sqlite3_finalize(all[i]);
    }
    sqlite3_close(s->db);
    s->claim = s->find = s->complete = s->release = s->purge = NULL;
    s->db = NULL;
    return APR_SUCCESS;
}

static void od_dd_bind(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* Runs a prepared write to completion and resets it. */
static apr_status_t od_dd_sqlite_step(od_dd_sqlite_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    apr_status_t rv = rc == SQLITE_DONE ? APR_SUCCESS : od_dd_sqlite_fail(s, what);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rv;
}

/* Expired records are only dead weight (a claim treats them as absent): remove them now and
 * then, in bounded chunks. Called with the lock held; a failure is only logged. */
static void od_dd_sqlite_purge(od_dd_sqlite_t *s, apr_time_t now)
{
    if (now - s->last_purge < OD_DD_PURGE_EVERY) {
        return;
    }
    s->last_purge = now;
    sqlite3_bind_int64(s->purge, 1, now);
    sqlite3_bind_int(s->purge, 2, OD_DD_PURGE_ROWS);
    if (sqlite3_step(s->purge) != SQLITE_DONE) {
        od_log_warn(s->log, "dedupe: sqlite: purging expired records failed: %s",
                    sqlite3_errmsg(s->db));
    }
    sqlite3_reset(s->purge);
}

/* After a claim that changed nothing: what holds the event. A record gone meanwhile (released
 * or purged) reads as BUSY with no lease, so the message simply comes back later. */
static apr_status_t od_dd_sqlite_find(od_dd_sqlite_t *s, const char *event_id,
                                      od_dedupe_claim_t *out)
{
    od_dd_bind(s->find, 1, event_id);
    int rc = sqlite3_step(s->find);
    if (rc == SQLITE_ROW) {
        int done = strcmp((const char *) sqlite3_column_text(s->find, 0), "done") == 0;
        out->outcome = done ? OD_DEDUPE_DONE : OD_DEDUPE_BUSY;
        out->lease_until = done ? 0 : sqlite3_column_int64(s->find, 1);
    } else {
        out->outcome = OD_DEDUPE_BUSY;
        out->lease_until = 0;
    }
    sqlite3_reset(s->find);
    sqlite3_clear_bindings(s->find);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? APR_SUCCESS : od_dd_sqlite_fail(s, "find");
}

static apr_status_t od_dd_sqlite_claim(void *impl, const char *event_id, const char *token,
                                       apr_time_t now, apr_time_t lease_until,
                                       od_dedupe_claim_t *out, apr_pool_t *p)
{
    od_dd_sqlite_t *s = impl;

    apr_thread_mutex_lock(s->lock);
    od_dd_bind(s->claim, 1, event_id);
    od_dd_bind(s->claim, 2, token);
    sqlite3_bind_int64(s->claim, 3, lease_until);
    sqlite3_bind_int64(s->claim, 4, now);
    apr_status_t rv = od_dd_sqlite_step(s, s->claim, "claim");
    if (rv == APR_SUCCESS && sqlite3_changes(s->db) == 1) {
        out->outcome = OD_DEDUPE_CLAIMED;
        out->token = token;
        out->lease_until = lease_until;
    } else if (rv == APR_SUCCESS) {
        rv = od_dd_sqlite_find(s, event_id, out);
    }
    od_dd_sqlite_purge(s, now);
    apr_thread_mutex_unlock(s->lock);
    return rv;
}

static apr_status_t od_dd_sqlite_complete(void *impl, const char *event_id, const char *token,
                                          apr_time_t expires_at, apr_pool_t *p)
{
    od_dd_sqlite_t *s = impl;

    apr_thread_mutex_lock(s->lock);
    od_dd_bind(s->complete, 1, event_id);
    od_dd_bind(s->complete, 2, token);
    sqlite3_bind_int64(s->complete, 3, expires_at);
    apr_status_t rv = od_dd_sqlite_step(s, s->complete, "complete");
    apr_thread_mutex_unlock(s->lock);
    return rv;
}

static apr_status_t od_dd_sqlite_release(void *impl, const char *event_id, const char *token,
                                         apr_pool_t *p)
{
    od_dd_sqlite_t *s = impl;

    apr_thread_mutex_lock(s->lock);
    od_dd_bind(s->release, 1, event_id);
    od_dd_bind(s->release, 2, token);
    apr_status_t rv = od_dd_sqlite_step(s, s->release, "release");
    apr_thread_mutex_unlock(s->lock);
    return rv;
}

static const od_dedupe_ops_t od_dd_sqlite_ops = {"sqlite", od_dd_sqlite_claim,
                                                 od_dd_sqlite_complete, od_dd_sqlite_release};

apr_status_t od_dedupe_sqlite_create(od_dedupe_t **out, const char *path, od_log_t *log,
                                     apr_pool_t *p)
{
    od_dd_sqlite_t *s = apr_pcalloc(p, sizeof(*s));
    od_dedupe_t *d = apr_pcalloc(p, sizeof(*d));

    *out = NULL;
    s->path = apr_pstrdup(p, path);
    s->log = log;
    s->last_purge = 0;
    apr_status_t rv = apr_thread_mutex_create(&s->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        od_log_error(log, "dedupe: apr_thread_mutex_create failed: %d", rv);
        return rv;
    }
    /* Registered after the mutex, so it runs before the mutex's own cleanup. */
    apr_pool_cleanup_register(p, s, od_dd_sqlite_cleanup, apr_pool_cleanup_null);
    if (od_dd_sqlite_open(s) != APR_SUCCESS) {
        apr_pool_cleanup_run(p, s, od_dd_sqlite_cleanup);
        return OD_EUNAVAIL;
    }
    d->ops = &od_dd_sqlite_ops;
    d->impl = s;
    *out = d;
    return APR_SUCCESS;
}

/* ==== DynamoDB ==== */

typedef struct od_dd_ddb_t {
    od_aws_t *aws;
    const char *endpoint;
    const char *table;
    od_log_t *log;
} od_dd_ddb_t;

/* json-c documents are released by a cleanup on the call's pool. */
static apr_status_t od_dd_json_put(void *obj)
{
    json_object_put(obj);
    return APR_SUCCESS;
}

static json_object *od_dd_owned(json_object *obj, apr_pool_t *p)
{
    if (obj != NULL) {
        apr_pool_cleanup_register(p, obj, od_dd_json_put, apr_pool_cleanup_null);
    }
    return obj;
}

static json_object *od_dd_attr(const char *type, const char *value)
{
    json_object *a = json_object_new_object();
    json_object_object_add(a, type, json_object_new_string(value));
    return a;
}

static json_object *od_dd_n(apr_int64_t value)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" APR_INT64_T_FMT, value);
    return od_dd_attr("N", buf);
}

/* Attribute @p name of type @p type ("S" or "N") of a DynamoDB item, or NULL. */
static const char *od_dd_get(json_object *item, const char *name, const char *type)
{
    json_object *a = NULL, *v = NULL;

    if (item == NULL || !json_object_object_get_ex(item, name, &a) ||
        !json_object_object_get_ex(a, type, &v) || !json_object_is_type(v, json_type_string)) {
        return NULL;
    }
    return json_object_get_string(v);
}

/* DynamoDB's TTL attribute is in whole seconds: round up so it never expires early. */
static apr_int64_t od_dd_seconds(apr_time_t t)
{
    return (t + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;
}

/* The request skeleton: {"TableName": table, <key>: {"pk": {"S": "EVENT#id"}}}. */
static json_object *od_dd_request(od_dd_ddb_t *d, const char *key, const char *event_id,
                                  json_object **item, apr_pool_t *p)
{
    json_object *req = od_dd_owned(json_object_new_object(), p);

    *item = json_object_new_object();
    json_object_object_add(*item, "pk", od_dd_attr("S", apr_pstrcat(p, "EVENT#", event_id, NULL)));
    json_object_object_add(req, "TableName", json_object_new_string(d->table));
    json_object_object_add(req, key, *item);
    return req;
}

/* One call; on success and on a failed condition the answer is parsed into @p doc. */
static apr_status_t od_dd_call(od_dd_ddb_t *d, const char *op, json_object *req, json_object **doc,
                               apr_pool_t *p)
{
    size_t len = 0;
    const char *body = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
    od_aws_request_t r = {
        "dynamodb", d->endpoint, apr_pstrcat(p, OD_DD_TARGET, op, NULL), OD_DD_CONTENT_TYPE, body,
        len,        NULL};
    od_aws_response_t resp;
    apr_status_t rv = od_aws_call(d->aws, &r, &resp, p);

    *doc = NULL;
    if (rv == APR_SUCCESS || rv == OD_ECONFLICT) {
        *doc = od_dd_owned(json_tokener_parse(resp.body), p);
        if (*doc == NULL && rv == APR_SUCCESS) {
            od_log_error(d->log, "dedupe: dynamodb: %s: answer is not JSON", op);
            return OD_EUNAVAIL;
        }
    }
    return rv;
}

/* "state" and "owner" are reserved words in expressions; DynamoDB refuses unused names. */
static void od_dd_names(json_object *req, int with_owner)
{
    json_object *names = json_object_new_object();
    json_object_object_add(names, "#s", json_object_new_string("state"));
    if (with_owner) {
        json_object_object_add(names, "#o", json_object_new_string("owner"));
    }
    json_object_object_add(req, "ExpressionAttributeNames", names);
}

static json_object *od_dd_claim_req(od_dd_ddb_t *d, const char *event_id, const char *token,
                                    apr_time_t now, apr_time_t lease_until, apr_pool_t *p)
{
    json_object *item = NULL, *values = json_object_new_object();
    json_object *req = od_dd_request(d, "Item", event_id, &item, p);

    json_object_object_add(item, "state", od_dd_attr("S", "processing"));
    json_object_object_add(item, "owner", od_dd_attr("S", token));
    json_object_object_add(item, "lease_until", od_dd_n(lease_until));
    json_object_object_add(item, "expires_at", od_dd_n(od_dd_seconds(lease_until)));
    json_object_object_add(values, ":processing", od_dd_attr("S", "processing"));
    json_object_object_add(values, ":done", od_dd_attr("S", "done"));
    json_object_object_add(values, ":now", od_dd_n(now));
    json_object_object_add(values, ":now_s", od_dd_n(now / APR_USEC_PER_SEC));
    json_object_object_add(
        req, "ConditionExpression",
        json_object_new_string("attribute_not_exists(pk) OR (#s = :processing AND lease_until <= "
                               ":now) OR (#s = :done AND expires_at <= :now_s)"));
    od_dd_names(req, 0);
    json_object_object_add(req, "ExpressionAttributeValues", values);
    json_object_object_add(req, "ReturnValuesOnConditionCheckFailure",
                           json_object_new_string("ALL_OLD"));
    return req;
}

/* The record that made the claim's condition fail: from the answer (ALL_OLD), else read. */
static apr_status_t od_dd_holder(od_dd_ddb_t *d, const char *event_id, json_object *doc,
                                 json_object **item, apr_pool_t *p)
{
    json_object *key = NULL, *got = NULL;

    *item = NULL;
    if (doc != NULL && json_object_object_get_ex(doc, "Item", item)) {
        return APR_SUCCESS;
    }
    json_object *req = od_dd_request(d, "Key", event_id, &key, p);
    json_object_object_add(req, "ConsistentRead", json_object_new_boolean(1));
    apr_status_t rv = od_dd_call(d, "GetItem", req, &got, p);
    if (rv == APR_SUCCESS) {
        json_object_object_get_ex(got, "Item", item);
    }
    return rv;
}

static apr_status_t od_dd_ddb_claim(void *impl, const char *event_id, const char *token,
                                    apr_time_t now, apr_time_t lease_until, od_dedupe_claim_t *out,
                                    apr_pool_t *p)
{
    od_dd_ddb_t *d = impl;
    json_object *req = od_dd_claim_req(d, event_id, token, now, lease_until, p);
    json_object *doc = NULL, *item = NULL;

    out->outcome = OD_DEDUPE_BUSY;
    out->lease_until = 0;
    /* A holder that vanishes between the failed condition and the read (released meanwhile)
     * leaves the event free: claim again, a bounded number of times. */
    for (int i = 0; i < OD_DD_CLAIM_TRIES; i++) {
        apr_status_t rv = od_dd_call(d, "PutItem", req, &doc, p);
        if (rv == APR_SUCCESS) {
            out->outcome = OD_DEDUPE_CLAIMED;
            out->token = token;
            out->lease_until = lease_until;
            return APR_SUCCESS;
        }
        if (rv == OD_ECONFLICT) {
            rv = od_dd_holder(d, event_id, doc, &item, p);
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        const char *state = od_dd_get(item, "state", "S");
        if (state != NULL) {
            const char *lease = od_dd_get(item, "lease_until", "N");
            out->outcome = strcmp(state, "done") == 0 ? OD_DEDUPE_DONE : OD_DEDUPE_BUSY;
            out->lease_until = out->outcome == OD_DEDUPE_BUSY && lease ? apr_atoi64(lease) : 0;
            return APR_SUCCESS;
        }
    }
    return APR_SUCCESS; /* still contended: BUSY, the message comes back later */
}

static apr_status_t od_dd_ddb_complete(void *impl, const char *event_id, const char *token,
                                       apr_time_t expires_at, apr_pool_t *p)
{
    od_dd_ddb_t *d = impl;
    json_object *item = NULL, *doc = NULL;
    json_object *req = od_dd_request(d, "Item", event_id, &item, p);

    json_object_object_add(item, "state", od_dd_attr("S", "done"));
    json_object_object_add(item, "owner", od_dd_attr("S", token));
    json_object_object_add(item, "expires_at", od_dd_n(od_dd_seconds(expires_at)));
    return od_dd_call(d, "PutItem", req, &doc, p);
}

static apr_status_t od_dd_ddb_release(void *impl, const char *event_id, const char *token,
                                      apr_pool_t *p)
{
    od_dd_ddb_t *d = impl;
    json_object *key = NULL, *doc = NULL, *values = json_object_new_object();
    json_object *req = od_dd_request(d, "Key", event_id, &key, p);

    json_object_object_add(values, ":owner", od_dd_attr("S", token));
    json_object_object_add(values, ":processing", od_dd_attr("S", "processing"));
    json_object_object_add(req, "ConditionExpression",
                           json_object_new_string("#o = :owner AND #s = :processing"));
    od_dd_names(req, 1);
    json_object_object_add(req, "ExpressionAttributeValues", values);
    apr_status_t rv = od_dd_call(d, "DeleteItem", req, &doc, p);
    return rv == OD_ECONFLICT ? APR_SUCCESS : rv; /* not ours any more: nothing to release */
}

static const od_dedupe_ops_t od_dd_ddb_ops = {"dynamodb", od_dd_ddb_claim, od_dd_ddb_complete,
                                              od_dd_ddb_release};

apr_status_t od_dedupe_dynamodb_create(od_dedupe_t **out, od_aws_t *aws, const char *endpoint,
                                       const char *table, od_log_t *log, apr_pool_t *p)
{
    od_dd_ddb_t *impl = apr_pcalloc(p, sizeof(*impl));
    od_dedupe_t *d = apr_pcalloc(p, sizeof(*d));

    *out = NULL;
    impl->aws = aws;
    impl->endpoint = apr_pstrdup(p, endpoint);
    impl->table = apr_pstrdup(p, table);
    impl->log = log;
    d->ops = &od_dd_ddb_ops;
    d->impl = impl;
    *out = d;
    return APR_SUCCESS;
}

/* ==== the interface ==== */

const char *od_dedupe_name(const od_dedupe_t *d)
{
    return d->ops->name;
}

apr_status_t od_dedupe_claim(od_dedupe_t *d, const char *event_id, apr_time_t now,
                             apr_interval_time_t lease, od_dedupe_claim_t *out, apr_pool_t *p)
{
    char *token = apr_palloc(p, OD_ULID_LEN + 1);

    /* A fresh token per claim, so a release never deletes a claim taken over from us. */
    if (od_ulid_generate(token, now) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    out->token = NULL;
    return d->ops->claim(d->impl, event_id, token, now, now + lease, out, p);
}

apr_status_t od_dedupe_complete(od_dedupe_t *d, const char *event_id, const char *token,
                                apr_time_t now, apr_interval_time_t ttl, apr_pool_t *p)
{
    return d->ops->complete(d->impl, event_id, token, now + ttl, p);
}

apr_status_t od_dedupe_release(od_dedupe_t *d, const char *event_id, const char *token,
                               apr_pool_t *p)
{
    return d->ops->release(d->impl, event_id, token, p);
}
