/* od_ratelimit: token buckets keyed by caller name. */
#include "od_ratelimit.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

typedef struct od_bucket_t {
    double tokens;
    apr_time_t last;
} od_bucket_t;

struct od_ratelimit_s {
    apr_pool_t *pool;
    /* Guarded by lock: the table and every bucket in it. One lock is enough: a take is a few
     * arithmetic operations. */
    apr_thread_mutex_t *lock;
    apr_hash_t *buckets; /* caller name -> od_bucket_t */
};

apr_status_t od_ratelimit_create(od_ratelimit_t **out, apr_pool_t *p)
{
    od_ratelimit_t *rl = apr_pcalloc(p, sizeof(*rl));

    *out = NULL;
    rl->pool = p;
    rl->buckets = apr_hash_make(p);
    apr_status_t rv = apr_thread_mutex_create(&rl->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        *out = rl;
    }
    return rv;
}

static od_bucket_t *od_ratelimit_bucket(od_ratelimit_t *rl, const char *caller, int burst,
                                        apr_time_t now)
{
    od_bucket_t *b = apr_hash_get(rl->buckets, caller, APR_HASH_KEY_STRING);

    if (b == NULL) {
        b = apr_palloc(rl->pool, sizeof(*b));
        b->tokens = burst;
        b->last = now;
        apr_hash_set(rl->buckets, apr_pstrdup(rl->pool, caller), APR_HASH_KEY_STRING, b);
    }
    return b;
}

int od_ratelimit_take(od_ratelimit_t *rl, const char *caller, double rate, int burst,
                      apr_time_t now, apr_interval_time_t *retry_after)
{
    int ok;

    if (rate <= 0) {
        return 1;
    }
    burst = burst < 1 ? 1 : burst;
    apr_thread_mutex_lock(rl->lock);
    od_bucket_t *b = od_ratelimit_bucket(rl, caller, burst, now);
    double refill = (double) (now - b->last) / (double) APR_USEC_PER_SEC * rate;
    b->tokens = b->tokens + refill > burst ? burst : b->tokens + refill;
    b->last = now > b->last ? now : b->last;
    ok = b->tokens >= 1.0;
    if (ok) {
        b->tokens -= 1.0;
    } else {
        *retry_after = (apr_interval_time_t) ((1.0 - b->tokens) / rate * APR_USEC_PER_SEC) + 1;
    }
    apr_thread_mutex_unlock(rl->lock);
    return ok;
}
