/*
 * fuzz_keys: API keys files through od_keys_parse, and authentication against the result.
 *
 * Each input is parsed as it is, and again with one more caller appended: a line for a probe key
 * made from the input (so it is new to the file), "fuzz-probe SHA256(key)". What od_keys.h
 * promises, checked on both:
 *   - a rejection is "FILE:LINE: problem" (or "FILE: no callers") and no key set; a line
 *     appended after a rejected file cannot make it acceptable, unless the file was refused
 *     only for listing no caller;
 *   - when the file was accepted, the longer one is accepted too unless the file already has a
 *     caller of that name, and then it has one more caller; the probe key authenticates as
 *     "fuzz-probe" with the default limits, in the longer set only;
 *   - authenticating the input itself, or nothing, never names a caller the set does not have.
 */
#include "od_fuzz.h"
#include "od_keys.h"
#include "od_sha256.h"

#include <apr_strings.h>
#include <string.h>

#define FUZZ_KEYS_FILE "fuzz.keys"
#define FUZZ_KEYS_PROBE "fuzz-probe"

/* Parses @p len bytes; checks the contract on rejection. Returns the key set or NULL; a file
 * refused only for listing no caller sets @p *empty. */
static od_keys_t *fuzz_keys_parse(const char *text, apr_size_t len, int *empty, apr_pool_t *p)
{
    od_keys_t *keys = NULL;
    const char *err = NULL;

    *empty = 0;
    if (od_keys_parse(&keys, text, len, FUZZ_KEYS_FILE, &err, p) != APR_SUCCESS) {
        *empty = err != NULL && strncmp(err, FUZZ_KEYS_FILE ": no callers",
                                        sizeof(FUZZ_KEYS_FILE ": no callers") - 1) == 0;
        OD_FUZZ_CHECK(keys == NULL && err != NULL &&
                          strncmp(err, FUZZ_KEYS_FILE ":", sizeof(FUZZ_KEYS_FILE)) == 0,
                      "a rejection names the file and gives no key set: %s", err);
        return NULL;
    }
    OD_FUZZ_CHECK(keys != NULL && od_keys_count(keys) >= 0, "an accepted file gives a key set");
    return keys;
}

static int fuzz_keys_has(const od_keys_t *keys, const char *name)
{
    double rate = -1;
    int burst = -1;

    return od_keys_limits(keys, name, &rate, &burst);
}

/* A key no file can know in advance: "odk_" and the hex SHA-256 of the input. */
static const char *fuzz_keys_probe_key(const od_sha256_t *h, const uint8_t *data, size_t size,
                                       apr_pool_t *p)
{
    unsigned char md[OD_SHA256_LEN];
    char hex[2 * OD_SHA256_LEN + 1];

    OD_FUZZ_CHECK(od_sha256_digest(h, data, size, md), "SHA-256 works");
    od_sha256_hex(hex, md, sizeof(md));
    return apr_pstrcat(p, "odk_", hex, NULL);
}

/* The input with "\nfuzz-probe SHA256(key)\n" appended; its length goes to @p *len. */
static const char *fuzz_keys_with_probe(const od_sha256_t *h, const uint8_t *data, size_t size,
                                        const char *key, apr_size_t *len, apr_pool_t *p)
{
    unsigned char md[OD_SHA256_LEN];
    char hex[2 * OD_SHA256_LEN + 1];

    OD_FUZZ_CHECK(od_sha256_digest(h, key, strlen(key), md), "SHA-256 works");
    od_sha256_hex(hex, md, sizeof(md));
    const char *line = apr_pstrcat(p, "\n" FUZZ_KEYS_PROBE " ", hex, "\n", NULL);
    apr_size_t n = strlen(line);
    char *text = apr_palloc(p, size + n);
    memcpy(text, data, size);
    memcpy(text + size, line, n);
    *len = size + n;
    return text;
}

/* Authenticating arbitrary bytes names no caller, or one the set has. */
static void fuzz_keys_check_lookup(const od_keys_t *keys, const uint8_t *data, size_t size,
                                   apr_pool_t *p)
{
    const char *presented = apr_pstrmemdup(p, (const char *) data, size);
    const char *who = od_keys_lookup(keys, presented);

    OD_FUZZ_CHECK(who == NULL || fuzz_keys_has(keys, who), "a lookup names a known caller");
    OD_FUZZ_CHECK(od_keys_lookup(keys, NULL) == NULL && od_keys_lookup(keys, "") == NULL,
                  "no key, or an empty one, names no caller");
}

static void fuzz_keys_check_probe(const od_keys_t *keys, const od_keys_t *longer, const char *key)
{
    double rate = -1;
    int burst = -1;

    OD_FUZZ_CHECK(od_keys_count(longer) == od_keys_count(keys) + 1,
                  "one more line, one more caller");
    OD_FUZZ_CHECK(od_keys_lookup(keys, key) == NULL, "the probe key is unknown to the file");
    const char *who = od_keys_lookup(longer, key);
    OD_FUZZ_CHECK(who != NULL && strcmp(who, FUZZ_KEYS_PROBE) == 0,
                  "the probe key authenticates as " FUZZ_KEYS_PROBE);
    OD_FUZZ_CHECK(od_keys_limits(longer, FUZZ_KEYS_PROBE, &rate, &burst) && rate == 0 && burst == 0,
                  "the probe caller has the default limits");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = od_fuzz_pool();
    od_sha256_t *h = NULL;
    apr_size_t len = 0;

    OD_FUZZ_CHECK(od_sha256_create(&h, p) == APR_SUCCESS, "SHA-256 is available");
    const char *key = fuzz_keys_probe_key(h, data, size, p);
    const char *text = fuzz_keys_with_probe(h, data, size, key, &len, p);
    int empty = 0, unused = 0;
    od_keys_t *keys = fuzz_keys_parse((const char *) data, size, &empty, p);
    od_keys_t *longer = fuzz_keys_parse(text, len, &unused, p);
    if (keys == NULL && empty) {
        OD_FUZZ_CHECK(longer != NULL && od_keys_count(longer) == 1,
                      "a file with no caller is refused, and one caller makes it acceptable");
    } else if (keys == NULL) {
        OD_FUZZ_CHECK(longer == NULL, "a line appended makes a rejected file acceptable");
    } else if (longer == NULL) {
        OD_FUZZ_CHECK(fuzz_keys_has(keys, FUZZ_KEYS_PROBE),
                      "an accepted file with a new caller appended is accepted");
    } else {
        fuzz_keys_check_probe(keys, longer, key);
        fuzz_keys_check_lookup(keys, data, size, p);
    }
    apr_pool_destroy(p);
    return 0;
}
