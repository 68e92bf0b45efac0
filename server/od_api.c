/* od_api: the orders API handlers. */
#include "od_api.h"
#include "od_canon.h"
#include "od_event.h"
#include "od_problem.h"
#include "od_status.h"
#include "od_ulid.h"

#include <apr_strings.h>
#include <microhttpd.h>
#include <string.h>

#define OD_API_JSON "application/json"
#define OD_API_INVALID_ORDER "urn:orderd:problem:invalid-order"
#define OD_API_ORDERS "/orders"

enum { OD_API_POST_ORDERS = 1, OD_API_GET_ORDER, OD_API_HEALTHZ, OD_API_READYZ, OD_API_METRICS };

struct od_api_s {
    const od_settings_t *settings;
    const od_order_rules_t *rules;
    od_cache_t *cache;
    od_store_t *store;
    od_outbox_t *outbox;
    od_metrics_t *metrics;
    od_api_probes_t probes;
    od_log_t *log;
    apr_interval_time_t ttl;
    apr_interval_time_t event_retry_after;
    od_sha256_t *hasher;
    od_ulid_source_t *ids; /* order and event ids */
};

apr_status_t od_api_create(od_api_t **out, const od_settings_t *settings,
                           const od_order_rules_t *rules, od_cache_t *cache, od_store_t *store,
                           od_outbox_t *outbox, od_metrics_t *metrics,
                           const od_api_probes_t *probes, od_log_t *log, apr_pool_t *p)
{
    od_api_t *api = apr_pcalloc(p, sizeof(*api));

    *out = NULL;
    api->settings = settings;
    api->rules = rules;
    api->cache = cache;
    api->store = store;
    api->outbox = outbox;
    api->metrics = metrics;
    api->probes = *probes;
    api->log = log;
    api->ttl = apr_time_from_sec(settings->idempotency_ttl_s);
    api->event_retry_after = apr_time_from_sec(settings->events_retry_after_s);
    apr_status_t rv = od_sha256_create(&api->hasher, p);
    if (rv != APR_SUCCESS) {
        od_log_error(log, "api: od_sha256_create failed (OpenSSL has no SHA-256)");
        return rv;
    }
    rv = od_ulid_source_create(&api->ids, p);
    if (rv != APR_SUCCESS) {
        od_log_error(log, "api: od_ulid_source_create failed: %d", rv);
        return rv;
    }
    *out = api;
    return APR_SUCCESS;
}

/* ---- routing (HTTP thread) ---- */

/* The operational endpoints: public (no API key), GET only. */
static int od_api_route_ops(const char *method, const char *path, od_route_t *route)
{
    static const struct {
        const char *path;
        int kind;
        od_metrics_route_e metric;
    } ops[] = {{"/healthz", OD_API_HEALTHZ, OD_METRICS_HEALTHZ},
               {"/readyz", OD_API_READYZ, OD_METRICS_READYZ},
               {"/metrics", OD_API_METRICS, OD_METRICS_METRICS}};

    for (apr_size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(path, ops[i].path) == 0) {
            route->kind = ops[i].kind;
            route->metric = ops[i].metric;
            route->is_public = 1;
            route->allow = "GET, HEAD";
            route->status = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0
                                ? 0
                                : MHD_HTTP_METHOD_NOT_ALLOWED;
            return 1;
        }
    }
    return 0;
}

static void od_api_route(void *baton, const char *method, const char *path, od_route_t *route)
{
    apr_size_t n = sizeof(OD_API_ORDERS) - 1;

    memset(route, 0, sizeof(*route));
    route->metric = OD_METRICS_OTHER;
    if (od_api_route_ops(method, path, route)) {
        return;
    }
    if (strcmp(path, OD_API_ORDERS) == 0) {
        route->kind = OD_API_POST_ORDERS;
        route->metric = OD_METRICS_ORDERS_POST;
        route->wants_body = 1;
        route->allow = "POST";
        route->status = strcmp(method, "POST") == 0 ? 0 : MHD_HTTP_METHOD_NOT_ALLOWED;
    } else if (strncmp(path, OD_API_ORDERS "/", n + 1) == 0 && path[n + 1] != '\0' &&
               strchr(path + n + 1, '/') == NULL) {
        route->kind = OD_API_GET_ORDER;
        route->metric = OD_METRICS_ORDERS_GET;
        route->allow = "GET, HEAD";
        route->status = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0
                            ? 0
                            : MHD_HTTP_METHOD_NOT_ALLOWED;
    } else {
        route->status = MHD_HTTP_NOT_FOUND;
    }
}

/* ---- answers ---- */

static void od_api_answer_order(od_request_t *r, int status, const char *order_id, const char *body,
                                apr_size_t len)
{
    od_request_set_order_id(r, order_id);
    od_request_header(r, MHD_HTTP_HEADER_LOCATION,
                      apr_pstrcat(od_request_pool(r), OD_API_ORDERS "/", order_id, NULL));
    od_request_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_OK && strcmp(od_request_method(r), "POST") == 0) {
        od_request_header(r, "Idempotent-Replayed", "true");
    }
    od_request_respond(r, status, OD_API_JSON, body, len);
}

static void od_api_answer_store_error(od_api_t *api, od_request_t *r, apr_status_t rv)
{
    int is_post = strcmp(od_request_method(r), "POST") == 0;
    char buf[128];

    /* The store has logged the cause. A write it sent without learning the outcome is not
     * "nothing was stored": the client is told that, and that the same request is a safe retry
     * (the idempotency record makes it return the order if it was stored). */
    if (rv == OD_EUNKNOWN) {
        od_request_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Service Unavailable",
                           apr_psprintf(od_request_pool(r),
                                        "the order store gave no answer on whether the order was"
                                        " stored: it may or may not have been. Retrying the same"
                                        " request within %d s (idempotency_ttl_s) is safe: it"
                                        " returns the order if it was stored",
                                        api->settings->idempotency_ttl_s),
                           NULL);
        return;
    }
    /* Refused credentials are the operator's to fix, not the client's: to the client the store
     * is unavailable, as it is during an outage. */
    if (rv == OD_EUNAVAIL || rv == OD_ETHROTTLED || rv == OD_ESHUTDOWN || rv == OD_EAUTH) {
        od_request_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Service Unavailable",
                           is_post ? "the order store is unavailable; nothing was stored, retry"
                                     " shortly"
                                   : "the order store is unavailable, retry shortly",
                           NULL);
        return;
    }
    od_log_error(api->log, "api: %s %s: store (%s) failed: %s", od_request_method(r),
                 od_request_path(r), od_store_name(api->store),
                 od_status_str(rv, buf, sizeof(buf)));
    od_request_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "Internal Server Error", NULL,
                       NULL);
}

/* ---- POST /orders ---- */

/* The order and its event, as the store is to write them in one atomic step. */
static apr_status_t od_api_record(od_api_t *api, od_store_order_t *rec, const od_order_t *order,
                                  const char *caller, const char *key, apr_time_t now,
                                  apr_pool_t *p)
{
    char(*ids)[OD_ULID_LEN + 1] = apr_palloc(p, 2 * sizeof(*ids));
    const char *order_id = ids[0], *event_id = ids[1];

    if (od_ulid_source_next(api->ids, ids, 2, now) != APR_SUCCESS) {
        od_log_error(api->log, "api: od_ulid_source_next failed (random generator)");
        return APR_EGENERAL;
    }
    const char *body = od_order_render(order, order_id, now, p);
    rec->caller = caller;
    rec->idem_key = key;
    rec->order_id = order_id;
    rec->body = body;
    rec->body_len = strlen(body);
    rec->created_at = now;
    rec->expires_at = now + api->ttl;
    if (api->outbox != NULL) {
        rec->event_id = event_id;
        rec->event = od_event_render(event_id, body, now, &rec->event_len, p);
        rec->event_due = now + api->event_retry_after;
    }
    return APR_SUCCESS;
}

/* A POST waiting for the store: lives in the request's pool. */
typedef struct od_api_put_t {
    od_api_t *api;
    od_request_t *r;
    const char *key;
    apr_time_t now;
    apr_time_t t0;
    od_store_order_t rec;
    od_store_result_t res;
    apr_status_t rv; /* the store's */
} od_api_put_t;

/* Back on the HTTP thread: the hot cache learns the order, and the client gets it. */
static void od_api_answer_stored(void *baton, od_request_t *r)
{
    od_api_put_t *put = baton;
    const od_store_result_t *res = &put->res;

    if (put->rv != APR_SUCCESS) {
        od_api_answer_store_error(put->api, r, put->rv);
        return;
    }
    od_cache_entry_t entry = {res->order_id, res->body, res->body_len, res->created_at};
    od_cache_put(put->api->cache, put->key, &entry, apr_time_now());
    od_api_answer_order(r, res->outcome == OD_STORE_CREATED ? MHD_HTTP_CREATED : MHD_HTTP_OK,
                        res->order_id, res->body, res->body_len);
}

/* The store's answer: on the store's writer thread, on the worker that ran a synchronous put, or
 * at once on the HTTP thread when the store is stopping. The event is handed to the outbox here,
 * right after the commit; the answer is left to the HTTP thread (od_api_answer_stored), so that
 * the writer goes on to its next batch sooner. */
static void od_api_stored(void *baton, apr_status_t rv)
{
    od_api_put_t *put = baton;
    od_api_t *api = put->api;
    const od_store_result_t *res = &put->res;

    put->rv = rv;
    od_metrics_observe_store(api->metrics, OD_METRICS_STORE_PUT, rv != APR_SUCCESS,
                             apr_time_now() - put->t0);
    if (rv == APR_SUCCESS && res->outcome == OD_STORE_CREATED && api->outbox != NULL) {
        od_store_event_t ev = {.event_id = put->rec.event_id,
                               .order_id = put->rec.order_id,
                               .event = put->rec.event,
                               .event_len = put->rec.event_len,
                               .created_at = put->now,
                               .seq = res->event_seq};
        od_outbox_submit(api->outbox, &ev);
    }
    od_request_finish_then(put->r, od_api_answer_stored, put);
}

/* Hands the order to the store, which completes the request (od_api_stored). */
static od_http_run_e od_api_put(od_api_put_t *put)
{
    put->t0 = apr_time_now();
    od_store_put_async(put->api->store, &put->rec, &put->res, od_api_stored, put,
                       od_request_pool(put->r));
    return OD_HTTP_DEFERRED;
}

/* The order is new to the hot cache: give it an id and let the store decide. A store that never
 * blocks (SQLite: its writer completes the request after the commit) is called from here, on the
 * HTTP thread; any other is called from a worker (od_api_run). */
static od_http_run_e od_api_store_new(od_api_t *api, od_request_t *r, const od_order_t *order,
                                      const char *key, apr_time_t now)
{
    apr_pool_t *p = od_request_pool(r);
    od_api_put_t *put = apr_pcalloc(p, sizeof(*put));

    put->api = api;
    put->r = r;
    put->key = key;
    put->now = now;
    if (od_api_record(api, &put->rec, order, od_request_caller(r), key, now, p) != APR_SUCCESS) {
        /* od_api_record has logged the cause. */
        od_request_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "Internal Server Error", NULL,
                           NULL);
        return OD_HTTP_ANSWERED;
    }
    if (!od_store_put_never_blocks(api->store)) {
        od_request_set_data(r, put);
        return OD_HTTP_WORKER;
    }
    if (!od_request_defer(r)) {
        return OD_HTTP_ANSWERED; /* 503: too many requests wait for the store */
    }
    return od_api_put(put);
}

/* On the HTTP thread: validation, hashing and the hot cache never block. */
static od_http_run_e od_api_post_order(od_api_t *api, od_request_t *r)
{
    apr_pool_t *p = od_request_pool(r);
    apr_array_header_t *errors = NULL;
    od_order_t *order = NULL;
    apr_size_t len = 0, clen = 0;
    const char *body = od_request_body(r, &len);

    if (od_order_parse(&order, &errors, api->rules, body, len, p) != APR_SUCCESS) {
        od_request_problem(r, MHD_HTTP_BAD_REQUEST, OD_API_INVALID_ORDER, "Invalid order",
                           "the order has errors; see errors for each bad field", errors);
        return OD_HTTP_ANSWERED;
    }
    const char *canonical = od_order_canonical(order, &clen);
    const char *key =
        od_canon_idempotency_key(api->hasher, od_request_caller(r), canonical, clen, p);
    apr_time_t now = apr_time_now();
    od_cache_entry_t hit;
    if (od_cache_get(api->cache, key, now, &hit, p) == APR_SUCCESS) {
        od_api_answer_order(r, MHD_HTTP_OK, hit.order_id, hit.body, hit.body_len);
        return OD_HTTP_ANSWERED;
    }
    return od_api_store_new(api, r, order, key, now);
}

/* ---- GET /orders/{id} ---- */

static void od_api_get_order(od_api_t *api, od_request_t *r)
{
    const char *text = od_request_path(r) + sizeof(OD_API_ORDERS);
    char id[OD_ULID_LEN + 1];
    od_store_result_t res;

    if (od_ulid_parse(id, text) != APR_SUCCESS) {
        apr_array_header_t *errors =
            apr_array_make(od_request_pool(r), 1, sizeof(od_field_error_t));
        od_problem_add(errors, "order_id", "must be a ULID (26 Crockford base32 characters)");
        od_request_problem(r, MHD_HTTP_BAD_REQUEST, NULL, "Bad Request", "invalid order id",
                           errors);
        return;
    }
    apr_time_t t0 = apr_time_now();
    apr_status_t rv = od_store_get(api->store, od_request_caller(r), id, &res, od_request_pool(r));
    od_metrics_observe_store(api->metrics, OD_METRICS_STORE_GET,
                             rv != APR_SUCCESS && rv != OD_ENOTFOUND, apr_time_now() - t0);
    if (rv == OD_ENOTFOUND) {
        od_request_problem(r, MHD_HTTP_NOT_FOUND, NULL, "Not Found", "no such order", NULL);
        return;
    }
    if (rv != APR_SUCCESS) {
        od_api_answer_store_error(api, r, rv);
        return;
    }
    od_request_set_order_id(r, id);
    od_request_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    od_request_respond(r, MHD_HTTP_OK, OD_API_JSON, res.body, res.body_len);
}

/* ---- operations ---- */

static void od_api_readyz(od_api_t *api, od_request_t *r)
{
    const char *why = NULL;
    static const char ready[] = "{\"status\":\"ready\"}";

    od_request_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (!api->probes.ready(api->probes.baton, &why, od_request_pool(r))) {
        od_request_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Service Unavailable", why, NULL);
        return;
    }
    od_request_respond(r, MHD_HTTP_OK, OD_API_JSON, ready, sizeof(ready) - 1);
}

static void od_api_metrics(od_api_t *api, od_request_t *r)
{
    od_metrics_text_t *t = od_metrics_text_create(od_request_pool(r));
    apr_size_t len = 0;

    od_metrics_write_requests(api->metrics, t);
    od_metrics_write_store(api->metrics, t);
    api->probes.metrics(api->probes.baton, t);
    const char *text = od_metrics_text(t, &len);
    od_request_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    od_request_respond(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* The HTTP thread's step: what never blocks is answered here, the rest goes to a worker. */
static od_http_run_e od_api_front(void *baton, od_request_t *r)
{
    od_api_t *api = baton;

    switch (od_request_route(r)->kind) {
    case OD_API_POST_ORDERS:
        return od_api_post_order(api, r);
    case OD_API_HEALTHZ:
        od_request_respond(r, MHD_HTTP_OK, OD_API_JSON, "{\"status\":\"ok\"}", 15);
        return OD_HTTP_ANSWERED;
    default:
        return OD_HTTP_WORKER;
    }
}

/* A worker's step: store reads, a blocking store's put, readiness probes, metrics. */
static od_http_run_e od_api_run(void *baton, od_request_t *r)
{
    od_api_t *api = baton;

    switch (od_request_route(r)->kind) {
    case OD_API_POST_ORDERS:
        return od_api_put(od_request_data(r));
    case OD_API_GET_ORDER:
        od_api_get_order(api, r);
        break;
    case OD_API_READYZ:
        od_api_readyz(api, r);
        break;
    case OD_API_METRICS:
        od_api_metrics(api, r);
        break;
    default:
        break;
    }
    return OD_HTTP_ANSWERED;
}

od_http_handler_t od_api_handler(od_api_t *api)
{
    od_http_handler_t h = {
        .route = od_api_route, .front = od_api_front, .run = od_api_run, .baton = api};
    return h;
}
