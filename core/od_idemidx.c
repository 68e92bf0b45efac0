/* od_idemidx: the embedded store's idempotency index, in memory. */
#include "od_idemidx.h"

#include <apr_general.h>
#include <stdlib.h>
#include <string.h>

#define OD_IDEMIDX_MIN 16

typedef struct od_idemidx_entry_t {
    apr_uint64_t fp;
    apr_int64_t row;
    apr_time_t expires_at;
} od_idemidx_entry_t;

struct od_idemidx_s {
    apr_pool_t *parent;
    apr_pool_t *pool;         /* holds ring and slots; replaced whole when the index doubles */
    od_idemidx_entry_t *ring; /* capacity entries in the order added; the oldest at head */
    apr_uint32_t *slots;      /* 2 * capacity: 0 is empty, else a ring index + 1 */
    apr_size_t capacity;      /* a power of two */
    apr_size_t head;
    apr_size_t count;
    apr_uint64_t secret[2];
};

/* Allocates a zeroed ring and table for @p capacity entries in a pool of their own: zeroing
 * touches every page now, so the resident size does not creep up as the table fills. */
static void od_idemidx_alloc(od_idemidx_t *ix, apr_size_t capacity)
{
    apr_pool_t *pool = NULL;

    if (apr_pool_create(&pool, ix->parent) != APR_SUCCESS) {
        abort(); /* out of memory: APR has already called the pool's abort function, if any */
    }
    ix->pool = pool;
    ix->capacity = capacity;
    ix->ring = apr_pcalloc(pool, capacity * sizeof(*ix->ring));
    ix->slots = apr_pcalloc(pool, 2 * capacity * sizeof(*ix->slots));
}

apr_status_t od_idemidx_create(od_idemidx_t **out, apr_size_t capacity, apr_pool_t *p)
{
    od_idemidx_t *ix = apr_pcalloc(p, sizeof(*ix));
    apr_size_t cap = OD_IDEMIDX_MIN;

    *out = NULL;
    apr_status_t rv = apr_generate_random_bytes((unsigned char *) ix->secret, sizeof(ix->secret));
    if (rv != APR_SUCCESS) {
        return rv;
    }
    while (cap < capacity) {
        cap *= 2;
    }
    ix->parent = p;
    od_idemidx_alloc(ix, cap);
    *out = ix;
    return APR_SUCCESS;
}

/* FNV-1a over the bytes of @p s and its terminating NUL (which keeps ("ab","c") and ("a","bc")
 * apart). */
static apr_uint64_t od_idemidx_fnv(apr_uint64_t h, const char *s)
{
    const unsigned char *c = (const unsigned char *) s;

    do {
        h ^= *c;
        h *= APR_UINT64_C(0x100000001b3);
    } while (*c++ != '\0');
    return h;
}

apr_uint64_t od_idemidx_fingerprint(const od_idemidx_t *ix, const char *caller,
                                    const char *idem_key)
{
    apr_uint64_t h = APR_UINT64_C(0xcbf29ce484222325) ^ ix->secret[0];

    h = od_idemidx_fnv(od_idemidx_fnv(h, caller), idem_key) ^ ix->secret[1];
    /* MurmurHash3's finalizer: every bit of the result depends on every bit of h, so the low
     * bits that pick the slot are as good as the rest. */
    h ^= h >> 33;
    h *= APR_UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= APR_UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h != 0 ? h : 1;
}

static apr_size_t od_idemidx_mask(const od_idemidx_t *ix)
{
    return 2 * ix->capacity - 1;
}

void od_idemidx_find(const od_idemidx_t *ix, apr_uint64_t fp, apr_time_t now, od_idemidx_iter_t *it)
{
    it->fp = fp;
    it->slot = (apr_size_t) fp & od_idemidx_mask(ix);
    it->now = now;
}

int od_idemidx_next(const od_idemidx_t *ix, od_idemidx_iter_t *it, apr_int64_t *row)
{
    apr_size_t mask = od_idemidx_mask(ix);

    while (ix->slots[it->slot] != 0) {
        const od_idemidx_entry_t *e = &ix->ring[ix->slots[it->slot] - 1];
        it->slot = (it->slot + 1) & mask;
        if (e->fp == it->fp && e->expires_at > it->now) {
            *row = e->row;
            return 1;
        }
    }
    return 0;
}

/* Puts ring index @p at into the first free slot of its fingerprint's run. */
static void od_idemidx_link(od_idemidx_t *ix, apr_size_t at)
{
    apr_size_t mask = od_idemidx_mask(ix);
    apr_size_t s = (apr_size_t) ix->ring[at].fp & mask;

    while (ix->slots[s] != 0) {
        s = (s + 1) & mask;
    }
    ix->slots[s] = (apr_uint32_t) (at + 1);
}

/* Removes ring index @p at from the table. Linear probing without tombstones: each later
 * entry of the run moves back into the hole unless its home slot lies after the hole (Knuth,
 * TAOCP 6.4, algorithm R), so lookups never pass over dead slots. */
static void od_idemidx_unlink(od_idemidx_t *ix, apr_size_t at)
{
    apr_size_t mask = od_idemidx_mask(ix);
    apr_size_t hole = (apr_size_t) ix->ring[at].fp & mask;

    while (ix->slots[hole] != at + 1) {
        hole = (hole + 1) & mask;
    }
    for (apr_size_t j = (hole + 1) & mask; ix->slots[j] != 0; j = (j + 1) & mask) {
        apr_size_t home = (apr_size_t) ix->ring[ix->slots[j] - 1].fp & mask;
        /* Stays if home is cyclically within (hole, j]. */
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            ix->slots[hole] = ix->slots[j];
            hole = j;
        }
    }
    ix->slots[hole] = 0;
}

/* Doubles the capacity: the entries move, oldest first, to the start of a new ring. */
static void od_idemidx_grow(od_idemidx_t *ix)
{
    apr_pool_t *old_pool = ix->pool;
    od_idemidx_entry_t *old = ix->ring;
    apr_size_t old_cap = ix->capacity, head = ix->head;

    od_idemidx_alloc(ix, 2 * old_cap);
    for (apr_size_t i = 0; i < ix->count; i++) {
        ix->ring[i] = old[(head + i) & (old_cap - 1)];
        od_idemidx_link(ix, i);
    }
    ix->head = 0;
    apr_pool_destroy(old_pool);
}

void od_idemidx_add(od_idemidx_t *ix, apr_uint64_t fp, apr_int64_t row, apr_time_t expires_at)
{
    if (ix->count == ix->capacity) {
        od_idemidx_grow(ix);
    }
    apr_size_t at = (ix->head + ix->count) & (ix->capacity - 1);
    ix->ring[at] = (od_idemidx_entry_t){.fp = fp, .row = row, .expires_at = expires_at};
    od_idemidx_link(ix, at);
    ix->count++;
}

void od_idemidx_drop_newest(od_idemidx_t *ix, apr_size_t n)
{
    for (; n > 0 && ix->count > 0; n--) {
        od_idemidx_unlink(ix, (ix->head + ix->count - 1) & (ix->capacity - 1));
        ix->count--;
    }
}

apr_size_t od_idemidx_expire(od_idemidx_t *ix, apr_time_t now)
{
    apr_size_t removed = 0;

    while (ix->count > 0 && ix->ring[ix->head].expires_at <= now) {
        od_idemidx_unlink(ix, ix->head);
        ix->head = (ix->head + 1) & (ix->capacity - 1);
        ix->count--;
        removed++;
    }
    return removed;
}

apr_size_t od_idemidx_count(const od_idemidx_t *ix)
{
    return ix->count;
}

apr_size_t od_idemidx_capacity(const od_idemidx_t *ix)
{
    return ix->capacity;
}

apr_size_t od_idemidx_bytes(const od_idemidx_t *ix)
{
    return ix->capacity * (sizeof(*ix->ring) + 2 * sizeof(*ix->slots));
}
