/*
 * od_http: the HTTP front end.
 *
 * libmicrohttpd threads accept connections, route each request, authenticate the caller and read
 * the body (counting it against max_body_bytes: MHD has no such limit of its own). A complete
 * request is first offered to the handler's front step on the HTTP thread, which does what can
 * never block (parsing, validation, hashing, hot-cache lookups, queueing for the SQLite writer) and
 * either answers at once or hands the request on. Whatever may wait on a disk or the network goes
 * to an APR thread pool worker while its connection is suspended, so a slow store never blocks the
 * HTTP threads; the worker fills in the response and resumes the connection, or hands the request
 * on (OD_HTTP_DEFERRED) to whoever completes it later (od_request_finish; the SQLite writer, after
 * the commit, uses od_request_finish_then so that the answer is built back on the HTTP thread).
 * When queue_limit requests already wait (for a worker, or handed on for the store) the answer is
 * 503 with Retry-After: queueing is never unbounded.
 *
 * What runs is supplied by the caller as an od_http_handler_t (od_api).
 */
#ifndef OD_HTTP_H
#define OD_HTTP_H

#include "od_config.h"
#include "od_keys.h"
#include "od_log.h"
#include "od_metrics.h"

#include <apr_pools.h>
#include <apr_tables.h>

typedef struct od_http_s od_http_t;

/** One request, from its first header to its completion; owns a subpool. */
typedef struct od_request_s od_request_t;

/** A routing decision, made on the HTTP thread before the body is read. */
typedef struct od_route_t {
    int status;        /* 0 if routed; else 404 or 405, answered at once */
    const char *allow; /* the Allow header of a 405 */
    int wants_body;    /* a JSON body is expected (POST): Content-Type and size are checked */
    int is_public;     /* no API key needed (health, readiness, metrics) */
    od_metrics_route_e metric; /* what the request is counted as */
    int kind;                  /* the handler's own route id, given back through od_request_route */
} od_route_t;

/** What a handler's run gives back. */
typedef enum od_http_run_e {
    OD_HTTP_ANSWERED, /* the answer is set: it is sent now */
    OD_HTTP_DEFERRED, /* someone will call od_request_finish; the caller no longer touches it */
    OD_HTTP_WORKER    /* (front only) the rest may block: call run on a worker */
} od_http_run_e;

/** The application: routing and non-blocking work on the HTTP thread, the rest on a worker. */
typedef struct od_http_handler_t {
    /** Fills @p route for @p method and @p path (no query string). Must not block. */
    void (*route)(void *baton, const char *method, const char *path, od_route_t *route);
    /**
     * Optional (NULL: every complete request goes to a worker). Runs on the HTTP thread once the
     * body is complete, so it must never block: no disk, no network, no lock that is held across
     * either. Returns OD_HTTP_ANSWERED with the answer set (with none it is 500); OD_HTTP_WORKER
     * to have run called on a worker (state for it may be left with od_request_set_data); or
     * OD_HTTP_DEFERRED after calling od_request_defer and handing the request on, as for run.
     */
    od_http_run_e (*front)(void *baton, od_request_t *r);
    /**
     * Runs on a worker thread. Either answers (od_request_respond; with no answer set it is 500)
     * and returns OD_HTTP_ANSWERED, or hands the request on (e.g. to the store's writer) and
     * returns OD_HTTP_DEFERRED: then od_request_finish must be called exactly once, possibly
     * before run returns, and run must not touch @p r after handing it on.
     */
    od_http_run_e (*run)(void *baton, od_request_t *r);
    void *baton;
} od_http_handler_t;

/**
 * Prepares the front end: the worker pool is created, nothing listens yet. @p keys may be NULL
 * (every caller is "anonymous"). @p settings, @p keys, @p handler's baton and @p log must outlive
 * @p p. Returns APR_SUCCESS and @p *out, or the status of the failed step (logged).
 */
apr_status_t od_http_create(od_http_t **out, const od_settings_t *settings, const od_keys_t *keys,
                            const od_http_handler_t *handler, od_metrics_t *metrics, od_log_t *log,
                            apr_pool_t *p);

/** Worker pool figures, for /metrics; a snapshot. */
typedef struct od_http_stats_t {
    unsigned int queued;   /* waiting for a worker */
    unsigned int busy;     /* being handled by a worker */
    unsigned int deferred; /* handed on by the front step (to the SQLite writer), not finished */
    unsigned int workers;  /* worker_threads */
    unsigned int queue_limit;
    int stopping;
    unsigned int connections;      /* client connections held */
    unsigned int connections_idle; /* of which idle between keep-alive requests */
    apr_uint64_t head_timeouts;    /* closed: a request head not complete in header_timeout_s */
    apr_uint64_t evicted;          /* closed while idle to free a slot at max_connections */
} od_http_stats_t;

/** Fills @p out. Thread-safe. */
void od_http_stats(od_http_t *http, od_http_stats_t *out);

/**
 * Replaces the key set and the default rate limit (SIGHUP), without dropping connections: new
 * requests see the new set; @p keys_pool (which owns @p keys; may be NULL with @p keys NULL)
 * becomes the front end's, and the previous one is destroyed once no request uses it.
 * Thread-safe.
 */
void od_http_reload(od_http_t *http, const od_keys_t *keys, apr_pool_t *keys_pool, int default_rate,
                    int default_burst);

/**
 * Serves HTTPS with this PEM certificate (chain) and key instead of plain HTTP: TLS 1.2 and 1.3
 * only, AEAD ciphers, server preference. Call before od_http_start; the strings must outlive the
 * front end. A key that does not match the certificate makes od_http_start fail.
 */
void od_http_set_tls(od_http_t *http, const char *cert_pem, const char *key_pem);

/** Starts listening. Returns APR_SUCCESS, or OD_EUNAVAIL (logged) if MHD cannot start. */
apr_status_t od_http_start(od_http_t *http);

/** The port actually bound (useful with listen_port 0); 0 before start. */
int od_http_port(const od_http_t *http);

/**
 * Graceful stop: stops listening (new connections are refused), answers 503 to requests that arrive
 * on open connections, waits up to @p timeout for in-flight requests to complete (and, beyond it,
 * for any still in a worker, since a suspended connection must be resumed before MHD stops), then
 * stops the workers and MHD. Requests still being uploaded are not waited for: they were
 * never acknowledged. Idempotent; also run by a pre-cleanup on the pool given to create.
 */
void od_http_stop(od_http_t *http, apr_interval_time_t timeout);

/* ---- for handlers: the request ---- */

/** The request's pool: destroyed when libmicrohttpd completes the request. */
apr_pool_t *od_request_pool(const od_request_t *r);
const char *od_request_method(const od_request_t *r);
const char *od_request_path(const od_request_t *r);
/** The authenticated caller's name ("anonymous" without a keys file; NULL on public routes). */
const char *od_request_caller(const od_request_t *r);
/** The request id: the client's X-Request-Id if it is 1..128 of [A-Za-z0-9._-], else a ULID. */
const char *od_request_id(const od_request_t *r);
/** Records the order a request concerns, for its access log line (copied). */
void od_request_set_order_id(od_request_t *r, const char *order_id);
const od_route_t *od_request_route(const od_request_t *r);
/** The body (NUL-terminated for convenience; may contain NULs) and its length. */
const char *od_request_body(const od_request_t *r, apr_size_t *len);

/** Keeps @p data (e.g. in the request pool) with the request, for a later step to find. */
void od_request_set_data(od_request_t *r, void *data);
/** What od_request_set_data kept; NULL if nothing. */
void *od_request_data(const od_request_t *r);

/**
 * Lets a front step hand @p r on (then returning OD_HTTP_DEFERRED): suspends its connection so
 * that od_request_finish may be called from then on, from any thread, even before front returns.
 * Returns 1; or 0 when queue_limit requests already wait (for a worker or, handed on, for the
 * store), or the server has begun to stop: then @p r is answered 503 with Retry-After, and front
 * returns OD_HTTP_ANSWERED. Call at most once, on the HTTP thread, from front only (a worker's
 * request is already suspended).
 */
int od_request_defer(od_request_t *r);

/** Adds a response header; @p name and @p value are copied into the request pool. */
void od_request_header(od_request_t *r, const char *name, const char *value);

/**
 * Sets the response. Last call wins. @p body is not copied: it must stay valid until the request
 * completes (static, or in the request pool), since libmicrohttpd sends it from there.
 */
void od_request_respond(od_request_t *r, int status, const char *content_type, const char *body,
                        apr_size_t len);

/**
 * Completes a request whose handler (front or run) returned OD_HTTP_DEFERRED, once its answer is
 * set: resumes its connection so libmicrohttpd sends the answer. Call exactly once, from any
 * thread; @p r and its pool may be gone as soon as it returns.
 */
void od_request_finish(od_request_t *r);

/** Completes a request on its HTTP thread: see od_request_finish_then. */
typedef void (*od_request_resumed_fn)(void *baton, od_request_t *r);

/**
 * As od_request_finish, but the answer is set later, by @p fn, which libmicrohttpd calls on the
 * request's HTTP thread once the connection is resumed, just before the answer is sent (with no
 * answer set it is 500). Lets whoever finishes requests in a loop (the SQLite writer) leave the
 * work of answering to the HTTP threads. @p fn and @p baton must live as long as @p r (e.g. in
 * its pool). Should the server close the connection first (it is stopping), @p fn is not
 * called: it must only answer, never be the sole keeper of anything.
 */
void od_request_finish_then(od_request_t *r, od_request_resumed_fn fn, void *baton);

/**
 * Responds with an application/problem+json body (od_problem). @p type NULL means about:blank;
 * @p errors may be NULL. A 503 also gets Retry-After: 1.
 */
void od_request_problem(od_request_t *r, int status, const char *type, const char *title,
                        const char *detail, const apr_array_header_t *errors);

#endif
