/* od_http: libmicrohttpd front end with an APR worker pool behind suspended connections. */
#include "od_http.h"
#include "od_conns.h"
#include "od_http_head.h"
#include "od_problem.h"
#include "od_ratelimit.h"
#include "od_status.h"
#include "od_ulid.h"

#include <apr_atomic.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_pool.h>
#include <apr_thread_rwlock.h>
#include <arpa/inet.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#define OD_HTTP_ANONYMOUS "anonymous"
/* TLS 1.2 and 1.3 only, AEAD ciphers only, our order of preference (GnuTLS priority syntax). */
#define OD_HTTP_TLS_PRIORITIES                                                                     \
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"         \
    "+CHACHA20-POLY1305:-SHA1:-MD5:%SERVER_PRECEDENCE"
#define OD_HTTP_CORS_ALLOW_HEADERS "Content-Type, X-API-Key, X-Request-Id"
#define OD_HTTP_CORS_EXPOSE_HEADERS "Location, Idempotent-Replayed, X-Request-Id, Retry-After"
#define OD_HTTP_DRAIN_POLL apr_time_from_msec(10)
/* Most body bytes read and thrown away to be able to answer 413 (or to ignore a GET's body). */
#define OD_HTTP_DISCARD_MAX (1024 * 1024)
/* Sent with every 401 (RFC 9110 11.6.1): how to authenticate. */
#define OD_HTTP_WWW_AUTHENTICATE "ApiKey realm=\"orderd\", header=\"X-API-Key\""

struct od_http_s {
    const od_settings_t *settings;
    /* Guarded by keys_lock (read while authenticating, written by a reload): the key set, the
     * pool that owns it, and the default rate limit. */
    apr_thread_rwlock_t *keys_lock;
    const od_keys_t *keys; /* NULL: everyone is anonymous */
    apr_pool_t *keys_pool;
    int default_rate;
    int default_burst;
    od_ratelimit_t *limits;
    od_ulid_source_t *ids; /* request ids */
    od_http_handler_t handler;
    od_metrics_t *metrics;
    od_log_t *log;
    apr_pool_t *pool;
    struct MHD_Daemon *daemon;
    apr_thread_pool_t *workers;
    od_conns_t *conns;    /* connection states and deadlines (od_conns) */
    const char *tls_cert; /* PEM, or NULL for plain HTTP */
    const char *tls_key;
    apr_hash_t *cors; /* allowed origins; NULL: CORS off; contains "*": any origin */
    int port;
    /* Counters shared by MHD threads, workers and the store's writer (which finishes deferred
     * requests); only touched with apr_atomic_*. */
    volatile apr_uint32_t queued;    /* pushed to the pool, not yet started by a worker */
    volatile apr_uint32_t running;   /* in a worker's run */
    volatile apr_uint32_t deferred;  /* handed on by the front step, not yet finished */
    volatile apr_uint32_t suspended; /* suspended, not yet resumed */
    volatile apr_uint32_t inflight;  /* suspended at some point, not yet completed */
    volatile apr_uint32_t stopping;
};

typedef enum od_req_state_e { OD_REQ_READING, OD_REQ_QUEUED, OD_REQ_DONE } od_req_state_e;

/* A request. Until it is suspended only its MHD thread touches it; while suspended only whoever
 * holds it (a worker, then possibly the SQLite writer); after MHD_resume_connection only the MHD
 * thread again (suspend and resume order the hand-overs). */
struct od_request_s {
    od_http_t *http;
    struct MHD_Connection *conn;
    apr_pool_t *pool;
    apr_time_t started;
    const char *method;
    const char *path;
    const char *caller;
    const char *request_id;
    const char *order_id; /* for the access log, if the request concerned one */
    od_route_t route;
    od_conns_entry_t *conn_entry; /* the connection's, in od_conns */
    od_req_state_e state;
    char *body;
    apr_size_t body_len;
    int too_large;        /* the body grew past max_body_bytes */
    int dispatched;       /* suspended once: counted in inflight until completed */
    int deferred;         /* counted in http->deferred until finished */
    void *data;           /* the handler's, between its steps */
    apr_size_t discarded; /* body bytes read and thrown away */
    /* The response. */
    int status;
    const char *content_type;
    const char *resp_body;
    apr_size_t resp_len;
    apr_table_t *headers;
    od_request_resumed_fn resumed; /* od_request_finish_then's, run once back on the MHD thread */
    void *resumed_baton;
};

/* ---- requests ---- */

apr_pool_t *od_request_pool(const od_request_t *r)
{
    return r->pool;
}

const char *od_request_method(const od_request_t *r)
{
    return r->method;
}

const char *od_request_path(const od_request_t *r)
{
    return r->path;
}

const char *od_request_caller(const od_request_t *r)
{
    return r->caller;
}

const char *od_request_id(const od_request_t *r)
{
    return r->request_id;
}

void od_request_set_order_id(od_request_t *r, const char *order_id)
{
    r->order_id = apr_pstrdup(r->pool, order_id);
}

const od_route_t *od_request_route(const od_request_t *r)
{
    return &r->route;
}

const char *od_request_body(const od_request_t *r, apr_size_t *len)
{
    *len = r->body_len;
    return r->body != NULL ? r->body : "";
}

void od_request_set_data(od_request_t *r, void *data)
{
    r->data = data;
}

void *od_request_data(const od_request_t *r)
{
    return r->data;
}

/* Counts @p r in @p mine unless queue_limit requests already wait, in @p mine and @p other
 * together (for a worker, or for the store): then answers 503 and returns 0. Approximate under
 * races, which is all a limit needs. */
static int od_http_make_room(od_request_t *r, volatile apr_uint32_t *mine,
                             volatile apr_uint32_t *other)
{
    apr_uint32_t waiting = apr_atomic_inc32(mine) + apr_atomic_read32(other);

    if (waiting >= (apr_uint32_t) r->http->settings->queue_limit) {
        apr_atomic_dec32(mine);
        od_request_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Service Unavailable",
                           "too many requests are waiting; retry shortly", NULL);
        return 0;
    }
    return 1;
}

/* The answer to a request that arrives or finishes its front step once the server is stopping. */
static void od_http_refuse_stopping(od_request_t *r)
{
    od_request_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    od_request_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Service Unavailable",
                       "the server is shutting down", NULL);
}

/* Takes @p r off its HTTP thread until od_request_finish; or, if the server has begun to stop,
 * answers 503 and returns 0. The request is counted in suspended before stopping is read, and
 * od_http_stop sets stopping before it reads suspended (atomic read-modify-writes, full
 * barriers both): either the drain waits for this request, or this request sees the stop. A
 * connection left suspended at MHD_stop_daemon would make libmicrohttpd abort the process. */
static int od_http_suspend(od_request_t *r)
{
    od_http_t *h = r->http;

    apr_atomic_inc32(&h->suspended);
    if (apr_atomic_read32(&h->stopping)) {
        apr_atomic_dec32(&h->suspended);
        od_http_refuse_stopping(r);
        return 0;
    }
    r->state = OD_REQ_QUEUED;
    r->dispatched = 1;
    apr_atomic_inc32(&h->inflight);
    MHD_suspend_connection(r->conn);
    return 1;
}

int od_request_defer(od_request_t *r)
{
    if (!od_http_make_room(r, &r->http->deferred, &r->http->queued)) {
        return 0;
    }
    if (!od_http_suspend(r)) {
        apr_atomic_dec32(&r->http->deferred);
        return 0;
    }
    r->deferred = 1;
    return 1;
}

void od_request_header(od_request_t *r, const char *name, const char *value)
{
    apr_table_add(r->headers, name, value);
}

void od_request_respond(od_request_t *r, int status, const char *content_type, const char *body,
                        apr_size_t len)
{
    r->status = status;
    r->content_type = content_type;
    r->resp_body = body;
    r->resp_len = len;
}

void od_request_problem(od_request_t *r, int status, const char *type, const char *title,
                        const char *detail, const apr_array_header_t *errors)
{
    const char *body = od_problem_render(status, type, title, detail, errors, r->pool);

    if ((status == MHD_HTTP_SERVICE_UNAVAILABLE || status == MHD_HTTP_TOO_MANY_REQUESTS) &&
        apr_table_get(r->headers, "Retry-After") == NULL) {
        apr_table_setn(r->headers, "Retry-After", "1");
    }
    od_request_respond(r, status, OD_PROBLEM_CONTENT_TYPE, body, strlen(body));
}

static od_request_t *od_request_create(od_http_t *h, struct MHD_Connection *conn, const char *url,
                                       const char *method)
{
    apr_pool_t *p = NULL;

    /* A child of the server pool: it inherits the pool abort function (our one out-of-memory
     * policy), and APR serialises child creation on the parent's allocator mutex. */
    apr_pool_create(&p, h->pool);
    od_request_t *r = apr_pcalloc(p, sizeof(*r));
    r->http = h;
    r->conn = conn;
    r->pool = p;
    r->started = apr_time_now();
    r->method = apr_pstrdup(p, method);
    r->path = apr_pstrdup(p, url);
    r->headers = apr_table_make(p, 4);
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->conn_entry = info != NULL ? info->socket_context : NULL;
    return r;
}

/* ---- answering ---- */

static enum MHD_Result od_http_send(od_request_t *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->resp_len, (void *) r->resp_body, MHD_RESPMEM_PERSISTENT);
    const apr_array_header_t *arr = apr_table_elts(r->headers);
    const apr_table_entry_t *e = (const apr_table_entry_t *) arr->elts;

    if (resp == NULL) {
        od_log_error(r->http->log, "http: MHD_create_response_from_buffer failed");
        return MHD_NO;
    }
    if (r->content_type != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    }
    for (int i = 0; i < arr->nelts; i++) {
        MHD_add_response_header(resp, e[i].key, e[i].val);
    }
    r->state = OD_REQ_DONE;
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned) r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result od_http_fail(od_request_t *r, int status, const char *title,
                                    const char *detail)
{
    od_request_problem(r, status, NULL, title, detail, NULL);
    return od_http_send(r);
}

/* ---- checks made before the body is read ---- */

static const char *od_http_lookup(od_request_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Authenticates the caller and takes a token from its bucket. Returns 0, or 401 / 429. */
static int od_http_admit(od_request_t *r, apr_interval_time_t *retry_after)
{
    od_http_t *h = r->http;
    double rate = 0;
    int burst = 0, status = 0;

    apr_thread_rwlock_rdlock(h->keys_lock);
    if (h->keys == NULL) {
        r->caller = OD_HTTP_ANONYMOUS;
    } else {
        const char *name = od_keys_lookup(h->keys, od_http_lookup(r, "X-API-Key"));
        r->caller = name != NULL ? apr_pstrdup(r->pool, name) : NULL;
        if (name != NULL) {
            od_keys_limits(h->keys, name, &rate, &burst);
        }
    }
    rate = rate > 0 ? rate : h->default_rate;
    burst = burst > 0 ? burst : h->default_burst;
    apr_thread_rwlock_unlock(h->keys_lock);
    if (r->caller == NULL) {
        status = MHD_HTTP_UNAUTHORIZED;
    } else if (!od_ratelimit_take(h->limits, r->caller, rate, burst, r->started, retry_after)) {
        status = MHD_HTTP_TOO_MANY_REQUESTS;
    }
    return status;
}

void od_http_reload(od_http_t *h, const od_keys_t *keys, apr_pool_t *keys_pool, int default_rate,
                    int default_burst)
{
    apr_thread_rwlock_wrlock(h->keys_lock);
    apr_pool_t *old = h->keys_pool;
    h->keys = keys;
    h->keys_pool = keys_pool;
    h->default_rate = default_rate;
    h->default_burst = default_burst;
    apr_thread_rwlock_unlock(h->keys_lock);
    /* No reader holds the lock any more, and names were copied into request pools. */
    if (old != NULL) {
        apr_pool_destroy(old);
    }
}

static char *od_http_trim(char *s)
{
    while (apr_isspace(*s)) {
        s++;
    }
    char *end = s + strlen(s);
    while (end > s && apr_isspace(end[-1])) {
        *--end = '\0';
    }
    return s;
}

/* application/json, optionally with parameters; a charset other than UTF-8 is refused. */
static int od_http_is_json(const char *ctype, apr_pool_t *p)
{
    char *state = NULL;
    char *copy = apr_pstrdup(p, ctype != NULL ? ctype : "");
    char *type = apr_strtok(copy, ";", &state);

    if (type == NULL || strcasecmp(od_http_trim(type), "application/json") != 0) {
        return 0;
    }
    for (char *param = apr_strtok(NULL, ";", &state); param != NULL;
         param = apr_strtok(NULL, ";", &state)) {
        param = od_http_trim(param);
        if (strncasecmp(param, "charset=", 8) == 0 && strcasecmp(param + 8, "utf-8") != 0 &&
            strcasecmp(param + 8, "\"utf-8\"") != 0) {
            return 0;
        }
    }
    return 1;
}

static enum MHD_Result od_http_check_body(od_request_t *r)
{
    od_http_t *h = r->http;
    const char *clen = od_http_lookup(r, MHD_HTTP_HEADER_CONTENT_LENGTH);

    if (clen != NULL && apr_atoi64(clen) > h->settings->max_body_bytes) {
        return od_http_fail(r, MHD_HTTP_CONTENT_TOO_LARGE, "Content Too Large",
                            apr_psprintf(r->pool, "the body must be at most %d bytes",
                                         h->settings->max_body_bytes));
    }
    if (!od_http_is_json(od_http_lookup(r, MHD_HTTP_HEADER_CONTENT_TYPE), r->pool)) {
        return od_http_fail(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type",
                            "the body must be sent as Content-Type: application/json");
    }
    return MHD_YES;
}

/* The first call for a request: route, authenticate, and check what can be checked before any
 * body is read (so a refused upload is never read, and 100-continue is never sent for it). */
/* ---- CORS ---- */

static apr_hash_t *od_http_cors_parse(const char *origins, apr_pool_t *p)
{
    apr_hash_t *set = NULL;
    char *copy = apr_pstrdup(p, origins != NULL ? origins : ""), *state = NULL;

    for (char *o = apr_strtok(copy, " ,\t", &state); o != NULL;
         o = apr_strtok(NULL, " ,\t", &state)) {
        set = set != NULL ? set : apr_hash_make(p);
        apr_hash_set(set, o, APR_HASH_KEY_STRING, o);
    }
    return set;
}

/* Adds CORS headers when the request's Origin is allowed; others get none. Returns whether the
 * origin was allowed. The set is read-only after creation, so lookups need no lock. */
static int od_http_cors(od_request_t *r)
{
    od_http_t *h = r->http;
    const char *origin = od_http_lookup(r, "Origin");

    if (h->cors == NULL || origin == NULL ||
        (apr_hash_get(h->cors, origin, APR_HASH_KEY_STRING) == NULL &&
         apr_hash_get(h->cors, "*", 1) == NULL)) {
        return 0;
    }
    apr_table_setn(r->headers, "Access-Control-Allow-Origin", apr_pstrdup(r->pool, origin));
    apr_table_setn(r->headers, "Vary", "Origin");
    apr_table_setn(r->headers, "Access-Control-Expose-Headers", OD_HTTP_CORS_EXPOSE_HEADERS);
    return 1;
}

/* A preflight (OPTIONS on a known path): answered here, before any key is asked for, since
 * browsers send none with it. */
static enum MHD_Result od_http_preflight(od_request_t *r)
{
    if (od_http_cors(r)) {
        apr_table_setn(r->headers, "Access-Control-Allow-Methods", r->route.allow);
        apr_table_setn(r->headers, "Access-Control-Allow-Headers", OD_HTTP_CORS_ALLOW_HEADERS);
        apr_table_setn(r->headers, "Access-Control-Max-Age", "600");
    }
    apr_table_setn(r->headers, MHD_HTTP_HEADER_ALLOW, r->route.allow);
    od_request_respond(r, MHD_HTTP_NO_CONTENT, NULL, "", 0);
    return od_http_send(r);
}

/* Takes the client's X-Request-Id when it is a sane token (so ids flow through a fleet of
 * services), else makes one; it is echoed in the answer and logged. */
static void od_http_request_id(od_request_t *r)
{
    const char *id = od_http_lookup(r, "X-Request-Id");
    apr_size_t n = id != NULL ? strlen(id) : 0;
    char ulid[OD_ULID_LEN + 1];

    if (n == 0 || n > 128 ||
        strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n) {
        id = od_ulid_source_next(r->http->ids, (char(*)[OD_ULID_LEN + 1]) ulid, 1, r->started) ==
                     APR_SUCCESS
                 ? ulid
                 : "-";
    }
    r->request_id = apr_pstrdup(r->pool, id);
    apr_table_setn(r->headers, "X-Request-Id", r->request_id);
}

/* A head whose framing or fields cannot be trusted (od_reqhead) is answered at once and the
 * connection closed: whatever follows on it may be a smuggled request. */
static int od_http_refuse_head(od_request_t *r, const char *method, const char *version,
                               enum MHD_Result *ret)
{
    od_reqhead_verdict_t v;

    if (od_http_head_check(r->conn, method, version,
                           (apr_size_t) r->http->settings->max_header_bytes, &v, r->pool) == 0) {
        return 0;
    }
    r->route.metric = OD_METRICS_OTHER;
    od_request_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    *ret = od_http_fail(r, v.status, v.title, v.detail);
    return 1;
}

/* @p method and @p version are libmicrohttpd's own strings (r->method is a copy). */
static enum MHD_Result od_http_first(od_request_t *r, const char *method, const char *version)
{
    od_http_t *h = r->http;
    enum MHD_Result ret = MHD_YES;

    od_http_request_id(r);
    od_conns_busy(h->conns, r->conn_entry);
    if (od_http_refuse_head(r, method, version, &ret)) {
        return ret;
    }
    h->handler.route(h->handler.baton, r->method, r->path, &r->route);
    if (strcmp(r->method, "OPTIONS") == 0 && r->route.status != MHD_HTTP_NOT_FOUND) {
        r->route.metric = OD_METRICS_OPTIONS;
        return od_http_preflight(r);
    }
    od_http_cors(r);
    if (r->route.status == MHD_HTTP_NOT_FOUND) {
        return od_http_fail(r, MHD_HTTP_NOT_FOUND, "Not Found", "no such resource");
    }
    if (r->route.status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        od_request_header(r, MHD_HTTP_HEADER_ALLOW, r->route.allow);
        return od_http_fail(r, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed",
                            apr_psprintf(r->pool, "allowed: %s", r->route.allow));
    }
    apr_interval_time_t wait = 0;
    int refused = r->route.is_public ? 0 : od_http_admit(r, &wait);
    if (refused == MHD_HTTP_UNAUTHORIZED) {
        od_request_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, OD_HTTP_WWW_AUTHENTICATE);
        return od_http_fail(r, MHD_HTTP_UNAUTHORIZED, "Unauthorized",
                            "a valid X-API-Key header is required");
    }
    if (refused == MHD_HTTP_TOO_MANY_REQUESTS) {
        apr_table_setn(
            r->headers, "Retry-After",
            apr_ltoa(r->pool, (long) ((wait + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC)));
        od_request_problem(r, MHD_HTTP_TOO_MANY_REQUESTS, NULL, "Too Many Requests",
                           "this caller's rate limit is exceeded; retry after the given delay",
                           NULL);
        return od_http_send(r);
    }
    return r->route.wants_body ? od_http_check_body(r) : MHD_YES;
}

/* Appends a body chunk. libmicrohttpd refuses a response while an upload is arriving, so a body
 * that grows past the limit (possible only when chunked) is remembered as too large, and the rest
 * is read and discarded so the 413 can be sent when the upload ends. Discarding is bounded: past
 * OD_HTTP_DISCARD_MAX the connection is dropped instead. */
static enum MHD_Result od_http_append(od_request_t *r, const char *data, size_t *size)
{
    apr_size_t max = (apr_size_t) r->http->settings->max_body_bytes;
    apr_size_t n = *size;

    *size = 0;
    if (r->too_large || !r->route.wants_body || r->body_len + n > max) {
        r->too_large = r->route.wants_body;
        r->discarded += n;
        if (r->discarded > OD_HTTP_DISCARD_MAX) {
            od_log_warn(r->http->log,
                        "http: %s %s: dropping connection after %lu discarded "
                        "body bytes",
                        r->method, r->path, (unsigned long) r->discarded);
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (r->body == NULL) {
        r->body = apr_palloc(r->pool, max + 1);
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return MHD_YES;
}

/* ---- the worker side ---- */

/* A handler step gave no answer: that is our bug, answered as one. */
static void od_http_check_answered(od_request_t *r)
{
    if (r->status == 0) {
        od_log_error(r->http->log, "http: handler gave no answer for %s %s", r->method, r->path);
        od_request_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "Internal Server Error", NULL,
                           NULL);
    }
}

/* Hands @p r back to its MHD thread. */
static void od_request_resume(od_request_t *r)
{
    od_http_t *h = r->http;

    r->state = OD_REQ_DONE;
    if (r->deferred) {
        apr_atomic_dec32(&h->deferred);
    }
    /* After the resume, the MHD thread may complete and free r at any moment. */
    MHD_resume_connection(r->conn);
    apr_atomic_dec32(&h->suspended);
}

void od_request_finish(od_request_t *r)
{
    od_http_check_answered(r);
    od_request_resume(r);
}

void od_request_finish_then(od_request_t *r, od_request_resumed_fn fn, void *baton)
{
    r->resumed = fn;
    r->resumed_baton = baton;
    od_request_resume(r);
}

static void *APR_THREAD_FUNC od_http_task(apr_thread_t *thread, void *data)
{
    od_request_t *r = data;
    od_http_t *h = r->http;

    apr_atomic_dec32(&h->queued);
    apr_atomic_inc32(&h->running);
    /* Deferred: whoever took the request on finishes it (and may already have). */
    od_http_run_e done = h->handler.run(h->handler.baton, r);
    apr_atomic_dec32(&h->running);
    if (done != OD_HTTP_DEFERRED) {
        od_request_finish(r);
    }
    return NULL;
}

/* Queues @p r for a worker with its connection suspended, or answers 503 when too many wait. */
static enum MHD_Result od_http_to_worker(od_request_t *r)
{
    od_http_t *h = r->http;

    if (!od_http_make_room(r, &h->queued, &h->deferred)) {
        return od_http_send(r);
    }
    if (!od_http_suspend(r)) {
        apr_atomic_dec32(&h->queued);
        return od_http_send(r);
    }
    apr_status_t rv = apr_thread_pool_push(h->workers, od_http_task, r, 0, NULL);
    if (rv != APR_SUCCESS) {
        od_log_error(h->log, "http: apr_thread_pool_push failed: %d", rv);
        apr_atomic_dec32(&h->queued);
        od_request_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Service Unavailable", NULL,
                           NULL);
        od_request_finish(r);
    }
    return MHD_YES;
}

/* The body is complete: the handler's front step, then (if it asks) a worker. */
static enum MHD_Result od_http_dispatch(od_request_t *r)
{
    od_http_t *h = r->http;

    if (r->too_large) {
        od_request_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
        return od_http_fail(r, MHD_HTTP_CONTENT_TOO_LARGE, "Content Too Large",
                            apr_psprintf(r->pool, "the body must be at most %d bytes",
                                         h->settings->max_body_bytes));
    }
    if (apr_atomic_read32(&h->stopping)) {
        od_http_refuse_stopping(r);
        return od_http_send(r);
    }
    switch (h->handler.front != NULL ? h->handler.front(h->handler.baton, r) : OD_HTTP_WORKER) {
    case OD_HTTP_ANSWERED:
        od_http_check_answered(r);
        return od_http_send(r);
    case OD_HTTP_DEFERRED:
        return MHD_YES; /* suspended by od_request_defer; resumed by od_request_finish */
    case OD_HTTP_WORKER:
        break;
    }
    return od_http_to_worker(r);
}

/* ---- libmicrohttpd callbacks ---- */

/* Back on the MHD thread after a resume: the answer, once. */
static enum MHD_Result od_http_resumed(od_request_t *r)
{
    od_request_resumed_fn fn = r->resumed;

    if (fn != NULL) {
        r->resumed = NULL;
        fn(r->resumed_baton, r);
        od_http_check_answered(r);
    }
    return r->status != 0 ? od_http_send(r) : MHD_YES;
}

static enum MHD_Result od_http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    od_request_t *r = *con_cls;

    if (r == NULL) {
        r = od_request_create(cls, conn, url, method);
        *con_cls = r;
        return od_http_first(r, method, version);
    }
    if (r->state == OD_REQ_DONE) {
        return od_http_resumed(r);
    }
    if (r->state == OD_REQ_QUEUED) {
        return MHD_YES; /* spurious call while suspended */
    }
    if (*upload_data_size > 0) {
        return od_http_append(r, upload_data, upload_data_size);
    }
    return od_http_dispatch(r);
}

/* One access line per request: never a key, a body or a credential. */
static void od_http_access_log(od_http_t *h, od_request_t *r, apr_interval_time_t took,
                               enum MHD_RequestTerminationCode toe)
{
    json_object *f = json_object_new_object();

    json_object_object_add(f, "msg", json_object_new_string("request"));
    json_object_object_add(f, "request_id", json_object_new_string(r->request_id));
    json_object_object_add(f, "method", json_object_new_string(r->method));
    json_object_object_add(f, "path", json_object_new_string(r->path));
    json_object_object_add(f, "status", json_object_new_int(r->status));
    json_object_object_add(f, "duration_ms", json_object_new_double((double) took / 1000.0));
    if (r->order_id != NULL) {
        json_object_object_add(f, "order_id", json_object_new_string(r->order_id));
    }
    if (r->caller != NULL) {
        json_object_object_add(f, "caller", json_object_new_string(r->caller));
    }
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        json_object_object_add(f, "completed", json_object_new_boolean(0));
    }
    od_log_fields(h->log, OD_LOG_INFO, f);
}

static void od_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    od_http_t *h = cls;
    od_request_t *r = *con_cls;

    if (r == NULL) {
        return;
    }
    apr_interval_time_t took = apr_time_now() - r->started;
    od_metrics_observe(h->metrics, r->route.metric, r->status, took);
    if (od_log_enabled(h->log, OD_LOG_INFO)) {
        od_http_access_log(h, r, took, toe);
    }
    *con_cls = NULL;
    od_conns_idle(h->conns, r->conn_entry, apr_time_now());
    if (r->dispatched) {
        apr_atomic_dec32(&h->inflight);
    }
    apr_pool_destroy(r->pool);
}

void od_http_stats(od_http_t *h, od_http_stats_t *out)
{
    out->queued = apr_atomic_read32(&h->queued);
    out->busy = apr_atomic_read32(&h->running);
    out->deferred = apr_atomic_read32(&h->deferred);
    out->workers = (unsigned int) h->settings->worker_threads;
    out->queue_limit = (unsigned int) h->settings->queue_limit;
    out->stopping = apr_atomic_read32(&h->stopping) != 0;
    od_conns_stats_t cs;
    od_conns_stats(h->conns, &cs);
    out->connections = cs.open;
    out->connections_idle = cs.idle;
    out->head_timeouts = cs.head_timeouts;
    out->evicted = cs.evicted;
}

/* The format attribute tells the compiler fmt is libmicrohttpd's printf format (clang's
 * -Wformat-nonliteral wants that said before it lets vsnprintf take a format it cannot see). */
__attribute__((format(printf, 2, 0))) static void od_http_mhd_log(void *cls, const char *fmt,
                                                                  va_list ap)
{
    od_http_t *h = cls;
    char msg[512];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    od_log_warn(h->log, "http: libmicrohttpd: %s", msg);
}

/* Connections come and go on libmicrohttpd's threads; od_conns watches their deadlines.
 * CLOSED comes before libmicrohttpd closes the socket. */
static void od_http_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                               enum MHD_ConnectionNotificationCode code)
{
    od_http_t *h = cls;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context =
            info != NULL ? od_conns_open(h->conns, info->connect_fd, apr_time_now()) : NULL;
    } else {
        od_conns_close(h->conns, *socket_context);
        *socket_context = NULL;
    }
}

/* ---- life cycle ---- */

/* Slots kept free for new clients by closing idle connections: 1/32 of the limit, 1 to 64. */
static int od_http_reserve(int max_connections)
{
    int reserve = max_connections / 32;
    return reserve < 1 ? 1 : reserve > 64 ? 64 : reserve;
}

static apr_status_t od_http_cleanup(void *data)
{
    od_http_stop(data, 0);
    return APR_SUCCESS;
}

apr_status_t od_http_create(od_http_t **out, const od_settings_t *settings, const od_keys_t *keys,
                            const od_http_handler_t *handler, od_metrics_t *metrics, od_log_t *log,
                            apr_pool_t *p)
{
    od_http_t *h = apr_pcalloc(p, sizeof(*h));

    *out = NULL;
    h->settings = settings;
    h->keys = keys;
    h->cors = od_http_cors_parse(settings->cors_allowed_origins, p);
    h->default_rate = settings->rate_limit_per_s;
    h->default_burst = settings->rate_limit_burst;
    h->handler = *handler;
    h->metrics = metrics;
    h->log = log;
    h->pool = p;
    apr_status_t rv = apr_thread_rwlock_create(&h->keys_lock, p);
    if (rv == APR_SUCCESS) {
        rv = od_ratelimit_create(&h->limits, p);
    }
    if (rv == APR_SUCCESS) {
        rv = od_ulid_source_create(&h->ids, p);
    }
    if (rv != APR_SUCCESS) {
        od_log_error(log, "http: creating the keys lock, rate limiter or id source failed: %d", rv);
        return rv;
    }
    rv = apr_thread_pool_create(&h->workers, (apr_size_t) settings->worker_threads,
                                (apr_size_t) settings->worker_threads, p);
    if (rv != APR_SUCCESS) {
        od_log_error(log, "http: apr_thread_pool_create(%d threads) failed: %d",
                     settings->worker_threads, rv);
        return rv;
    }
    od_conns_options_t co = {settings->max_connections, od_http_reserve(settings->max_connections),
                             apr_time_from_sec(settings->header_timeout_s),
                             apr_time_from_sec(settings->connection_timeout_s)};
    rv = od_conns_create(&h->conns, &co, log, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* A pre-cleanup, run before the connection tracker's (registered first): workers and MHD
     * must stop before the tracker and the pool's subpools go away. */
    apr_pool_pre_cleanup_register(p, h, od_http_cleanup);
    *out = h;
    return APR_SUCCESS;
}

static int od_http_sockaddr(const char *address, int port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *) ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short) port);
        return AF_INET;
    }
    if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short) port);
        return AF_INET6;
    }
    return -1;
}

apr_status_t od_http_start(od_http_t *h)
{
    const od_settings_t *s = h->settings;
    struct sockaddr_storage ss;
    int family = od_http_sockaddr(s->listen_address, s->listen_port, &ss);

    if (family < 0) {
        od_log_error(h->log, "http: listen_address '%s' is not a numeric IPv4 or IPv6 address",
                     s->listen_address);
        return OD_EUNAVAIL;
    }
    /* poll(), not epoll: quiescing an epoll daemon that runs its own threads races inside
     * libmicrohttpd (0.9.75: MHD_quiesce_daemon and the worker's MHD_epoll both remove the
     * listen FD, and the loser's epoll_ctl ENOENT is an MHD_PANIC, i.e. abort). It aborted
     * orderd twice on SIGTERM in the end-to-end suites once the HTTP threads did the front
     * step. With poll() the quiesce is signalled over the ITC instead. */
    unsigned int flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                         MHD_USE_ERROR_LOG | (family == AF_INET6 ? MHD_USE_IPv6 : 0) |
                         (h->tls_cert != NULL ? MHD_USE_TLS : 0);
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t) od_http_mhd_log, h},
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_THREAD_POOL_SIZE, s->http_threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, s->max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->max_connections_per_ip, NULL},
        /* Headers live in the connection's memory pool: capping it caps their size. */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t) s->max_header_bytes * 2, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, s->connection_timeout_s, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t) od_http_completed, h},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t) od_http_connection, h},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {h->tls_cert != NULL ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *) h->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *) h->tls_key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *) OD_HTTP_TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    h->daemon = MHD_start_daemon(flags, (uint16_t) s->listen_port, NULL, NULL, od_http_access, h,
                                 MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (h->daemon == NULL) {
        od_log_error(h->log,
                     "http: MHD_start_daemon on %s:%d failed (address in use, or for HTTPS a "
                     "certificate and key that do not match or cannot be parsed)",
                     s->listen_address, s->listen_port);
        return OD_EUNAVAIL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : s->listen_port;
    return od_conns_start(h->conns) == APR_SUCCESS ? APR_SUCCESS : OD_EUNAVAIL;
}

void od_http_set_tls(od_http_t *h, const char *cert_pem, const char *key_pem)
{
    h->tls_cert = cert_pem;
    h->tls_key = key_pem;
}

int od_http_port(const od_http_t *h)
{
    return h->port;
}

static void od_http_drain(od_http_t *h, apr_interval_time_t timeout)
{
    apr_time_t deadline = apr_time_now() + timeout;

    /* Requests still being uploaded were never acknowledged: they are not waited for. */
    while (apr_atomic_read32(&h->inflight) > 0 && apr_time_now() < deadline) {
        apr_sleep(OD_HTTP_DRAIN_POLL);
    }
    if (apr_atomic_read32(&h->suspended) > 0) {
        od_log_warn(h->log, "http: waiting for %u requests still being processed",
                    apr_atomic_read32(&h->suspended));
    }
    while (apr_atomic_read32(&h->suspended) > 0) {
        apr_sleep(OD_HTTP_DRAIN_POLL);
    }
}

void od_http_stop(od_http_t *h, apr_interval_time_t timeout)
{
    MHD_socket listener = MHD_INVALID_SOCKET;

    if (apr_atomic_xchg32(&h->stopping, 1) != 0) {
        return;
    }
    if (h->daemon != NULL) {
        /* MHD's threads may still poll the old listener, so it may only be closed after
         * MHD_stop_daemon; shutting it down now already refuses new connections. */
        listener = MHD_quiesce_daemon(h->daemon);
        if (listener != MHD_INVALID_SOCKET) {
            shutdown(listener, SHUT_RDWR);
        }
        od_http_drain(h, timeout);
    }
    if (h->workers != NULL) {
        apr_thread_pool_destroy(h->workers);
        h->workers = NULL;
    }
    if (h->daemon != NULL) {
        MHD_stop_daemon(h->daemon);
        h->daemon = NULL;
    }
    od_conns_stop(h->conns);
    if (listener != MHD_INVALID_SOCKET) {
        close(listener);
    }
}
