/*
 * A slow HTTP/1.1 responder on 127.0.0.1, standing in for an AWS endpoint with a given latency.
 *
 * Each connection gets a thread of its own; each request (Content-Length body) is answered 200,
 * after a delay, with a body made by a callback from the request's body. It counts the requests
 * and the most it held at once (received, not yet answered), which is what a test of concurrency
 * on the client's side reads. Failures to start abort the calling Check test.
 */
#ifndef OD_TEST_RESPONDER_H
#define OD_TEST_RESPONDER_H

#include <stddef.h>

typedef struct od_test_responder_s od_test_responder_t;

/**
 * Makes the answer to one request from its body (@p len bytes, NUL-terminated); returns a
 * malloc()ed NUL-terminated body, or NULL for a 500. Called on the connections' threads, so
 * concurrently with itself; no ck_assert there (not the test's thread).
 */
typedef char *od_test_responder_fn(void *baton, const char *body, size_t len);

/**
 * Starts a responder on a free port answering each request after @p delay_ms with @p answer.
 * @p gather > 1: until @p gather requests have been held at once, each request first waits for
 * that to happen (bounded: 5 s), so the count reaches @p gather whenever the client allows it,
 * however its threads are scheduled; 0: no waiting.
 */
od_test_responder_t *od_test_responder_start(long delay_ms, int gather,
                                             od_test_responder_fn *answer, void *baton);

/** "http://127.0.0.1:PORT"; owned by the responder. */
const char *od_test_responder_url(const od_test_responder_t *r);

/** Requests received so far. Thread-safe. */
unsigned int od_test_responder_requests(od_test_responder_t *r);

/** The most requests held at once so far. Thread-safe. */
unsigned int od_test_responder_max_in_flight(od_test_responder_t *r);

/** Stops it: closes every connection, joins every thread, frees it. NULL is ignored. */
void od_test_responder_stop(od_test_responder_t *r);

#endif
