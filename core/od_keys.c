/* od_keys: API key hashes, looked up by the SHA-256 of what the caller presents. */
#include "od_keys.h"
#include "od_sha256.h"
#include "od_status.h"

#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define OD_KEYS_DIGEST_LEN OD_SHA256_LEN
#define OD_KEYS_NAME_MAX 64

/* One caller; the digest is kept beside the name for the final constant-time comparison. */
typedef struct od_key_entry_t {
    const char *name;
    unsigned char digest[OD_KEYS_DIGEST_LEN];
    double rate; /* 0: the default */
    int burst;   /* 0: the default */
} od_key_entry_t;

struct od_keys_s {
    apr_hash_t *by_digest; /* digest -> od_key_entry_t; read-only after parse */
    apr_hash_t *by_name;   /* name -> od_key_entry_t */
    int count;
    od_sha256_t *sha256; /* for the presented keys, fetched once */
};

static int od_keys_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char) apr_tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

static int od_keys_unhex(unsigned char *out, const char *hex)
{
    if (strlen(hex) != 2 * OD_KEYS_DIGEST_LEN) {
        return -1;
    }
    for (int i = 0; i < OD_KEYS_DIGEST_LEN; i++) {
        int hi = od_keys_hexval(hex[2 * i]), lo = od_keys_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (unsigned char) (hi << 4 | lo);
    }
    return 0;
}

static int od_keys_name_ok(const char *name)
{
    apr_size_t n = strlen(name);

    if (n == 0 || n > OD_KEYS_NAME_MAX) {
        return 0;
    }
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* An optional `rate=R` or `burst=B` after the hash. */
static const char *od_keys_option(od_key_entry_t *e, const char *opt)
{
    char *end = NULL;

    if (strncmp(opt, "rate=", 5) == 0) {
        e->rate = strtod(opt + 5, &end);
        return (*end != '\0' || opt[5] == '\0' || !(e->rate > 0 && e->rate < 1e9))
                   ? "rate= must be a number of requests per second > 0"
                   : NULL;
    }
    if (strncmp(opt, "burst=", 6) == 0) {
        long b = strtol(opt + 6, &end, 10);
        e->burst = (int) b;
        return (*end != '\0' || opt[6] == '\0' || b < 1 || b > 1000000)
                   ? "burst= must be an integer from 1 to 1000000"
                   : NULL;
    }
    return "expected 'NAME SHA256HEX [rate=R] [burst=B]'";
}

static const char *od_keys_line(od_keys_t *keys, char *line, int lineno, apr_pool_t *p)
{
    char *state = NULL;
    char *name = apr_strtok(line, " \t\r", &state);
    char *hex = apr_strtok(NULL, " \t\r", &state);
    od_key_entry_t *entry = apr_pcalloc(p, sizeof(*entry));

    if (name == NULL || hex == NULL) {
        return "expected 'NAME SHA256HEX [rate=R] [burst=B]'";
    }
    for (char *opt = apr_strtok(NULL, " \t\r", &state); opt != NULL;
         opt = apr_strtok(NULL, " \t\r", &state)) {
        const char *why = od_keys_option(entry, opt);
        if (why != NULL) {
            return why;
        }
    }
    if (!od_keys_name_ok(name)) {
        return apr_psprintf(p, "caller name '%s' must be 1..64 of [A-Za-z0-9_.-]", name);
    }
    if (od_keys_unhex(entry->digest, hex) != 0) {
        return "the key hash must be 64 hex digits (SHA-256)";
    }
    if (apr_hash_get(keys->by_name, name, APR_HASH_KEY_STRING) != NULL) {
        return apr_psprintf(p, "caller '%s' is listed twice", name);
    }
    if (apr_hash_get(keys->by_digest, entry->digest, OD_KEYS_DIGEST_LEN) != NULL) {
        return apr_psprintf(p, "the key hash of '%s' is already used by another caller", name);
    }
    (void) lineno;
    entry->name = name;
    apr_hash_set(keys->by_name, name, APR_HASH_KEY_STRING, entry);
    apr_hash_set(keys->by_digest, entry->digest, OD_KEYS_DIGEST_LEN, entry);
    keys->count++;
    return NULL;
}

/* The line (from 1) of the first NUL byte in @p text, or 0 if there is none. The lines are split
 * as C strings, so a NUL would end the file early and drop the callers after it silently. */
static int od_keys_nul_line(const char *text, apr_size_t len)
{
    const char *nul = len > 0 ? memchr(text, '\0', len) : NULL;
    int lineno = 1;

    if (nul == NULL) {
        return 0;
    }
    for (const char *c = text; c < nul; c++) {
        lineno += *c == '\n';
    }
    return lineno;
}

apr_status_t od_keys_parse(od_keys_t **out, const char *text, apr_size_t len, const char *filename,
                           const char **errmsg, apr_pool_t *p)
{
    od_keys_t *keys = apr_pcalloc(p, sizeof(*keys));
    char *copy = apr_pstrmemdup(p, text, len);
    int lineno = 0;

    *out = NULL;
    *errmsg = NULL;
    lineno = od_keys_nul_line(text, len);
    if (lineno > 0) {
        *errmsg = apr_psprintf(p, "%s:%d: the line contains a NUL byte", filename, lineno);
        return OD_ECONFIG;
    }
    if (od_sha256_create(&keys->sha256, p) != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "%s: OpenSSL has no SHA-256", filename);
        return OD_ECONFIG;
    }
    keys->by_digest = apr_hash_make(p);
    keys->by_name = apr_hash_make(p);
    for (char *line = copy, *next = NULL; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';
        }
        lineno++;
        line += strspn(line, " \t\r");
        if (*line == '\0' || *line == '#') {
            continue;
        }
        const char *why = od_keys_line(keys, line, lineno, p);
        if (why != NULL) {
            *errmsg = apr_psprintf(p, "%s:%d: %s", filename, lineno, why);
            return OD_ECONFIG;
        }
    }
    /* With no caller every request would be refused: surely a mistake (a truncated file, the
     * wrong path), so say so instead of starting a server that only answers 401. */
    if (keys->count == 0) {
        *errmsg =
            apr_psprintf(p, "%s: no callers: the file lists no 'NAME SHA256HEX' line", filename);
        return OD_ECONFIG;
    }
    *out = keys;
    return APR_SUCCESS;
}

const char *od_keys_lookup(const od_keys_t *keys, const char *presented)
{
    unsigned char digest[OD_KEYS_DIGEST_LEN];

    if (presented == NULL || *presented == '\0' ||
        !od_sha256_digest(keys->sha256, presented, strlen(presented), digest)) {
        return NULL;
    }
    /* The table is keyed by digest, so its lookup time says nothing about the key itself; the
     * final comparison is constant-time all the same. */
    const od_key_entry_t *entry = apr_hash_get(keys->by_digest, digest, OD_KEYS_DIGEST_LEN);
    if (entry == NULL || CRYPTO_memcmp(entry->digest, digest, OD_KEYS_DIGEST_LEN) != 0) {
        return NULL;
    }
    return entry->name;
}

int od_keys_limits(const od_keys_t *keys, const char *name, double *rate, int *burst)
{
    const od_key_entry_t *e = apr_hash_get(keys->by_name, name, APR_HASH_KEY_STRING);

    if (e == NULL) {
        return 0;
    }
    *rate = e->rate;
    *burst = e->burst;
    return 1;
}

apr_status_t od_keys_generate(const char *name, const char **key, const char **line, apr_pool_t *p)
{
    unsigned char raw[24], digest[OD_KEYS_DIGEST_LEN];
    char hex[2 * sizeof(raw) + 1], dhex[2 * OD_KEYS_DIGEST_LEN + 1];
    od_sha256_t *sha256 = NULL;

    if (!od_keys_name_ok(name)) {
        return OD_EINVAL;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1 || od_sha256_create(&sha256, p) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    od_sha256_hex(hex, raw, sizeof(raw));
    *key = apr_pstrcat(p, "odk_", hex, NULL);
    if (!od_sha256_digest(sha256, *key, strlen(*key), digest)) {
        return APR_EGENERAL;
    }
    od_sha256_hex(dhex, digest, OD_KEYS_DIGEST_LEN);
    *line = apr_pstrcat(p, name, " ", dhex, NULL);
    return APR_SUCCESS;
}

int od_keys_count(const od_keys_t *keys)
{
    return keys->count;
}
