/*
 * od_consumer: order-consumer, the reference idempotent consumer of orderd's events.
 *
 * One receive loop long-polls the SQS queue (ReceiveMessage, JSON 1.0 protocol, WaitTimeSeconds
 * = consumer_wait_time_s, up to consumer_max_messages). The messages of a batch are processed
 * concurrently, one thread each (messages of one batch carrying the same event_id one after the
 * other, in one thread). Per message:
 *   1. parse: the body is the event JSON itself (raw delivery) or an SNS envelope
 *      {"Type":"Notification","Message":"<event JSON>"}; the event must be an object with a
 *      string event_id. Anything else is logged and left alone: the queue's redrive policy
 *      moves it to the dead-letter queue.
 *   2. claim the event_id in the dedupe store (od_dedupe.h) for a lease of
 *      consumer_handler_timeout_s + OD_CONSUMER_LEASE_MARGIN_S:
 *        DONE    already processed: delete the message;
 *        BUSY    another consumer holds a live lease: the message is hidden until that lease
 *                ends (ChangeMessageVisibility), then comes back and is taken over or found done;
 *        CLAIMED run the handler.
 *   3. the handler: `/bin/sh -c handler_command` with the event JSON on stdin, in its own
 *      process group, killed (the group) after consumer_handler_timeout_s or when the consumer
 *      dies. Exit 0 is success:
 *      complete (state done for consumer_processed_ttl_s), then delete the message. Anything
 *      else: release the claim and leave the message, to be redelivered after the queue's
 *      visibility timeout (and moved to the dead-letter queue by its redrive policy).
 * The message is deleted only after complete succeeded or the event was found done.
 *
 * Stopping (od_consumer_stop): no new receive starts; the batch in flight finishes (handlers,
 * completes, deletes); messages a long-poll returns after the stop are made visible again
 * unprocessed (visibility 0). So a stop waits at most one long-poll plus one handler timeout.
 */
#ifndef OD_CONSUMER_H
#define OD_CONSUMER_H

#include "od_config.h"
#include "od_log.h"

#include <apr_pools.h>
#include <apr_time.h>

/** Added to the handler timeout to make a claim's lease (covers the claim/complete calls). */
#define OD_CONSUMER_LEASE_MARGIN_S 5

typedef struct od_consumer_s od_consumer_t;

/** An event taken from a message body; strings point into the body or into the call's pool. */
typedef struct od_consumer_event_t {
    const char *event_id;
    const char *json; /* the event JSON given to the handler (the body, or the SNS Message) */
    apr_size_t len;
    int enveloped; /* 1 if it came in an SNS envelope */
} od_consumer_event_t;

/** How a handler run ended. */
typedef struct od_consumer_exit_t {
    int code;     /* exit status, or -1 if it did not exit normally */
    int signal;   /* the signal that ended it, or 0 */
    int timedout; /* 1 if it was killed for running past the timeout */
} od_consumer_exit_t;

/**
 * Reads and parses the configuration file at @p path (the format orderd uses; orderd's keys are
 * accepted and ignored) and checks what the consumer needs: sqs_queue_url and handler_command
 * set, AWS keys set together. Returns APR_SUCCESS with @p out filled (strings from @p p), or
 * OD_ECONFIG / an APR status with @p *errmsg "FILE[:LINE]: problem".
 */
apr_status_t od_consumer_load_config(od_settings_t *out, const char *path, const char **errmsg,
                                     apr_pool_t *p);

/**
 * Builds the consumer from checked @p settings (which must outlive it): credentials, the AWS
 * clients, the dedupe store (sqlite at sqlite_path, or dynamodb in dynamodb_table). Returns
 * APR_SUCCESS and @p *out; otherwise the failure is logged and what was built is released with
 * @p p. Nothing is received until od_consumer_run. curl_global_init must have been called.
 */
apr_status_t od_consumer_create(od_consumer_t **out, const od_settings_t *settings, od_log_t *log,
                                apr_pool_t *p);

/**
 * Runs the receive loop in the calling thread until od_consumer_stop, then returns APR_SUCCESS
 * once the batch in flight is finished. Errors of the queue or the store are logged and retried
 * (backoff up to 30 s); they never end the loop.
 */
apr_status_t od_consumer_run(od_consumer_t *c);

/** Asks the loop to stop (see above) and returns at once. Thread-safe; not async-signal-safe. */
void od_consumer_stop(od_consumer_t *c);

/**
 * Takes the event from message body @p body (@p len bytes): the SNS envelope's Message if the
 * body is one, else the body itself, parsed strictly (od_json). Returns APR_SUCCESS and @p out,
 * or OD_EINVAL with a static or @p p-allocated reason in @p *why (never quoting the body).
 * The event_id must be 1..256 printable ASCII characters without spaces. Thread-safe.
 */
apr_status_t od_consumer_event_parse(od_consumer_event_t *out, const char **why, const char *body,
                                     apr_size_t len, apr_pool_t *p);

/**
 * Runs `/bin/sh -c @p command` with @p input (@p len bytes) on its stdin (written in full, then
 * closed; a handler that exits without reading it is fine) and stdout/stderr inherited, in a
 * process group of its own under a small supervisor process, killing the group with SIGKILL
 * after @p timeout. On Linux the supervisor also kills the group if the calling thread dies
 * (PR_SET_PDEATHSIG), so a crashed consumer leaves no handler running past its lease. Returns
 * APR_SUCCESS if it exited 0; APR_EGENERAL for any other end (see @p how); or the errno of a
 * failed pipe/fork (then @p how->code is -1). Thread-safe; SIGPIPE must be blocked or ignored.
 */
apr_status_t od_consumer_exec(const char *command, const char *input, apr_size_t len,
                              apr_interval_time_t timeout, od_consumer_exit_t *how);

#endif
