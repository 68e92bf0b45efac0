/*
 * od_cache: the idempotency hot cache, in two generations.
 *
 * APR pools free nothing until they are cleared, so a single long-lived hash would grow with
 * every unique key ever seen. Instead each generation owns a pool; rotation clears the older
 * one whole and reuses it, which bounds memory by two generations' worth of entries.
 */
#include "od_cache.h"

#include <apr_allocator.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <string.h>

/*
 * One generation: a hash of key -> od_cache_entry_t *, all allocated from its own pool. The
 * hash's buckets and its own small entries live in a subpool, packed together instead of one
 * beside each ~0.5 KiB order: looking up a new key walks them (cache misses) and never touches
 * an order. Single-threaded, a miss took 390 ns instead of 470 that way.
 */
typedef struct od_cache_gen_t {
    apr_pool_t *pool;  /* the orders (od_cache_entry_store) */
    apr_pool_t *table; /* a subpool of pool: the hash */
    apr_hash_t *hash;
    apr_time_t started; /* time of the first put into this generation */
    apr_size_t puts;    /* puts since the last clear, replacements included */
} od_cache_gen_t;

struct od_cache_s {
    apr_size_t max_entries;    /* immutable after create */
    apr_interval_time_t ttl;   /* immutable after create */
    apr_thread_mutex_t *mutex; /* immutable after create */
    /*
     * Locking rule: every field below is read and written only while holding mutex. That
     * includes the generations' pools and hashes (and so every byte of every entry), which is
     * also why the generation allocators need no mutex of their own.
     */
    od_cache_gen_t gens[2];
    od_cache_gen_t *current;
    od_cache_gen_t *previous;
    apr_uint64_t hits;
    apr_uint64_t misses;
    apr_uint64_t rotations;
};

/*
 * Each generation gets its own allocator (owned by, and destroyed with, the generation's pool)
 * instead of sharing the allocator of the caller's pool:
 * - apr_pool_clear hands the generation's blocks back to that allocator's free list, and the
 *   same generation refills them after the next rotation, so the process footprint settles at
 *   the high-water mark of two generations and stays there.
 * - Nothing else can take those free blocks, and we never touch an allocator that other threads
 *   use; ours are only used under the cache mutex, so they need no mutex.
 * max_free is left unlimited on purpose: what a generation can hold is already bounded by
 * max_entries/2 puts, and capping the free list would only make every rotation free() blocks
 * that the next generation immediately malloc()s again.
 */
static apr_status_t od_cache_gen_init(od_cache_gen_t *gen, apr_pool_t *parent)
{
    apr_allocator_t *allocator;
    apr_status_t rv = apr_allocator_create(&allocator);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_pool_create_ex(&gen->pool, parent, NULL, allocator);
    if (rv != APR_SUCCESS) {
        apr_allocator_destroy(allocator);
        return rv;
    }
    apr_allocator_owner_set(allocator, gen->pool);
    rv = apr_pool_create(&gen->table, gen->pool);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(gen->pool); /* and the allocator it owns */
        return rv;
    }
    gen->hash = apr_hash_make(gen->table);
    gen->started = 0;
    gen->puts = 0;
    return APR_SUCCESS;
}

/* Empties a generation; its memory stays with its allocator for reuse. */
static void od_cache_gen_reset(od_cache_gen_t *gen)
{
    apr_pool_clear(gen->pool); /* this destroys the table's subpool */
    /* Out of memory here ends in the pool's abort function, orderd's one policy for it. */
    apr_pool_create(&gen->table, gen->pool);
    gen->hash = apr_hash_make(gen->table);
    gen->started = 0;
    gen->puts = 0;
}

apr_status_t od_cache_create(od_cache_t **out, apr_size_t max_entries, apr_interval_time_t ttl,
                             apr_pool_t *p)
{
    apr_pool_t *pool;
    od_cache_t *cache;
    apr_status_t rv;

    *out = NULL;
    if (max_entries < 2 || ttl <= 0) {
        return APR_EINVAL;
    }
    /* A private subpool so that a failure half-way can be undone by destroying it. */
    rv = apr_pool_create(&pool, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    cache = apr_pcalloc(pool, sizeof(*cache));
    cache->max_entries = max_entries;
    cache->ttl = ttl;
    rv = apr_thread_mutex_create(&cache->mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    if (rv == APR_SUCCESS) {
        rv = od_cache_gen_init(&cache->gens[0], pool);
    }
    if (rv == APR_SUCCESS) {
        rv = od_cache_gen_init(&cache->gens[1], pool);
    }
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(pool);
        return rv;
    }
    cache->current = &cache->gens[0];
    cache->previous = &cache->gens[1];
    *out = cache;
    return APR_SUCCESS;
}

/* The entry for @p key, preferring the current generation (it holds the newer put). Locked. */
static const od_cache_entry_t *od_cache_find(od_cache_t *cache, const char *key)
{
    const od_cache_entry_t *e = apr_hash_get(cache->current->hash, key, APR_HASH_KEY_STRING);

    if (e == NULL) {
        e = apr_hash_get(cache->previous->hash, key, APR_HASH_KEY_STRING);
    }
    return e;
}

static int od_cache_is_live(const od_cache_t *cache, const od_cache_entry_t *e, apr_time_t now)
{
    return now < e->created_at + cache->ttl;
}

/* Copies @p src, strings included, into @p p. body gets a NUL after body_len for convenience. */
static void od_cache_entry_copy(od_cache_entry_t *dst, const od_cache_entry_t *src, apr_pool_t *p)
{
    char *body = apr_palloc(p, src->body_len + 1);

    if (src->body_len > 0) {
        memcpy(body, src->body, src->body_len);
    }
    body[src->body_len] = '\0';
    dst->order_id = apr_pstrdup(p, src->order_id);
    dst->body = body;
    dst->body_len = src->body_len;
    dst->created_at = src->created_at;
}

apr_status_t od_cache_get(od_cache_t *cache, const char *key, apr_time_t now,
                          od_cache_entry_t *entry, apr_pool_t *p)
{
    const od_cache_entry_t *e;
    apr_status_t rv = APR_NOTFOUND;

    apr_thread_mutex_lock(cache->mutex);
    e = od_cache_find(cache, key);
    if (e != NULL && od_cache_is_live(cache, e, now)) {
        /* Copied under the lock: a rotation by another thread may clear the entry's pool. */
        od_cache_entry_copy(entry, e, p);
        cache->hits++;
        rv = APR_SUCCESS;
    } else {
        cache->misses++;
    }
    apr_thread_mutex_unlock(cache->mutex);
    return rv;
}

/*
 * Rotates when the current generation is old or full. "Full" counts puts, not distinct keys,
 * so that replacing one key over and over cannot grow a pool without bound either. Locked.
 */
static void od_cache_maybe_rotate(od_cache_t *cache, apr_time_t now)
{
    od_cache_gen_t *cur = cache->current;
    od_cache_gen_t *old;

    if (cur->puts == 0) {
        return;
    }
    if (cur->puts < cache->max_entries / 2 && now - cur->started < cache->ttl) {
        return;
    }
    old = cache->previous;
    od_cache_gen_reset(old);
    cache->previous = cur;
    cache->current = old;
    cache->rotations++;
}

/* One block per entry, in the generation's pool: the entry, then its key, order id and body. */
static const char *od_cache_entry_store(od_cache_entry_t **out, const char *key,
                                        const od_cache_entry_t *src, apr_pool_t *p)
{
    apr_size_t klen = strlen(key) + 1, ilen = strlen(src->order_id) + 1;
    od_cache_entry_t *e = apr_palloc(p, sizeof(*e) + klen + ilen + src->body_len + 1);
    char *k = (char *) (e + 1), *id = k + klen, *body = id + ilen;

    memcpy(k, key, klen);
    memcpy(id, src->order_id, ilen);
    if (src->body_len > 0) {
        memcpy(body, src->body, src->body_len);
    }
    body[src->body_len] = '\0';
    e->order_id = id;
    e->body = body;
    e->body_len = src->body_len;
    e->created_at = src->created_at;
    *out = e;
    return k;
}

void od_cache_put(od_cache_t *cache, const char *key, const od_cache_entry_t *entry, apr_time_t now)
{
    od_cache_gen_t *cur;
    od_cache_entry_t *copy;

    if (!od_cache_is_live(cache, entry, now)) {
        return;
    }
    apr_thread_mutex_lock(cache->mutex);
    od_cache_maybe_rotate(cache, now);
    cur = cache->current;
    if (cur->puts == 0) {
        cur->started = now;
    }
    cur->puts++;
    const char *k = od_cache_entry_store(&copy, key, entry, cur->pool);
    /* A copy of the key in the previous generation is left there: od_cache_find prefers this
     * one, and that generation goes whole at the next rotation. Dropping it would cost a probe
     * of the previous table per put, a cache miss or two for a new key, which is almost every
     * put. */
    apr_hash_set(cur->hash, k, APR_HASH_KEY_STRING, copy);
    apr_thread_mutex_unlock(cache->mutex);
}

void od_cache_stats(od_cache_t *cache, od_cache_stats_t *out)
{
    apr_thread_mutex_lock(cache->mutex);
    out->hits = cache->hits;
    out->misses = cache->misses;
    out->rotations = cache->rotations;
    out->entries = apr_hash_count(cache->current->hash) + apr_hash_count(cache->previous->hash);
    apr_thread_mutex_unlock(cache->mutex);
}
