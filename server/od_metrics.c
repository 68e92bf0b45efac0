/* od_metrics: lock-free request metrics and the Prometheus text format. */
#include "od_metrics.h"

#include <apr_strings.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

const double od_metrics_bounds_s[OD_METRICS_BUCKETS] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                                        0.05,   0.1,   0.25,  0.5,   1.0,  1e300};

/* The statuses orderd answers with; anything else is counted as "other". */
static const int od_metrics_codes[] = {200, 201, 204, 400, 401, 404, 405,
                                       413, 415, 429, 500, 503, 0};
#define OD_METRICS_CODES (sizeof(od_metrics_codes) / sizeof(od_metrics_codes[0]))

static const char *const od_metrics_route_names[OD_METRICS_ROUTES] = {
    "post_orders", "get_order", "healthz", "readyz", "metrics", "options", "other"};

typedef struct od_metrics_route_t {
    atomic_uint_fast64_t by_code[OD_METRICS_CODES];
    atomic_uint_fast64_t le[OD_METRICS_BUCKETS]; /* cumulative: <= bound */
    atomic_uint_fast64_t sum_us;
    atomic_uint_fast64_t count;
} od_metrics_route_t;

struct od_metrics_s {
    od_metrics_route_t routes[OD_METRICS_ROUTES];
    od_metrics_route_t store[OD_METRICS_STORE_OPS]; /* by_code[0]: errors */
};

static const char *const od_metrics_store_names[OD_METRICS_STORE_OPS] = {"put", "get"};

struct od_metrics_text_t {
    apr_pool_t *pool;
    char *buf;
    apr_size_t len;
    apr_size_t cap;
};

apr_status_t od_metrics_create(od_metrics_t **out, apr_pool_t *p)
{
    od_metrics_t *m = apr_pcalloc(p, sizeof(*m)); /* zeroed atomics are valid zero counters */

    *out = m;
    return APR_SUCCESS;
}

static apr_size_t od_metrics_code_index(int status)
{
    for (apr_size_t i = 0; i + 1 < OD_METRICS_CODES; i++) {
        if (od_metrics_codes[i] == status) {
            return i;
        }
    }
    return OD_METRICS_CODES - 1;
}

static void od_metrics_time(od_metrics_route_t *r, apr_interval_time_t duration)
{
    double s = (double) duration / (double) APR_USEC_PER_SEC;

    for (int i = 0; i < OD_METRICS_BUCKETS; i++) {
        if (s <= od_metrics_bounds_s[i]) {
            atomic_fetch_add_explicit(&r->le[i], 1, memory_order_relaxed);
        }
    }
    atomic_fetch_add_explicit(&r->sum_us, (uint_fast64_t) (duration > 0 ? duration : 0),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
}

void od_metrics_observe(od_metrics_t *m, od_metrics_route_e route, int status,
                        apr_interval_time_t duration)
{
    od_metrics_route_t *r = &m->routes[route < OD_METRICS_ROUTES ? route : OD_METRICS_OTHER];

    atomic_fetch_add_explicit(&r->by_code[od_metrics_code_index(status)], 1, memory_order_relaxed);
    od_metrics_time(r, duration);
}

void od_metrics_observe_store(od_metrics_t *m, od_metrics_store_op_e op, int failed,
                              apr_interval_time_t duration)
{
    od_metrics_route_t *r = &m->store[op];

    if (failed) {
        atomic_fetch_add_explicit(&r->by_code[0], 1, memory_order_relaxed);
    }
    od_metrics_time(r, duration);
}

/* ---- text ---- */

od_metrics_text_t *od_metrics_text_create(apr_pool_t *p)
{
    od_metrics_text_t *t = apr_pcalloc(p, sizeof(*t));

    t->pool = p;
    t->cap = 8192;
    t->buf = apr_palloc(p, t->cap);
    t->buf[0] = '\0';
    return t;
}

void od_metrics_printf(od_metrics_text_t *t, const char *fmt, ...)
{
    va_list ap;

    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            return;
        }
        if (t->len + (apr_size_t) n < t->cap) {
            t->len += (apr_size_t) n;
            return;
        }
        /* Grow (the old buffer stays in the pool until it is destroyed: one request's worth). */
        apr_size_t cap = (t->cap + (apr_size_t) n) * 2;
        char *grown = apr_palloc(t->pool, cap);
        memcpy(grown, t->buf, t->len + 1);
        t->buf = grown;
        t->cap = cap;
    }
}

void od_metrics_family(od_metrics_text_t *t, const char *name, const char *type, const char *help)
{
    od_metrics_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void od_metrics_le(od_metrics_text_t *t, const char *name, const char *label, double b,
                          apr_uint64_t v)
{
    char le[32];

    if (b >= 1e300) {
        apr_cpystrn(le, "+Inf", sizeof(le));
    } else {
        snprintf(le, sizeof(le), "%g", b);
    }
    od_metrics_printf(t, "%s_bucket{%s%sle=\"%s\"} %" APR_UINT64_T_FMT "\n", name,
                      label != NULL ? label : "", label != NULL ? "," : "", le, v);
}

void od_metrics_histogram(od_metrics_text_t *t, const char *name, const char *label,
                          const double *bounds_s, const apr_uint64_t *le, int n, double sum_s,
                          apr_uint64_t count)
{
    const char *braces_l = label != NULL ? "{" : "", *braces_r = label != NULL ? "}" : "";

    for (int i = 0; i < n; i++) {
        od_metrics_le(t, name, label, bounds_s[i], le[i]);
    }
    od_metrics_printf(t, "%s_sum%s%s%s %.6f\n", name, braces_l, label ? label : "", braces_r,
                      sum_s);
    od_metrics_printf(t, "%s_count%s%s%s %" APR_UINT64_T_FMT "\n", name, braces_l,
                      label ? label : "", braces_r, count);
}

static void od_metrics_write_route(od_metrics_route_t *r, const char *name, const char *label,
                                   od_metrics_text_t *t)
{
    apr_uint64_t le[OD_METRICS_BUCKETS];

    for (int i = 0; i < OD_METRICS_BUCKETS; i++) {
        le[i] = atomic_load_explicit(&r->le[i], memory_order_relaxed);
    }
    od_metrics_histogram(t, name, label, od_metrics_bounds_s, le, OD_METRICS_BUCKETS,
                         (double) atomic_load(&r->sum_us) / (double) APR_USEC_PER_SEC,
                         atomic_load(&r->count));
}

void od_metrics_write_requests(od_metrics_t *m, od_metrics_text_t *t)
{
    od_metrics_family(t, "orderd_http_requests_total", "counter",
                      "HTTP requests answered, by route and status code.");
    for (int r = 0; r < OD_METRICS_ROUTES; r++) {
        for (apr_size_t c = 0; c < OD_METRICS_CODES; c++) {
            apr_uint64_t v = atomic_load(&m->routes[r].by_code[c]);
            if (v == 0) {
                continue;
            }
            const char *code =
                od_metrics_codes[c] != 0 ? apr_itoa(t->pool, od_metrics_codes[c]) : "other";
            od_metrics_printf(
                t, "orderd_http_requests_total{route=\"%s\",code=\"%s\"} %" APR_UINT64_T_FMT "\n",
                od_metrics_route_names[r], code, v);
        }
    }
    od_metrics_family(t, "orderd_http_request_duration_seconds", "histogram",
                      "Time from the first header to the answer, by route.");
    for (int r = 0; r < OD_METRICS_ROUTES; r++) {
        od_metrics_write_route(&m->routes[r], "orderd_http_request_duration_seconds",
                               apr_psprintf(t->pool, "route=\"%s\"", od_metrics_route_names[r]), t);
    }
}

void od_metrics_write_store(od_metrics_t *m, od_metrics_text_t *t)
{
    od_metrics_family(t, "orderd_store_errors_total", "counter",
                      "Store calls that failed (unavailable, throttled, refused), by operation.");
    for (int i = 0; i < OD_METRICS_STORE_OPS; i++) {
        od_metrics_printf(t, "orderd_store_errors_total{op=\"%s\"} %" APR_UINT64_T_FMT "\n",
                          od_metrics_store_names[i],
                          (apr_uint64_t) atomic_load(&m->store[i].by_code[0]));
    }
    od_metrics_family(t, "orderd_store_operation_duration_seconds", "histogram",
                      "Store call latency, by operation (retries included).");
    for (int i = 0; i < OD_METRICS_STORE_OPS; i++) {
        od_metrics_write_route(&m->store[i], "orderd_store_operation_duration_seconds",
                               apr_psprintf(t->pool, "op=\"%s\"", od_metrics_store_names[i]), t);
    }
}

const char *od_metrics_text(const od_metrics_text_t *t, apr_size_t *len)
{
    *len = t->len;
    return t->buf;
}
