/* od_store: dispatch to the configured backend. */
#include "od_store.h"

#include <string.h>

struct od_store_s {
    const od_store_ops_t *ops;
    void *impl;
};

apr_status_t od_store_create(od_store_t **out, const od_store_ops_t *ops, void *impl, apr_pool_t *p)
{
    od_store_t *store = apr_palloc(p, sizeof(*store));

    *out = NULL;
    store->ops = ops;
    store->impl = impl;
    *out = store;
    return APR_SUCCESS;
}

apr_status_t od_store_put(od_store_t *store, const od_store_order_t *order,
                          od_store_result_t *result, apr_pool_t *p)
{
    return store->ops->put(store->impl, order, result, p);
}

void od_store_put_async(od_store_t *store, const od_store_order_t *order, od_store_result_t *result,
                        od_store_done_fn done, void *baton, apr_pool_t *p)
{
    if (store->ops->put_async != NULL) {
        store->ops->put_async(store->impl, order, result, done, baton, p);
        return;
    }
    done(baton, store->ops->put(store->impl, order, result, p));
}

int od_store_put_never_blocks(const od_store_t *store)
{
    return store->ops->put_async != NULL;
}

apr_status_t od_store_get(od_store_t *store, const char *caller, const char *order_id,
                          od_store_result_t *result, apr_pool_t *p)
{
    return store->ops->get(store->impl, caller, order_id, result, p);
}

void od_store_stats(od_store_t *store, od_store_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (store->ops->stats != NULL) {
        store->ops->stats(store->impl, out);
    }
}

const char *od_store_name(const od_store_t *store)
{
    return store->ops->name;
}

apr_status_t od_store_pending(od_store_t *store, apr_time_t due_before, int max,
                              apr_array_header_t **events, apr_pool_t *p)
{
    return store->ops->pending(store->impl, due_before, max, events, p);
}

apr_status_t od_store_published(od_store_t *store, const od_store_event_t *events, int n,
                                apr_pool_t *p)
{
    return n > 0 ? store->ops->published(store->impl, events, n, p) : APR_SUCCESS;
}

apr_status_t od_store_reschedule(od_store_t *store, const od_store_event_t *event, apr_time_t due,
                                 apr_pool_t *p)
{
    return store->ops->reschedule(store->impl, event, due, p);
}

apr_status_t od_store_claim(od_store_t *store, apr_array_header_t *events,
                            apr_interval_time_t lease, apr_pool_t *p)
{
    if (store->ops->claim == NULL || events->nelts == 0) {
        return APR_SUCCESS;
    }
    return store->ops->claim(store->impl, events, lease, p);
}

apr_status_t od_store_backlog(od_store_t *store, volatile apr_uint32_t *stop, apr_size_t *count,
                              apr_time_t *oldest, apr_pool_t *p)
{
    *count = 0;
    *oldest = 0;
    return store->ops->backlog != NULL ? store->ops->backlog(store->impl, stop, count, oldest, p)
                                       : APR_ENOTIMPL;
}
