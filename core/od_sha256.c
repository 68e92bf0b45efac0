/* od_sha256: OpenSSL's SHA-256, fetched once, and lower-case hex. */
#include "od_sha256.h"

#include <openssl/evp.h>

struct od_sha256_s {
    EVP_MD *md;
};

static apr_status_t od_sha256_cleanup(void *data)
{
    od_sha256_t *h = data;

    EVP_MD_free(h->md);
    return APR_SUCCESS;
}

apr_status_t od_sha256_create(od_sha256_t **out, apr_pool_t *p)
{
    od_sha256_t *h = apr_palloc(p, sizeof(*h));

    *out = NULL;
    h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (h->md == NULL) {
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, h, od_sha256_cleanup, apr_pool_cleanup_null);
    *out = h;
    return APR_SUCCESS;
}

int od_sha256_digest(const od_sha256_t *h, const void *data, apr_size_t len,
                     unsigned char out[OD_SHA256_LEN])
{
    unsigned int n = 0;

    return EVP_Digest(data, len, out, &n, h->md, NULL) == 1 && n == OD_SHA256_LEN;
}

void od_sha256_hex(char *out, const unsigned char *in, apr_size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (apr_size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}
