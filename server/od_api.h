/*
 * od_api: the orders API, as the handler od_http runs.
 *
 *   POST /orders        validate -> idempotency key -> hot cache -> store -> 201 / 200 replay
 *   GET  /orders/{id}   the caller's own order, 404 otherwise
 *
 * On the HTTP thread (front): POST /orders up to the hot cache, and the hand-over to a store that
 * never blocks (SQLite's writer); /healthz. On a worker (run): a blocking store's put (DynamoDB),
 * GET /orders/{id}, /readyz and /metrics.
 */
#ifndef OD_API_H
#define OD_API_H

#include "od_cache.h"
#include "od_config.h"
#include "od_http.h"
#include "od_log.h"
#include "od_order.h"
#include "od_outbox.h"
#include "od_store.h"

typedef struct od_api_s od_api_t;

/** What only the server context knows, for /readyz and /metrics. */
typedef struct od_api_probes_t {
    /** Whether orderd can take orders (store reachable, not stopping); if not, why. */
    int (*ready)(void *baton, const char **why, apr_pool_t *p);
    /** Appends every component's metrics (beyond the request and store metrics). */
    void (*metrics)(void *baton, od_metrics_text_t *text);
    void *baton;
} od_api_probes_t;

/**
 * Creates the API over its collaborators, which must outlive @p p. @p outbox is NULL when
 * events are off (events_sink = none): orders are then stored without an event. Returns APR_SUCCESS
 * and
 * @p *out. Thread-safe to use: it only reads its own fields after creation.
 */
apr_status_t od_api_create(od_api_t **out, const od_settings_t *settings,
                           const od_order_rules_t *rules, od_cache_t *cache, od_store_t *store,
                           od_outbox_t *outbox, od_metrics_t *metrics,
                           const od_api_probes_t *probes, od_log_t *log, apr_pool_t *p);

/** The od_http handler that serves this API; its baton is @p api. */
od_http_handler_t od_api_handler(od_api_t *api);

#endif
