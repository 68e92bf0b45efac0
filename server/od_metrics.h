/*
 * od_metrics: request counters and latency histograms, and a Prometheus text-format writer for
 * those and for every other component's counters.
 *
 * Recording is lock-free (C11 atomics), so it costs a few atomic adds per request.
 */
#ifndef OD_METRICS_H
#define OD_METRICS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/** The routes requests are counted under. */
typedef enum od_metrics_route_e {
    OD_METRICS_ORDERS_POST,
    OD_METRICS_ORDERS_GET,
    OD_METRICS_HEALTHZ,
    OD_METRICS_READYZ,
    OD_METRICS_METRICS,
    OD_METRICS_OPTIONS,
    OD_METRICS_OTHER,
    OD_METRICS_ROUTES
} od_metrics_route_e;

#define OD_METRICS_BUCKETS 12
/** Histogram bucket upper bounds in seconds (the last is +Inf). */
extern const double od_metrics_bounds_s[OD_METRICS_BUCKETS];

typedef struct od_metrics_s od_metrics_t;

/** A text being built (Prometheus exposition); grows in its pool. */
typedef struct od_metrics_text_t od_metrics_text_t;

/** Creates the counters (all zero). Returns APR_SUCCESS and @p *out, alive as long as @p p. */
apr_status_t od_metrics_create(od_metrics_t **out, apr_pool_t *p);

/** Counts one finished request. Thread-safe and lock-free. */
void od_metrics_observe(od_metrics_t *m, od_metrics_route_e route, int status,
                        apr_interval_time_t duration);

/** Store operations timed by od_metrics_observe_store. */
typedef enum od_metrics_store_op_e {
    OD_METRICS_STORE_PUT,
    OD_METRICS_STORE_GET,
    OD_METRICS_STORE_OPS
} od_metrics_store_op_e;

/** Counts one store call and whether it failed (unavailable, throttled...). Lock-free. */
void od_metrics_observe_store(od_metrics_t *m, od_metrics_store_op_e op, int failed,
                              apr_interval_time_t duration);

/** Appends orderd_store_operation_duration_seconds and orderd_store_errors_total. */
void od_metrics_write_store(od_metrics_t *m, od_metrics_text_t *t);

/** Starts a text in @p p. */
od_metrics_text_t *od_metrics_text_create(apr_pool_t *p);

/** Appends printf-style output. */
void od_metrics_printf(od_metrics_text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Appends "# HELP" and "# TYPE" lines for a metric family. */
void od_metrics_family(od_metrics_text_t *t, const char *name, const char *type, const char *help);

/**
 * Appends a histogram family @p name from cumulative counts @p le (one per bound in
 * @p bounds_s, the last being +Inf), a sum in seconds and a count, with an optional label
 * pair @p label ("route=\"x\"") or NULL.
 */
void od_metrics_histogram(od_metrics_text_t *t, const char *name, const char *label,
                          const double *bounds_s, const apr_uint64_t *le, int n, double sum_s,
                          apr_uint64_t count);

/** Appends the request metrics (orderd_http_requests_total, ..._duration_seconds). */
void od_metrics_write_requests(od_metrics_t *m, od_metrics_text_t *t);

/** The text so far (NUL-terminated) and its length. */
const char *od_metrics_text(const od_metrics_text_t *t, apr_size_t *len);

#endif
