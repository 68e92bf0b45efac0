/* od_sink: batching dispatch to a sink backend, and the "none" sink. */
#include "od_sink.h"

struct od_sink_s {
    const od_sink_ops_t *ops;
    void *impl;
};

apr_status_t od_sink_create(od_sink_t **out, const od_sink_ops_t *ops, void *impl, apr_pool_t *p)
{
    od_sink_t *s = apr_palloc(p, sizeof(*s));

    *out = NULL;
    s->ops = ops;
    s->impl = impl;
    *out = s;
    return APR_SUCCESS;
}

apr_status_t od_sink_publish(od_sink_t *sink, const od_event_t *events, int n,
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
    return od_sink_create(out, &od_sink_none_ops, NULL, p);
}
