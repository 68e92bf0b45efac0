/* od_aws_creds: the AWS credential chain and the refresher of temporary credentials. */
#include "od_aws_creds.h"
#include "od_order.h"
#include "od_status.h"

#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Sizes of one stored set. AWS documents access key ids up to 128 characters; session tokens
 * have no documented bound but are well under 4 KiB in practice, so 8 KiB leaves room. */
#define OD_AWS_CREDS_ID_MAX 129
#define OD_AWS_CREDS_SECRET_MAX 257
#define OD_AWS_CREDS_TOKEN_MAX 8193

#define OD_AWS_CREDS_WHY_MAX 512           /* why one source gave nothing */
#define OD_AWS_CREDS_FILE_MAX (256 * 1024) /* a larger credentials file is refused */
#define OD_AWS_CREDS_BODY_MAX (16 * 1024)  /* a larger IMDS answer is refused */
#define OD_AWS_CREDS_IMDS_DEFAULT "http://169.254.169.254"
#define OD_AWS_CREDS_IMDS_TTL "X-aws-ec2-metadata-token-ttl-seconds: 21600"
#define OD_AWS_CREDS_TIMEOUT_MS 1000L
#define OD_AWS_CREDS_AHEAD apr_time_from_sec(300)
#define OD_AWS_CREDS_MIN_GAP apr_time_from_sec(1) /* between two refresh attempts, at least */
#define OD_AWS_CREDS_BACKOFF_MIN apr_time_from_sec(1)
#define OD_AWS_CREDS_BACKOFF_MAX apr_time_from_sec(60)

/* One set of credentials in fixed storage, so a refresh replaces it in place and memory never
 * grows. An empty session_token means none. source is a static string. */
typedef struct od_aws_creds_set_t {
    char access_key_id[OD_AWS_CREDS_ID_MAX];
    char secret_access_key[OD_AWS_CREDS_SECRET_MAX];
    char session_token[OD_AWS_CREDS_TOKEN_MAX];
    apr_time_t expiration;
    const char *source;
} od_aws_creds_set_t;

struct od_aws_creds_s {
    od_log_t *log;
    const char *imds_endpoint; /* without a trailing slash */
    int imds_disabled;
    long timeout_ms;
    apr_interval_time_t refresh_ahead;
    apr_pool_t *scratch; /* unmanaged (own allocator): used by create, then by the refresher only */
    apr_thread_t *thread;
    apr_thread_mutex_t *lock;
    /* Guarded by lock: cur, fetches, stopping. cur is written only by create (before the
     * refresher starts) and by the refresher, so the refresher may read it without the lock. */
    apr_thread_cond_t *wake; /* signalled when stopping is set */
    od_aws_creds_set_t cur;
    unsigned int fetches;
    int stopping;
};

/* The names of the three values, for messages, per kind of source. */
static const char *const od_aws_creds_key_names[] = {"aws_access_key_id", "aws_secret_access_key",
                                                     "aws_session_token"};
static const char *const od_aws_creds_env_names[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                     "AWS_SESSION_TOKEN"};

/* ---- small helpers ---- */

static const char *od_aws_creds_nonempty(const char *s)
{
    return s != NULL && *s != '\0' ? s : NULL;
}

/* An option, else the environment variable @p name; NULL when neither is set or both empty. */
static const char *od_aws_creds_pick(const char *option, const char *name)
{
    const char *v = od_aws_creds_nonempty(option);

    return v != NULL ? v : od_aws_creds_nonempty(getenv(name));
}

/* Copies @p src into fixed storage; -1 when it does not fit (never truncates a credential). */
static int od_aws_creds_store(char *dst, apr_size_t size, const char *src)
{
    apr_size_t n = strlen(src);

    if (n >= size) {
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

static char *od_aws_creds_trim(char *s)
{
    while (apr_isspace(*s)) {
        s++;
    }
    char *end = s + strlen(s);
    while (end > s && apr_isspace(end[-1])) {
        *--end = '\0';
    }
    return s;
}

/* ---- RFC 3339 times (the IMDS Expiration) ---- */

/* Reads exactly @p n digits. */
static int od_aws_creds_digits(const char **s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!apr_isdigit((*s)[i])) {
            return -1;
        }
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

static int od_aws_creds_sep(const char **s, char c)
{
    if (apr_toupper(**s) != c) {
        return -1;
    }
    (*s)++;
    return 0;
}

/* Reads an optional fraction (microseconds kept) and the zone: Z or +hh:mm / -hh:mm. */
static int od_aws_creds_time_tail(const char *s, int *usec, int *offset)
{
    int hh, mm, scale = 100000;

    *usec = 0;
    *offset = 0;
    if (*s == '.') {
        if (!apr_isdigit(*++s)) {
            return -1;
        }
        for (; apr_isdigit(*s); s++, scale /= 10) {
            *usec += (*s - '0') * scale;
        }
    }
    if (od_aws_creds_sep(&s, 'Z') == 0) {
        return *s == '\0' ? 0 : -1;
    }
    int sign = *s == '+' ? 1 : *s == '-' ? -1 : 0;
    if (sign == 0) {
        return -1;
    }
    s++;
    if (od_aws_creds_digits(&s, 2, &hh) || od_aws_creds_sep(&s, ':') ||
        od_aws_creds_digits(&s, 2, &mm) || *s != '\0' || hh > 23 || mm > 59) {
        return -1;
    }
    *offset = sign * (hh * 3600 + mm * 60);
    return 0;
}

/* Parses `2026-11-21T20:00:00Z` (optionally with a fraction or a numeric offset). */
static apr_status_t od_aws_creds_parse_time(const char *s, apr_time_t *out)
{
    apr_time_exp_t tm;
    int y, mo, d, h, mi, sec, usec, offset;
    apr_time_t t;

    if (od_aws_creds_digits(&s, 4, &y) || od_aws_creds_sep(&s, '-') ||
        od_aws_creds_digits(&s, 2, &mo) || od_aws_creds_sep(&s, '-') ||
        od_aws_creds_digits(&s, 2, &d) || od_aws_creds_sep(&s, 'T') ||
        od_aws_creds_digits(&s, 2, &h) || od_aws_creds_sep(&s, ':') ||
        od_aws_creds_digits(&s, 2, &mi) || od_aws_creds_sep(&s, ':') ||
        od_aws_creds_digits(&s, 2, &sec) || od_aws_creds_time_tail(s, &usec, &offset) || mo < 1 ||
        mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return APR_EBADDATE;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    tm.tm_usec = usec;
    if (apr_time_exp_gmt_get(&t, &tm) != APR_SUCCESS) {
        return APR_EBADDATE;
    }
    *out = t - apr_time_from_sec(offset);
    return APR_SUCCESS;
}

/* ---- static keys: the configuration, the environment, the shared file ---- */

/* Fills @p set from up to three values named @p names. OD_ENOTFOUND when none is set; OD_EAUTH
 * when the source is only partly configured (that is a mistake worth reporting). */
static apr_status_t od_aws_creds_from_keys(od_aws_creds_set_t *set, const char *source,
                                           const char *const vals[3], const char *const names[3],
                                           char *why)
{
    const char *id = od_aws_creds_nonempty(vals[0]), *secret = od_aws_creds_nonempty(vals[1]);
    const char *token = od_aws_creds_nonempty(vals[2]);

    if (id == NULL && secret == NULL && token == NULL) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "not set");
        return OD_ENOTFOUND;
    }
    if (id == NULL || secret == NULL) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "%s set without %s",
                 names[id != NULL       ? 0
                       : secret != NULL ? 1
                                        : 2],
                 names[id == NULL ? 0 : 1]);
        return OD_EAUTH;
    }
    if (od_aws_creds_store(set->access_key_id, sizeof(set->access_key_id), id) ||
        od_aws_creds_store(set->secret_access_key, sizeof(set->secret_access_key), secret) ||
        od_aws_creds_store(set->session_token, sizeof(set->session_token),
                           token != NULL ? token : "")) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "a value is too long");
        return OD_EAUTH;
    }
    set->expiration = 0;
    set->source = source;
    return APR_SUCCESS;
}

static apr_status_t od_aws_creds_from_config(od_aws_creds_t *c, const od_aws_creds_options_t *o,
                                             od_aws_creds_set_t *set, char *why, apr_pool_t *tp)
{
    const char *const vals[3] = {o->access_key_id, o->secret_access_key, o->session_token};

    return od_aws_creds_from_keys(set, "config", vals, od_aws_creds_key_names, why);
}

static apr_status_t od_aws_creds_from_env(od_aws_creds_t *c, const od_aws_creds_options_t *o,
                                          od_aws_creds_set_t *set, char *why, apr_pool_t *tp)
{
    const char *const *n = od_aws_creds_env_names;
    const char *const vals[3] = {getenv(n[0]), getenv(n[1]), getenv(n[2])};

    return od_aws_creds_from_keys(set, "environment", vals, n, why);
}

/* Whether the trimmed line @p line is the header `[ profile ]`. */
static int od_aws_creds_is_section(char *line, const char *profile)
{
    apr_size_t n = strlen(line);

    if (n < 2 || line[n - 1] != ']') {
        return 0;
    }
    line[n - 1] = '\0';
    return strcmp(od_aws_creds_trim(line + 1), profile) == 0;
}

/* Collects the three keys of section [profile] from INI @p text (modified in place). Later lines
 * override earlier ones. Returns whether the section exists. */
static int od_aws_creds_ini(char *text, const char *profile, const char *vals[3])
{
    int in = 0, found = 0;
    char *save = NULL;

    for (char *l = apr_strtok(text, "\r\n", &save); l != NULL;
         l = apr_strtok(NULL, "\r\n", &save)) {
        char *line = od_aws_creds_trim(l), *eq = strchr(line, '=');
        if (*line == '#' || *line == ';' || *line == '\0') {
            continue;
        }
        if (*line == '[') {
            in = od_aws_creds_is_section(line, profile);
            found |= in;
            continue;
        }
        if (!in || eq == NULL) {
            continue;
        }
        *eq = '\0';
        for (int i = 0; i < 3; i++) {
            if (strcasecmp(od_aws_creds_trim(line), od_aws_creds_key_names[i]) == 0) {
                vals[i] = od_aws_creds_trim(eq + 1);
            }
        }
    }
    return found;
}

/* Reads @p path whole. OD_ENOTFOUND when it does not exist. */
static apr_status_t od_aws_creds_read_file(const char *path, char **text, char *why, apr_pool_t *tp)
{
    apr_file_t *f = NULL;
    apr_size_t n = 0;
    char *buf = apr_palloc(tp, OD_AWS_CREDS_FILE_MAX + 1);
    char err[128];

    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, tp);
    if (APR_STATUS_IS_ENOENT(rv)) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "no file %s", path);
        return OD_ENOTFOUND;
    }
    if (rv == APR_SUCCESS) {
        rv = apr_file_read_full(f, buf, OD_AWS_CREDS_FILE_MAX + 1, &n);
        apr_file_close(f);
        rv = APR_STATUS_IS_EOF(rv) ? APR_SUCCESS : rv == APR_SUCCESS ? APR_ENOSPC : rv;
    }
    if (rv != APR_SUCCESS) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "reading %s failed: %s", path,
                 rv == APR_ENOSPC ? "larger than 256 KiB" : apr_strerror(rv, err, sizeof(err)));
        return OD_EAUTH;
    }
    buf[n] = '\0';
    *text = buf;
    return APR_SUCCESS;
}

static apr_status_t od_aws_creds_from_file(od_aws_creds_t *c, const od_aws_creds_options_t *o,
                                           od_aws_creds_set_t *set, char *why, apr_pool_t *tp)
{
    const char *path = od_aws_creds_pick(o->shared_credentials_file, "AWS_SHARED_CREDENTIALS_FILE");
    const char *profile = od_aws_creds_pick(o->profile, "AWS_PROFILE");
    const char *home = od_aws_creds_nonempty(getenv("HOME"));
    const char *vals[3] = {NULL, NULL, NULL};
    char *text = NULL;

    if (path == NULL && home == NULL) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "no file (HOME not set)");
        return OD_ENOTFOUND;
    }
    path = path != NULL ? path : apr_pstrcat(tp, home, "/.aws/credentials", NULL);
    profile = profile != NULL ? profile : "default";
    apr_status_t rv = od_aws_creds_read_file(path, &text, why, tp);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!od_aws_creds_ini(text, profile, vals)) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "no profile [%s] in %s", profile, path);
        return OD_ENOTFOUND;
    }
    rv = od_aws_creds_from_keys(set, "shared-file", vals, od_aws_creds_key_names, why);
    if (rv != APR_SUCCESS) {
        /* Say where: "not set" or "x set without y" alone would not point at the file. */
        apr_size_t n = strlen(why);
        snprintf(why + n, OD_AWS_CREDS_WHY_MAX - n, " in profile [%s] of %s", profile, path);
    }
    return rv == OD_ENOTFOUND ? OD_EAUTH : rv;
}

/* ---- IMDSv2 over libcurl ---- */

typedef struct od_aws_creds_body_t {
    char *data; /* NUL-terminated */
    apr_size_t len;
} od_aws_creds_body_t;

static size_t od_aws_creds_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    od_aws_creds_body_t *b = userdata;
    size_t n = size * nmemb;

    if (n > OD_AWS_CREDS_BODY_MAX - b->len) {
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* curl's results, converted at the module edge. */
static apr_status_t od_aws_creds_curl_status(CURLcode rc)
{
    return rc == CURLE_OK ? APR_SUCCESS : rc == CURLE_OUT_OF_MEMORY ? APR_ENOMEM : OD_EUNAVAIL;
}

static CURLcode od_aws_creds_setup(const od_aws_creds_t *c, CURL *h, const char *url, int put,
                                   struct curl_slist *headers, od_aws_creds_body_t *body, char *err)
{
    CURLcode rc = curl_easy_setopt(h, CURLOPT_URL, url);

    /* NOSIGNAL: the refresher is not the main thread; PROXY "": IMDS is link-local, never proxied
     * (as the AWS SDKs do), whatever http_proxy says. */
    rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_PROXY, "");
    rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
    rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, od_aws_creds_write);
    rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    if (put) {
        /* An empty PUT body; the Content-Type curl would add is removed by a header line. */
        rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
        rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
    }
    return rc;
}

/* One IMDS call: what it is named in messages, the path, the one extra header, the method. */
typedef struct od_aws_creds_call_t {
    const char *name;
    const char *path;
    const char *header;
    int put;
} od_aws_creds_call_t;

/* Runs @p call on a fresh easy handle (the calls are rare). Succeeds only on HTTP 200, with the
 * answer in @p *out (from @p tp); otherwise says in @p why which call failed and how. */
static apr_status_t od_aws_creds_http(const od_aws_creds_t *c, const od_aws_creds_call_t *call,
                                      char **out, char *why, apr_pool_t *tp)
{
    od_aws_creds_body_t body = {apr_palloc(tp, OD_AWS_CREDS_BODY_MAX + 1), 0};
    const char *url = apr_pstrcat(tp, c->imds_endpoint, call->path, NULL);
    char err[CURL_ERROR_SIZE] = "";
    long code = 0;
    CURL *h = curl_easy_init();
    struct curl_slist *hs = curl_slist_append(NULL, call->header);
    struct curl_slist *all = call->put && hs != NULL ? curl_slist_append(hs, "Content-Type:") : hs;

    body.data[0] = '\0';
    CURLcode rc = h == NULL || all == NULL
                      ? CURLE_OUT_OF_MEMORY
                      : od_aws_creds_setup(c, h, url, call->put, all, &body, err);
    rc = rc != CURLE_OK ? rc : curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_slist_free_all(all != NULL ? all : hs);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "curl_easy_perform(%s) failed: %s", call->name,
                 *err != '\0' ? err : curl_easy_strerror(rc));
        return od_aws_creds_curl_status(rc);
    }
    if (code != 200) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "%s: HTTP %ld", call->name, code);
        return OD_EUNAVAIL;
    }
    *out = body.data;
    return APR_SUCCESS;
}

/* The token is sent back in a header and the role goes into a path, so both are checked. */
static int od_aws_creds_safe(const char *s, const char *extra)
{
    for (; *s != '\0'; s++) {
        if (!apr_isalnum(*s) && strchr(extra, *s) == NULL) {
            return 0;
        }
    }
    return 1;
}

/* The first line of the role listing. */
static const char *od_aws_creds_role(char *listing)
{
    listing[strcspn(listing, "\r\n")] = '\0';
    return od_aws_creds_trim(listing);
}

static const char *od_aws_creds_json_str(json_object *doc, const char *key)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(doc, key, &v) || !json_object_is_type(v, json_type_string)) {
        return NULL;
    }
    return json_object_get_string(v);
}

/* Fills @p set from the IMDS credentials object. */
static apr_status_t od_aws_creds_from_json(json_object *doc, od_aws_creds_set_t *set, char *why)
{
    struct {
        const char *key;
        char *dst;
        apr_size_t size;
    } f[] = {{"AccessKeyId", set->access_key_id, sizeof(set->access_key_id)},
             {"SecretAccessKey", set->secret_access_key, sizeof(set->secret_access_key)},
             {"Token", set->session_token, sizeof(set->session_token)}};
    const char *code = od_aws_creds_json_str(doc, "Code");
    const char *exp = od_aws_creds_json_str(doc, "Expiration");

    if (code != NULL && strcmp(code, "Success") != 0) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "IMDS credentials: Code %.64s", code);
        return OD_EAUTH;
    }
    for (apr_size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        const char *v = od_aws_creds_nonempty(od_aws_creds_json_str(doc, f[i].key));
        if (v == NULL || od_aws_creds_store(f[i].dst, f[i].size, v) != 0) {
            snprintf(why, OD_AWS_CREDS_WHY_MAX, "IMDS credentials: %s %s", f[i].key,
                     v == NULL ? "missing" : "too long");
            return OD_EAUTH;
        }
    }
    if (exp == NULL || od_aws_creds_parse_time(exp, &set->expiration) != APR_SUCCESS) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "IMDS credentials: Expiration %.40s%s",
                 exp != NULL ? exp : "missing", exp != NULL ? " is not an RFC 3339 time" : "");
        return OD_EAUTH;
    }
    set->source = "imds";
    return APR_SUCCESS;
}

static apr_status_t od_aws_creds_parse_imds(const char *text, od_aws_creds_set_t *set, char *why)
{
    enum json_tokener_error jerr = json_tokener_success;
    json_object *doc = json_tokener_parse_verbose(text, &jerr);
    apr_status_t rv = OD_EAUTH;

    if (doc == NULL || !json_object_is_type(doc, json_type_object)) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX,
                 "json_tokener_parse_verbose(IMDS credentials) failed: %s",
                 doc == NULL ? json_tokener_error_desc(jerr) : "not an object");
    } else {
        rv = od_aws_creds_from_json(doc, set, why);
    }
    json_object_put(doc);
    return rv;
}

/* IMDSv2 only: without a session token there is no IMDSv1 fallback. */
static apr_status_t od_aws_creds_fetch_imds(const od_aws_creds_t *c, od_aws_creds_set_t *set,
                                            char *why, apr_pool_t *tp)
{
    static const char roles[] = "/latest/meta-data/iam/security-credentials/";
    od_aws_creds_call_t call = {"IMDS token", "/latest/api/token", OD_AWS_CREDS_IMDS_TTL, 1};
    char *token = NULL, *listing = NULL, *doc = NULL;

    apr_status_t rv = od_aws_creds_http(c, &call, &token, why, tp);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    token = od_aws_creds_trim(token);
    if (*token == '\0' || !od_aws_creds_safe(token, "-_=+/.")) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "IMDS token: empty or malformed answer");
        return OD_EAUTH;
    }
    call = (od_aws_creds_call_t){"IMDS role", roles,
                                 apr_pstrcat(tp, "X-aws-ec2-metadata-token: ", token, NULL), 0};
    rv = od_aws_creds_http(c, &call, &listing, why, tp);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    const char *role = od_aws_creds_role(listing);
    if (*role == '\0' || !od_aws_creds_safe(role, "+=,.@_-")) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "IMDS role: %s", *role ? "malformed name" : "none");
        return OD_EAUTH;
    }
    call.name = "IMDS credentials";
    call.path = apr_pstrcat(tp, roles, role, NULL);
    rv = od_aws_creds_http(c, &call, &doc, why, tp);
    return rv != APR_SUCCESS ? rv : od_aws_creds_parse_imds(doc, set, why);
}

static apr_status_t od_aws_creds_from_imds(od_aws_creds_t *c, const od_aws_creds_options_t *o,
                                           od_aws_creds_set_t *set, char *why, apr_pool_t *tp)
{
    if (c->imds_disabled) {
        snprintf(why, OD_AWS_CREDS_WHY_MAX, "disabled (AWS_EC2_METADATA_DISABLED)");
        return OD_ENOTFOUND;
    }
    return od_aws_creds_fetch_imds(c, set, why, tp);
}

/* ---- the chain ---- */

typedef apr_status_t (*od_aws_creds_source_fn)(od_aws_creds_t *c, const od_aws_creds_options_t *o,
                                               od_aws_creds_set_t *set, char *why, apr_pool_t *tp);

static void od_aws_creds_log_set(od_aws_creds_t *c, const char *what, const od_aws_creds_set_t *s)
{
    char when[32];

    od_log_info(c->log, "aws: %s credentials from %s (access key id %s%s%s)", what, s->source,
                s->access_key_id, s->expiration != 0 ? ", expiring " : "",
                s->expiration != 0 ? od_order_format_time(when, s->expiration) : "");
}

/* Tries each source in turn. A source that is missing or broken is noted; the notes are logged
 * once: as an error when no source works, as a warning when a broken one was passed over. */
static apr_status_t od_aws_creds_resolve(od_aws_creds_t *c, const od_aws_creds_options_t *o,
                                         od_aws_creds_set_t *set, apr_pool_t *tp)
{
    static const struct {
        const char *name;
        od_aws_creds_source_fn fn;
    } sources[] = {{"config", od_aws_creds_from_config},
                   {"environment", od_aws_creds_from_env},
                   {"shared-file", od_aws_creds_from_file},
                   {"imds", od_aws_creds_from_imds}};
    char trail[4 * (OD_AWS_CREDS_WHY_MAX + 16)] = "";
    apr_size_t len = 0;
    int broken = 0;

    for (apr_size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
        char why[OD_AWS_CREDS_WHY_MAX] = "";
        apr_status_t rv = sources[i].fn(c, o, set, why, tp);
        if (rv == APR_SUCCESS) {
            if (broken) {
                od_log_warn(c->log, "aws: passed over credential sources: %s", trail);
            }
            od_aws_creds_log_set(c, "using", set);
            return APR_SUCCESS;
        }
        broken |= rv != OD_ENOTFOUND;
        snprintf(trail + len, sizeof(trail) - len, "%s%s: %s", len > 0 ? "; " : "", sources[i].name,
                 why);
        len = strlen(trail);
    }
    od_log_error(c->log, "aws: no credentials found; tried %s", trail);
    return OD_EAUTH;
}

/* ---- the refresher ---- */

/* When to refresh a set expiring at @p exp: refresh_ahead before, but never sooner than
 * OD_AWS_CREDS_MIN_GAP from now, so a lifetime shorter than refresh_ahead cannot make the
 * refresher spin. */
static apr_time_t od_aws_creds_due(const od_aws_creds_t *c, apr_time_t exp, apr_time_t now)
{
    apr_time_t due = exp - c->refresh_ahead;

    return due < now + OD_AWS_CREDS_MIN_GAP ? now + OD_AWS_CREDS_MIN_GAP : due;
}

/* After a failure: back off, but while the current set is valid retry no later than its expiry. */
static apr_time_t od_aws_creds_retry(apr_interval_time_t backoff, apr_time_t exp, apr_time_t now)
{
    apr_time_t due = now + backoff;

    if (now < exp && due > exp) {
        due = exp;
    }
    return due < now + OD_AWS_CREDS_MIN_GAP ? now + OD_AWS_CREDS_MIN_GAP : due;
}

/* One refresh attempt, on the network without the lock. Returns when to try next. Only IMDS
 * gives credentials that expire, so it is the source refreshed. */
static apr_time_t od_aws_creds_refresh(od_aws_creds_t *c, apr_interval_time_t *backoff)
{
    od_aws_creds_set_t next;
    char why[OD_AWS_CREDS_WHY_MAX] = "";

    apr_pool_clear(c->scratch);
    memset(&next, 0, sizeof(next));
    apr_status_t rv = od_aws_creds_fetch_imds(c, &next, why, c->scratch);
    apr_time_t now = apr_time_now();
    if (rv == APR_SUCCESS) {
        apr_thread_mutex_lock(c->lock);
        c->cur = next;
        c->fetches++;
        apr_thread_mutex_unlock(c->lock);
        *backoff = OD_AWS_CREDS_BACKOFF_MIN;
        od_aws_creds_log_set(c, "refreshed", &next);
        memset(&next, 0, sizeof(next));
        return od_aws_creds_due(c, c->cur.expiration, now);
    }
    apr_time_t due = od_aws_creds_retry(*backoff, c->cur.expiration, now);
    od_log_warn(
        c->log,
        "aws: refreshing credentials from imds failed (%s); next try in %" APR_TIME_T_FMT " ms%s",
        why, apr_time_as_msec(due - now), now >= c->cur.expiration ? "; they have expired" : "");
    *backoff = *backoff * 2 > OD_AWS_CREDS_BACKOFF_MAX ? OD_AWS_CREDS_BACKOFF_MAX : *backoff * 2;
    return due;
}

static void *APR_THREAD_FUNC od_aws_creds_refresher(apr_thread_t *thread, void *data)
{
    od_aws_creds_t *c = data;
    apr_interval_time_t backoff = OD_AWS_CREDS_BACKOFF_MIN;
    apr_time_t due = od_aws_creds_due(c, c->cur.expiration, apr_time_now());

    apr_thread_mutex_lock(c->lock);
    while (!c->stopping) {
        apr_time_t now = apr_time_now();
        if (now < due) {
            apr_thread_cond_timedwait(c->wake, c->lock, due - now);
            continue;
        }
        apr_thread_mutex_unlock(c->lock);
        due = od_aws_creds_refresh(c, &backoff);
        apr_thread_mutex_lock(c->lock);
    }
    apr_thread_mutex_unlock(c->lock);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* ---- life cycle ---- */

/* Stops the refresher (a refresh in flight finishes first: at most three IMDS timeouts) and
 * forgets the secrets. A pre-cleanup: APR destroys subpools (the thread's) and runs the mutex's
 * cleanup before ordinary cleanups, and the refresher must be gone before either. Idempotent and
 * safe on a partly built object, so creation undoes itself with it. */
static apr_status_t od_aws_creds_cleanup(void *data)
{
    od_aws_creds_t *c = data;
    apr_status_t trv = APR_SUCCESS;

    if (c->thread != NULL) {
        apr_thread_mutex_lock(c->lock);
        c->stopping = 1;
        apr_thread_cond_signal(c->wake);
        apr_thread_mutex_unlock(c->lock);
        apr_thread_join(&trv, c->thread);
        c->thread = NULL;
    }
    if (c->scratch != NULL) {
        apr_pool_destroy(c->scratch);
        c->scratch = NULL;
    }
    memset(&c->cur, 0, sizeof(c->cur));
    return APR_SUCCESS;
}

static apr_status_t od_aws_creds_syscall(od_aws_creds_t *c, apr_status_t rv, const char *call)
{
    char err[128];

    if (rv != APR_SUCCESS) {
        od_log_error(c->log, "aws: %s failed: %s", call, apr_strerror(rv, err, sizeof(err)));
    }
    return rv;
}

static void od_aws_creds_configure(od_aws_creds_t *c, const od_aws_creds_options_t *o,
                                   apr_pool_t *p)
{
    const char *ep = od_aws_creds_pick(o->imds_endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    const char *off = getenv("AWS_EC2_METADATA_DISABLED");
    char *e = apr_pstrdup(p, ep != NULL ? ep : OD_AWS_CREDS_IMDS_DEFAULT);

    for (apr_size_t n = strlen(e); n > 0 && e[n - 1] == '/'; n--) {
        e[n - 1] = '\0';
    }
    c->imds_endpoint = e;
    c->imds_disabled = off != NULL && strcasecmp(off, "true") == 0;
    c->timeout_ms = o->imds_timeout_ms > 0 ? o->imds_timeout_ms : OD_AWS_CREDS_TIMEOUT_MS;
    c->refresh_ahead = o->refresh_ahead > 0 ? o->refresh_ahead : OD_AWS_CREDS_AHEAD;
}

static apr_status_t od_aws_creds_start(od_aws_creds_t *c, const od_aws_creds_options_t *o,
                                       apr_pool_t *p)
{
    apr_status_t rv =
        od_aws_creds_syscall(c, apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p),
                             "apr_thread_mutex_create");

    if (rv == APR_SUCCESS) {
        rv = od_aws_creds_syscall(c, apr_thread_cond_create(&c->wake, p), "apr_thread_cond_create");
    }
    if (rv == APR_SUCCESS) {
        rv = od_aws_creds_syscall(c, apr_pool_create_unmanaged_ex(&c->scratch, NULL, NULL),
                                  "apr_pool_create_unmanaged_ex");
    }
    if (rv == APR_SUCCESS) {
        rv = od_aws_creds_resolve(c, o, &c->cur, c->scratch);
        c->fetches = rv == APR_SUCCESS ? 1 : 0;
    }
    if (rv == APR_SUCCESS && c->cur.expiration != 0) {
        rv = od_aws_creds_syscall(c,
                                  apr_thread_create(&c->thread, NULL, od_aws_creds_refresher, c, p),
                                  "apr_thread_create (refresher)");
        if (rv != APR_SUCCESS) {
            c->thread = NULL;
        }
    }
    return rv;
}

apr_status_t od_aws_creds_create(od_aws_creds_t **out, const od_aws_creds_options_t *opts,
                                 od_log_t *log, apr_pool_t *p)
{
    static const od_aws_creds_options_t none = {0};
    od_aws_creds_t *c = apr_pcalloc(p, sizeof(*c));

    *out = NULL;
    c->log = log;
    opts = opts != NULL ? opts : &none;
    od_aws_creds_configure(c, opts, p);
    apr_pool_pre_cleanup_register(p, c, od_aws_creds_cleanup);
    apr_status_t rv = od_aws_creds_start(c, opts, p);
    if (rv != APR_SUCCESS) {
        apr_pool_cleanup_run(p, c, od_aws_creds_cleanup);
        return rv;
    }
    if (c->thread == NULL) {
        /* Long-term keys are never refreshed, so the scratch pool has no further use. */
        apr_pool_destroy(c->scratch);
        c->scratch = NULL;
    }
    *out = c;
    return APR_SUCCESS;
}

apr_status_t od_aws_creds_get(od_aws_creds_t *creds, od_aws_credentials_t *out, apr_pool_t *p)
{
    const od_aws_creds_set_t *s = &creds->cur;
    apr_status_t rv = OD_EAUTH;

    memset(out, 0, sizeof(*out));
    apr_thread_mutex_lock(creds->lock);
    if (s->expiration == 0 || apr_time_now() < s->expiration) {
        out->access_key_id = apr_pstrdup(p, s->access_key_id);
        out->secret_access_key = apr_pstrdup(p, s->secret_access_key);
        out->session_token = *s->session_token != '\0' ? apr_pstrdup(p, s->session_token) : NULL;
        out->expiration = s->expiration;
        out->source = s->source;
        rv = APR_SUCCESS;
    }
    apr_thread_mutex_unlock(creds->lock);
    return rv;
}

unsigned int od_aws_creds_fetches(od_aws_creds_t *creds)
{
    apr_thread_mutex_lock(creds->lock);
    unsigned int n = creds->fetches;
    apr_thread_mutex_unlock(creds->lock);
    return n;
}
