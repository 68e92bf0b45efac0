/*
 * Test engines: the local AWS engines and a fault-injecting HTTP proxy, all on 127.0.0.1.
 *
 * moto_server is found on PATH; DynamoDB Local's jar at $ORDERD_TEST_DDB_JAR (scripts/test.sh
 * installs it from the npm package amplify-dynamodb-simulator and exports the path). Engines are
 * started on free ports, waited for (bounded), and killed with their process group on stop.
 * Failures abort the calling Check test with a clear message.
 */
#ifndef OD_TEST_ENGINES_H
#define OD_TEST_ENGINES_H

#include <stddef.h>

typedef struct od_test_engine_s od_test_engine_t;
typedef struct od_test_proxy_s od_test_proxy_t;

/**
 * Starts moto_server on a free port. @p env is NULL or a NULL-terminated list of "NAME=VALUE"
 * added to its environment (e.g. "INITIAL_NO_AUTH_ACTION_COUNT=4"). Returns when it answers.
 */
od_test_engine_t *od_test_moto_start(const char *const *env);

/** Starts DynamoDB Local (-inMemory) on a free port; returns when it answers. */
od_test_engine_t *od_test_ddblocal_start(void);

/** "http://127.0.0.1:PORT"; owned by the engine. */
const char *od_test_engine_url(const od_test_engine_t *e);

/** Stops the engine (SIGTERM, then SIGKILL after 5 s) and frees it. NULL is ignored. */
void od_test_engine_stop(od_test_engine_t *e);

/** What the proxy does to the next requests. */
typedef enum od_test_proxy_mode_e {
    OD_PROXY_PASS,     /* forward to the upstream */
    OD_PROXY_THROTTLE, /* answer 400 {"__type":"...#ThrottlingException"} without forwarding */
    OD_PROXY_ERROR500, /* answer 500 {"__type":"...#InternalServerError"} */
    OD_PROXY_DROP,     /* close the connection without answering (nothing is forwarded) */
    OD_PROXY_LOSE,     /* forward (the upstream applies it), then close without answering */
    OD_PROXY_HOLD      /* forward, then keep the answer until the client closes (a stall) */
} od_test_proxy_mode_e;

/**
 * Starts an HTTP/1.1 proxy on a free port that forwards keep-alive connections to
 * @p upstream_url ("http://127.0.0.1:PORT"), parsing each request (Content-Length bodies) so it
 * can count and fault individual requests. Runs in its own threads until stopped.
 */
od_test_proxy_t *od_test_proxy_start(const char *upstream_url);

/** Applies @p mode to the next @p count requests (-1: until changed), then PASS. Thread-safe. */
void od_test_proxy_set_mode(od_test_proxy_t *p, od_test_proxy_mode_e mode, int count);

/**
 * Limits the mode to requests whose X-Amz-Target contains @p target (copied; e.g.
 * "TransactWriteItems"): the others pass and are not counted. NULL: every request (the default).
 * Thread-safe.
 */
void od_test_proxy_set_target(od_test_proxy_t *p, const char *target);

/** TCP connections accepted so far. Thread-safe. */
unsigned int od_test_proxy_connects(od_test_proxy_t *p);

/** Requests received so far (faulted or forwarded). Thread-safe. */
unsigned int od_test_proxy_requests(od_test_proxy_t *p);

/** Largest number of client connections open at the same time so far. Thread-safe. */
unsigned int od_test_proxy_max_open(od_test_proxy_t *p);

/** "http://127.0.0.1:PORT"; owned by the proxy. */
const char *od_test_proxy_url(const od_test_proxy_t *p);

/** Stops the proxy, closes every connection, frees it. NULL is ignored. */
void od_test_proxy_stop(od_test_proxy_t *p);

#endif
