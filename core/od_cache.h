/*
 * od_cache: the in-process idempotency hot cache.
 *
 * Maps an idempotency key to the order it produced, so a duplicate within the TTL is answered
 * without a store call. The store stays the source of truth: a miss here is only a miss.
 *
 * Bounded by count and by time without freeing single entries (APR pools cannot): entries live
 * in two generations, each an apr_hash_t with its own pool. New entries go to the current
 * generation; when it is older than the TTL or holds max_entries/2 entries it becomes the previous
 * one and the old previous is cleared whole (apr_pool_clear), so memory stays flat however many
 * unique orders pass. An entry is live while now < created_at + ttl.
 */
#ifndef OD_CACHE_H
#define OD_CACHE_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct od_cache_s od_cache_t;

/** What the cache holds for one key. */
typedef struct od_cache_entry_t {
    const char *order_id;
    const char *body; /* the accepted-order document, replayed byte for byte */
    apr_size_t body_len;
    apr_time_t created_at; /* when the original order was accepted */
} od_cache_entry_t;

/** Counters; a snapshot. */
typedef struct od_cache_stats_t {
    apr_uint64_t hits;
    apr_uint64_t misses;
    apr_uint64_t rotations;
    apr_size_t entries;
} od_cache_stats_t;

/**
 * Creates a cache holding at most @p max_entries (>= 2) live entries for @p ttl.
 * Returns APR_SUCCESS and @p *out; APR_EINVAL for bad limits; or the status of creating its
 * mutex. The cache, its generations' pools (subpools of @p p) and its mutex live until @p p is
 * destroyed. Thread-safe: every function below may be called from any thread.
 */
apr_status_t od_cache_create(od_cache_t **out, apr_size_t max_entries, apr_interval_time_t ttl,
                             apr_pool_t *p);

/**
 * Looks up @p key at time @p now. On a live hit copies the entry into @p *entry (strings copied
 * into @p p, so they outlive any rotation) and returns APR_SUCCESS; otherwise APR_NOTFOUND.
 */
apr_status_t od_cache_get(od_cache_t *cache, const char *key, apr_time_t now,
                          od_cache_entry_t *entry, apr_pool_t *p);

/**
 * Inserts (or replaces) @p key with a copy of @p entry, at time @p now. An entry that is already
 * dead (now >= created_at + ttl) is not stored.
 */
void od_cache_put(od_cache_t *cache, const char *key, const od_cache_entry_t *entry,
                  apr_time_t now);

/**
 * Fills @p out with the counters and the number of entries held (live or not yet dropped; a key
 * put again after a rotation counts once in each generation until the older one is dropped).
 */
void od_cache_stats(od_cache_t *cache, od_cache_stats_t *out);

#endif
