/* od_sink: batching dispatch to a sink backend, through a fanout, and the "none" sink. */
#include "od_sink.h"
#include "od_fanout.h"

struct od_sink_s {
    const od_sink_ops_t *ops;
    void *impl;
    od_fanout_t *fanout; /* NULL: batches one after another on the caller's thread */
};

/* One od_sink_publish split into batches of `batch` events; batch b covers events
 * [b * batch, min(n, (b + 1) * batch)) and reports into status[b] and those results. */
typedef struct od_sink_call_t {
    od_sink_t *sink;
    const od_event_t *events;
    apr_status_t *results;
    apr_status_t *status;
    int n;
    int batch;
} od_sink_call_t;

apr_status_t od_sink_create(od_sink_t **out, const od_sink_ops_t *ops, void *impl,
                            int max_in_flight, od_log_t *log, apr_pool_t *p)
{
    od_sink_t *s = apr_pcalloc(p, sizeof(*s));

    *out = NULL;
    s->ops = ops;
    s->impl = impl;
    if (ops->max_batch > 0 && max_in_flight > 1) {
        apr_status_t rv = od_fanout_create(&s->fanout, max_in_flight, log, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    *out = s;
    return APR_SUCCESS;
}

/* A fanout call: one batch, in a pool of its own (the caller's pool is not thread-safe; a root
 * pool is). */
static void od_sink_batch(void *baton, int b)
{
    od_sink_call_t *c = baton;
    int from = b * c->batch, m = c->n - from < c->batch ? c->n - from : c->batch;
    apr_pool_t *p = NULL;
    apr_status_t rv = apr_pool_create(&p, NULL);

    if (rv == APR_SUCCESS) {
        rv = c->sink->ops->publish(c->sink->impl, c->events + from, m, c->results + from, p);
        apr_pool_destroy(p);
    } else {
        for (int i = from; i < from + m; i++) {
            c->results[i] = rv;
        }
    }
    c->status[b] = rv;
}

static apr_status_t od_sink_publish_serial(od_sink_t *sink, const od_event_t *events, int n,
                                           apr_status_t *results, apr_pool_t *p)
{
    apr_status_t first = APR_SUCCESS;
    int batch = sink->ops->max_batch > 0 ? sink->ops->max_batch : n;

    for (int i = 0; i < n; i += batch) {
        int m = n - i < batch ? n - i : batch;
        apr_status_t rv = sink->ops->publish(sink->impl, events + i, m, results + i, p);
        if (first == APR_SUCCESS && rv != APR_SUCCESS) {
            first = rv;
        }
    }
    return first;
}

apr_status_t od_sink_publish(od_sink_t *sink, const od_event_t *events, int n,
                             apr_status_t *results, apr_pool_t *p)
{
    /* One batch goes out from the caller's thread: a hand-over would only add to its latency. */
    if (sink->fanout == NULL || n <= sink->ops->max_batch) {
        return od_sink_publish_serial(sink, events, n, results, p);
    }
    int batches = (n + sink->ops->max_batch - 1) / sink->ops->max_batch;
    od_sink_call_t c = {.sink = sink,
                        .events = events,
                        .results = results,
                        .status = apr_pcalloc(p, sizeof(apr_status_t) * (apr_size_t) batches),
                        .n = n,
                        .batch = sink->ops->max_batch};
    apr_status_t first = APR_SUCCESS;

    od_fanout_run(sink->fanout, batches, od_sink_batch, &c);
    for (int b = 0; b < batches && first == APR_SUCCESS; b++) {
        first = c.status[b];
    }
    return first;
}

const char *od_sink_name(const od_sink_t *sink)
{
    return sink->ops->name;
}

static apr_status_t od_sink_none_publish(void *impl, const od_event_t *events, int n,
                                         apr_status_t *results, apr_pool_t *p)
{
    for (int i = 0; i < n; i++) {
        results[i] = APR_SUCCESS;
    }
    return APR_SUCCESS;
}

static const od_sink_ops_t od_sink_none_ops = {"none", 0, od_sink_none_publish};

apr_status_t od_sink_none_create(od_sink_t **out, apr_pool_t *p)
{
    return od_sink_create(out, &od_sink_none_ops, NULL, 1, NULL, p);
}
