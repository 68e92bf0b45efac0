/*
 * od_ulid: ULID generation and validation.
 *
 * Layout (128 bits, big-endian): 48 bits of Unix time in milliseconds, then 80 random bits.
 * Encoded as 26 Crockford base32 characters: 10 for the time (50 bits, the top 2 always zero,
 * which is why the first character is at most '7') and 16 for the randomness.
 */
#include "od_ulid.h"
#include "od_status.h"

#include <apr_thread_mutex.h>
#include <openssl/rand.h>
#include <string.h>

#define OD_ULID_TIME_CHARS 10
#define OD_ULID_RAND_BYTES 10
#define OD_ULID_MAX_MS ((((apr_uint64_t) 1) << 48) - 1)

struct od_ulid_source_s {
    apr_thread_mutex_t *lock;
    /* Guarded by lock: the randomness not yet drawn is rnd[used..]. */
    apr_size_t used;
    unsigned char rnd[OD_ULID_RAND_BYTES * OD_ULID_SOURCE_IDS];
};

static const char od_ulid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The value (0..31) of one character, or -1. Lower case is folded by hand rather than with
 * toupper() so the result never depends on the locale; bytes >= 0x80 are never in the alphabet. */
static int od_ulid_decode_char(unsigned char c)
{
    const char *hit;

    if (c >= 'a' && c <= 'z') {
        c = (unsigned char) (c - 'a' + 'A');
    }
    if (c == '\0') {
        return -1;
    }
    hit = memchr(od_ulid_alphabet, c, sizeof(od_ulid_alphabet) - 1);
    return hit == NULL ? -1 : (int) (hit - od_ulid_alphabet);
}

/* Encodes the low 5 * n bits of @p value into @p n characters, most significant first. */
static void od_ulid_encode_bits(char *out, apr_uint64_t value, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = od_ulid_alphabet[value & 31];
        value >>= 5;
    }
}

/* Times before the epoch or past the 48-bit range (year 10889) cannot be encoded; they are
 * clamped rather than wrapped so that ordering by id never inverts. */
static apr_uint64_t od_ulid_clamp_ms(apr_time_t now)
{
    apr_time_t ms = apr_time_as_msec(now);

    if (ms < 0) {
        return 0;
    }
    if ((apr_uint64_t) ms > OD_ULID_MAX_MS) {
        return OD_ULID_MAX_MS;
    }
    return (apr_uint64_t) ms;
}

/* Encodes time @p ms and the 10 random bytes at @p rnd: 80 bits = two 40-bit halves, 8
 * characters each. */
static void od_ulid_encode(char out[OD_ULID_LEN + 1], apr_uint64_t ms, const unsigned char *rnd)
{
    apr_uint64_t hi = 0;
    apr_uint64_t lo = 0;

    for (int i = 0; i < 5; i++) {
        hi = (hi << 8) | rnd[i];
        lo = (lo << 8) | rnd[i + 5];
    }
    od_ulid_encode_bits(out, ms, OD_ULID_TIME_CHARS);
    od_ulid_encode_bits(out + OD_ULID_TIME_CHARS, hi, 8);
    od_ulid_encode_bits(out + OD_ULID_TIME_CHARS + 8, lo, 8);
    out[OD_ULID_LEN] = '\0';
}

/* Writes @p n (1..OD_ULID_MANY_MAX) ids for @p now, their randomness drawn by @p draw into one
 * buffer; every out[i] is "" on failure. */
static apr_status_t od_ulid_make(char (*out)[OD_ULID_LEN + 1], int n, apr_time_t now,
                                 int (*draw)(void *from, unsigned char *to, apr_size_t len),
                                 void *from)
{
    unsigned char rnd[OD_ULID_RAND_BYTES * OD_ULID_MANY_MAX];

    if (n < 1 || n > OD_ULID_MANY_MAX) {
        return APR_EINVAL;
    }
    for (int i = 0; i < n; i++) {
        out[i][0] = '\0';
    }
    if (!draw(from, rnd, (apr_size_t) (OD_ULID_RAND_BYTES * n))) {
        return APR_EGENERAL;
    }
    for (int i = 0; i < n; i++) {
        od_ulid_encode(out[i], od_ulid_clamp_ms(now), rnd + OD_ULID_RAND_BYTES * i);
    }
    return APR_SUCCESS;
}

static int od_ulid_rand_bytes(void *unused, unsigned char *to, apr_size_t len)
{
    return RAND_bytes(to, (int) len) == 1;
}

apr_status_t od_ulid_generate_many(char (*out)[OD_ULID_LEN + 1], int n, apr_time_t now)
{
    return od_ulid_make(out, n, now, od_ulid_rand_bytes, NULL);
}

apr_status_t od_ulid_generate(char out[OD_ULID_LEN + 1], apr_time_t now)
{
    return od_ulid_generate_many((char(*)[OD_ULID_LEN + 1]) out, 1, now);
}

apr_status_t od_ulid_source_create(od_ulid_source_t **out, apr_pool_t *p)
{
    od_ulid_source_t *src = apr_palloc(p, sizeof(*src));

    *out = NULL;
    apr_status_t rv = apr_thread_mutex_create(&src->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    src->used = sizeof(src->rnd); /* empty: filled on first use */
    *out = src;
    return APR_SUCCESS;
}

/* Copies @p len bytes of randomness out of @p src, refilling it when it runs short. Returns 0
 * if the generator fails (nothing is drawn then, and the next call tries again). */
static int od_ulid_source_draw(void *from, unsigned char *to, apr_size_t len)
{
    od_ulid_source_t *src = from;
    int ok = 1;

    apr_thread_mutex_lock(src->lock);
    if (sizeof(src->rnd) - src->used < len) {
        ok = RAND_bytes(src->rnd, (int) sizeof(src->rnd)) == 1;
        src->used = ok ? 0 : sizeof(src->rnd);
    }
    if (ok) {
        memcpy(to, src->rnd + src->used, len);
        src->used += len;
    }
    apr_thread_mutex_unlock(src->lock);
    return ok;
}

apr_status_t od_ulid_source_next(od_ulid_source_t *src, char (*out)[OD_ULID_LEN + 1], int n,
                                 apr_time_t now)
{
    return od_ulid_make(out, n, now, od_ulid_source_draw, src);
}

apr_status_t od_ulid_parse(char out[OD_ULID_LEN + 1], const char *text)
{
    char upper[OD_ULID_LEN + 1];

    out[0] = '\0';
    if (text == NULL) {
        return OD_EINVAL;
    }
    /* Stops at the first bad byte (including a NUL), so a short string is never over-read. */
    for (int i = 0; i < OD_ULID_LEN; i++) {
        int v = od_ulid_decode_char((unsigned char) text[i]);
        if (v < 0) {
            return OD_EINVAL;
        }
        upper[i] = od_ulid_alphabet[v];
    }
    if (text[OD_ULID_LEN] != '\0' || upper[0] > '7') {
        return OD_EINVAL;
    }
    upper[OD_ULID_LEN] = '\0';
    memcpy(out, upper, sizeof(upper));
    return APR_SUCCESS;
}

apr_time_t od_ulid_time(const char *ulid)
{
    apr_uint64_t ms = 0;

    /* The contract requires a valid ULID; on a bad character it returns 0
     * rather than a made-up time. */
    for (int i = 0; i < OD_ULID_TIME_CHARS; i++) {
        int v = od_ulid_decode_char((unsigned char) ulid[i]);
        if (v < 0) {
            return 0;
        }
        ms = (ms << 5) | (apr_uint64_t) v;
    }
    return apr_time_from_msec((apr_time_t) ms);
}
