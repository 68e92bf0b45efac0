/* od_consumer: receive, deduplicate, handle and delete orderd's events from SQS. */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* pipe2 */
#endif

#include "od_consumer.h"
#include "od_file.h"
#include "od_aws.h"
#include "od_aws_creds.h"
#include "od_dedupe.h"
#include "od_json.h"
#include "od_status.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define OD_SQS_CONTENT_TYPE "application/x-amz-json-1.0"
#define OD_SQS_TARGET "AmazonSQS."
#define OD_SQS_MAX_VISIBILITY_S 43200 /* SQS's upper bound: 12 hours */
#define OD_CONSUMER_BACKOFF_MIN apr_time_from_sec(1)
#define OD_CONSUMER_BACKOFF_MAX apr_time_from_sec(30)
#define OD_CONSUMER_REAP_NAP_MAX apr_time_from_msec(20)
#define OD_CONSUMER_EVENT_ID_MAX 256

struct od_consumer_s {
    const od_settings_t *s;
    od_log_t *log;
    apr_pool_t *pool;
    od_aws_t *aws;    /* deletes, visibility changes, DynamoDB */
    od_aws_t *poller; /* ReceiveMessage only: its request timeout covers the long poll */
    const char *endpoint;
    od_dedupe_t *dedupe;
    apr_interval_time_t lease;
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *wake; /* signalled by od_consumer_stop, to cut a backoff short */
    int stopping;            /* guarded by lock */
};

/* One received message. Its pool is used by one thread at a time: the loop's while receiving
 * and parsing, then the worker's that processes it. */
typedef struct od_msg_t {
    od_consumer_t *c;
    apr_pool_t *pool;
    const char *message_id;
    const char *receipt;
    const char *body;
    apr_size_t body_len;
    int receives; /* ApproximateReceiveCount */
    apr_status_t parsed;
    const char *why; /* the parse failure */
    od_consumer_event_t event;
    struct od_msg_t *same; /* the next message of the batch with the same event_id */
    int follower;          /* processed after an earlier one, in that one's thread */
    apr_thread_t *thread;
} od_msg_t;

/* ==== configuration ==== */

static const char *od_consumer_check(const od_settings_t *s)
{
    if (s->sqs_queue_url == NULL) {
        return "sqs_queue_url is not set (the queue to consume)";
    }
    if (s->handler_command == NULL) {
        return "handler_command is not set (the executable run for each event)";
    }
    if ((s->aws_access_key_id == NULL) != (s->aws_secret_access_key == NULL)) {
        return "aws_access_key_id and aws_secret_access_key must be set together";
    }
    return NULL;
}

apr_status_t od_consumer_load_config(od_settings_t *out, const char *path, const char **errmsg,
                                     apr_pool_t *p)
{
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv = od_file_read(&text, &len, path, errmsg, p);

    if (rv == APR_SUCCESS) {
        rv = od_config_parse(out, text, len, path, errmsg, p);
    }
    const char *why = rv == APR_SUCCESS ? od_consumer_check(out) : NULL;
    if (why != NULL) {
        *errmsg = apr_psprintf(p, "%s: %s", path, why);
        rv = OD_ECONFIG;
    }
    return rv;
}

/* ==== events ==== */

static int od_consumer_is_envelope(json_object *doc)
{
    json_object *type = NULL;

    return json_object_is_type(doc, json_type_object) &&
           json_object_object_get_ex(doc, "Type", &type) &&
           json_object_is_type(type, json_type_string) &&
           strcmp(json_object_get_string(type), "Notification") == 0;
}

/* Ids go into log lines and store keys: printable ASCII without spaces, bounded. */
static int od_consumer_id_ok(const char *id, apr_size_t len)
{
    if (len == 0 || len > OD_CONSUMER_EVENT_ID_MAX) {
        return 0;
    }
    for (apr_size_t i = 0; i < len; i++) {
        if (id[i] <= 0x20 || id[i] >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* The SNS envelope's Message, parsed; sets @p out's text and @p *doc to the event document. */
static apr_status_t od_consumer_unwrap(od_consumer_event_t *out, json_object **doc,
                                       const char **why, apr_pool_t *p)
{
    json_object *msg = NULL;

    if (!json_object_object_get_ex(*doc, "Message", &msg) ||
        !json_object_is_type(msg, json_type_string)) {
        *why = "SNS envelope without a Message string";
        return OD_EINVAL;
    }
    out->len = (apr_size_t) json_object_get_string_len(msg);
    out->json = apr_pstrmemdup(p, json_object_get_string(msg), out->len);
    out->enveloped = 1;
    if (od_json_parse(doc, why, out->json, out->len, p) != APR_SUCCESS) {
        *why = apr_pstrcat(p, "SNS Message: ", *why, NULL);
        return OD_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t od_consumer_event_parse(od_consumer_event_t *out, const char **why, const char *body,
                                     apr_size_t len, apr_pool_t *p)
{
    json_object *doc = NULL, *id = NULL;

    memset(out, 0, sizeof(*out));
    *why = NULL;
    if (od_json_parse(&doc, why, body, len, p) != APR_SUCCESS) {
        return OD_EINVAL;
    }
    out->json = body;
    out->len = len;
    if (od_consumer_is_envelope(doc) && od_consumer_unwrap(out, &doc, why, p) != APR_SUCCESS) {
        return OD_EINVAL;
    }
    if (!json_object_is_type(doc, json_type_object)) {
        *why = "the event is not a JSON object";
        return OD_EINVAL;
    }
    if (!json_object_object_get_ex(doc, "event_id", &id) ||
        !json_object_is_type(id, json_type_string)) {
        *why = "the event has no event_id string";
        return OD_EINVAL;
    }
    if (!od_consumer_id_ok(json_object_get_string(id),
                           (apr_size_t) json_object_get_string_len(id))) {
        *why = "the event_id is empty, too long or not printable ASCII";
        return OD_EINVAL;
    }
    out->event_id = apr_pstrdup(p, json_object_get_string(id));
    return APR_SUCCESS;
}

/* ==== the handler process ==== */

/*
 * The handler runs under a supervisor: the first child, leader of the handler's process group,
 * runs the shell as its own child and ends the way the shell did. The kernel sends it SIGUSR1
 * when the consumer thread that started it dies (PR_SET_PDEATHSIG), and it then kills the whole
 * group: `sh -c` forks its commands, so the death signal alone would reach only the shell and
 * leave the handler running past its claim. Signals are taken with sigwait, as in the consumer.
 * Between fork and exec: async-signal-safe calls only.
 */

/* fork without the atfork handlers, which are not async-signal-safe (we are a fork's child). */
static pid_t od_consumer_fork_again(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return _Fork();
#else
    return fork();
#endif
}

static void od_consumer_shell(const char *command)
{
    sigset_t none;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the consumer blocks signals; a handler must not */
    execl("/bin/sh", "sh", "-c", command, (char *) NULL);
    _exit(127);
}

/* Leaves the handler stdin (the pipe), stdout and stderr: not the pipe's write end (its stdin
 * would never end), nor the store's files or the AWS connections. */
static int od_consumer_fds(int in)
{
    if (in == STDIN_FILENO ? fcntl(in, F_SETFD, 0) != 0 : dup2(in, STDIN_FILENO) < 0) {
        return -1;
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    closefrom(STDERR_FILENO + 1);
#else
    for (int fd = STDERR_FILENO + 1; fd < 1024; fd++) {
        close(fd);
    }
#endif
    return 0;
}

/* Ends the supervisor as the shell ended: the same exit status, or the same signal. */
static void od_consumer_pass_on(int status)
{
    struct sigaction dfl;
    struct rlimit nocore = {0, 0};
    sigset_t only;

    if (WIFEXITED(status)) {
        _exit(WEXITSTATUS(status));
    }
    int sig = WTERMSIG(status);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&only);
    sigaddset(&only, sig);
    setrlimit(RLIMIT_CORE, &nocore); /* the handler's crash: no second core from us */
    sigaction(sig, &dfl, NULL);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    kill(getpid(), sig);
    _exit(128 + sig);
}

/* Waits for the shell (SIGCHLD) or the consumer's death (SIGUSR1), both blocked. */
static int od_consumer_supervise(pid_t shell, const sigset_t *set)
{
    int status = 0, sig = 0;

    for (;;) {
        if (sigwait(set, &sig) != 0) {
            continue;
        }
        if (sig == SIGUSR1) {
            kill(0, SIGKILL); /* the consumer is gone: the handler goes too, with us */
        }
        pid_t got = waitpid(shell, &status, WNOHANG);
        if (got == shell || (got < 0 && errno != EINTR)) {
            return got == shell ? status : 127 << 8;
        }
    }
}

static void od_consumer_child(pid_t parent, int in, const char *command)
{
    sigset_t set;

    setpgid(0, 0); /* its own group: a terminal's ^C is not for it, a timeout kills it all */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL); /* before the fork, so no SIGCHLD is missed */
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGUSR1);
#endif
    if (getppid() != parent || od_consumer_fds(in) != 0) {
        _exit(127); /* the consumer died before the death signal was armed, or no stdin */
    }
    pid_t pid = od_consumer_fork_again();
    if (pid == 0) {
        od_consumer_shell(command);
    }
    if (pid < 0) {
        _exit(127);
    }
    od_consumer_pass_on(od_consumer_supervise(pid, &set));
}

/* Writes @p input in full unless the handler stops reading (EPIPE) or the deadline passes. */
static void od_consumer_feed(int fd, const char *input, apr_size_t len, apr_time_t deadline)
{
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (len > 0) {
        ssize_t n = write(fd, input, len);
        if (n > 0) {
            input += n;
            len -= (apr_size_t) n;
            continue;
        }
        apr_interval_time_t left = deadline - apr_time_now();
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || left <= 0) {
            return; /* EPIPE: the handler does not want its input; its exit status decides */
        }
        struct pollfd pfd = {fd, POLLOUT, 0};
        poll(&pfd, 1, (int) apr_time_as_msec(left) + 1);
    }
}

/* Waits for @p pid until @p deadline, then kills its group. Polls: waitpid has no timeout. */
static apr_status_t od_consumer_reap(pid_t pid, apr_time_t deadline, od_consumer_exit_t *how)
{
    apr_interval_time_t nap = apr_time_from_msec(1);
    int status = 0;

    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) {
            break;
        }
        if (got < 0 && errno != EINTR) {
            return APR_FROM_OS_ERROR(errno);
        }
        if (apr_time_now() >= deadline) {
            how->timedout = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        apr_sleep(nap);
        nap = nap * 2 < OD_CONSUMER_REAP_NAP_MAX ? nap * 2 : OD_CONSUMER_REAP_NAP_MAX;
    }
    how->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    how->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return !how->timedout && how->code == 0 ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t od_consumer_exec(const char *command, const char *input, apr_size_t len,
                              apr_interval_time_t timeout, od_consumer_exit_t *how)
{
    int fds[2];
    pid_t parent = getpid();

    memset(how, 0, sizeof(*how));
    how->code = -1;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    apr_time_t deadline = apr_time_now() + timeout;
    pid_t pid = fork();
    if (pid == 0) {
        od_consumer_child(parent, fds[0], command);
    }
    int err = errno;
    close(fds[0]);
    if (pid < 0) {
        close(fds[1]);
        return APR_FROM_OS_ERROR(err);
    }
    setpgid(pid, pid); /* also here, so the group exists before any kill of it */
    od_consumer_feed(fds[1], input, len, deadline);
    close(fds[1]);
    return od_consumer_reap(pid, deadline, how);
}

static const char *od_consumer_describe(apr_status_t rv, const od_consumer_exit_t *how,
                                        apr_interval_time_t timeout, apr_pool_t *p)
{
    char buf[128];

    if (how->timedout) {
        return apr_psprintf(p, "timed out after %ld s (killed)", (long) apr_time_sec(timeout));
    }
    if (how->signal != 0) {
        return apr_psprintf(p, "killed by signal %d", how->signal);
    }
    if (how->code >= 0) {
        return apr_psprintf(p, "exit %d", how->code);
    }
    return apr_psprintf(p, "could not start: %s", apr_strerror(rv, buf, sizeof(buf)));
}

/* ==== SQS ==== */

static apr_status_t od_consumer_json_put(void *obj)
{
    json_object_put(obj);
    return APR_SUCCESS;
}

/* A request object owned by @p p, with its QueueUrl. */
static json_object *od_consumer_request(od_consumer_t *c, apr_pool_t *p)
{
    json_object *req = json_object_new_object();

    apr_pool_cleanup_register(p, req, od_consumer_json_put, apr_pool_cleanup_null);
    json_object_object_add(req, "QueueUrl", json_object_new_string(c->s->sqs_queue_url));
    return req;
}

/* One SQS call (errors are logged by od_aws); the answer is parsed into @p doc if wanted. */
static apr_status_t od_consumer_sqs(od_consumer_t *c, od_aws_t *aws, const char *op,
                                    json_object *req, json_object **doc, apr_pool_t *p)
{
    size_t len = 0;
    const char *body = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
    od_aws_request_t r = {
        "sqs", c->endpoint, apr_pstrcat(p, OD_SQS_TARGET, op, NULL), OD_SQS_CONTENT_TYPE, body,
        len,   NULL};
    od_aws_response_t resp;
    apr_status_t rv = od_aws_call(aws, &r, &resp, p);

    if (rv != APR_SUCCESS || doc == NULL) {
        return rv;
    }
    *doc = json_tokener_parse(resp.body);
    if (*doc == NULL) {
        od_log_error(c->log, "consumer: sqs %s: the answer is not JSON", op);
        return OD_EUNAVAIL;
    }
    apr_pool_cleanup_register(p, *doc, od_consumer_json_put, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

static apr_status_t od_consumer_delete(od_consumer_t *c, const od_msg_t *m)
{
    json_object *req = od_consumer_request(c, m->pool);

    json_object_object_add(req, "ReceiptHandle", json_object_new_string(m->receipt));
    return od_consumer_sqs(c, c->aws, "DeleteMessage", req, NULL, m->pool);
}

static apr_status_t od_consumer_visibility(od_consumer_t *c, const od_msg_t *m, long seconds,
                                           apr_pool_t *p)
{
    json_object *req = od_consumer_request(c, p);

    json_object_object_add(req, "ReceiptHandle", json_object_new_string(m->receipt));
    json_object_object_add(req, "VisibilityTimeout", json_object_new_int64(seconds));
    return od_consumer_sqs(c, c->aws, "ChangeMessageVisibility", req, NULL, p);
}

static const char *od_consumer_str(json_object *obj, const char *key)
{
    json_object *v = NULL;

    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* Copies one message of the answer into @p m (in its own pool) and parses its event. */
static int od_consumer_take(od_consumer_t *c, od_msg_t *m, json_object *msg, apr_pool_t *batch)
{
    json_object *attrs = NULL;
    const char *receipt = od_consumer_str(msg, "ReceiptHandle");
    const char *body = od_consumer_str(msg, "Body");
    const char *id = od_consumer_str(msg, "MessageId");

    if (receipt == NULL || body == NULL) {
        od_log_warn(c->log, "consumer: a received message lacks ReceiptHandle or Body; skipped");
        return 0;
    }
    memset(m, 0, sizeof(*m));
    m->c = c;
    apr_pool_create(&m->pool, batch);
    m->message_id = apr_pstrdup(m->pool, id != NULL ? id : "-");
    m->receipt = apr_pstrdup(m->pool, receipt);
    m->body_len = strlen(body);
    m->body = apr_pstrmemdup(m->pool, body, m->body_len);
    if (json_object_object_get_ex(msg, "Attributes", &attrs)) {
        const char *n = od_consumer_str(attrs, "ApproximateReceiveCount");
        m->receives = n != NULL ? atoi(n) : 0;
    }
    m->parsed = od_consumer_event_parse(&m->event, &m->why, m->body, m->body_len, m->pool);
    return 1;
}

static json_object *od_consumer_receive_req(od_consumer_t *c, apr_pool_t *p)
{
    json_object *req = od_consumer_request(c, p);
    json_object *mattrs = json_object_new_array(), *attrs = json_object_new_array();

    json_object_array_add(mattrs, json_object_new_string("All"));
    json_object_array_add(attrs, json_object_new_string("ApproximateReceiveCount"));
    json_object_object_add(req, "MaxNumberOfMessages",
                           json_object_new_int(c->s->consumer_max_messages));
    json_object_object_add(req, "WaitTimeSeconds", json_object_new_int(c->s->consumer_wait_time_s));
    json_object_object_add(req, "MessageAttributeNames", mattrs);
    json_object_object_add(req, "AttributeNames", attrs);
    return req;
}

/* One long poll; the messages (up to consumer_max_messages) go to @p msgs in @p batch. */
static apr_status_t od_consumer_receive(od_consumer_t *c, od_msg_t **msgs, int *n,
                                        apr_pool_t *batch)
{
    json_object *doc = NULL, *list = NULL;
    apr_status_t rv = od_consumer_sqs(c, c->poller, "ReceiveMessage",
                                      od_consumer_receive_req(c, batch), &doc, batch);

    *n = 0;
    if (rv != APR_SUCCESS || !json_object_object_get_ex(doc, "Messages", &list) ||
        !json_object_is_type(list, json_type_array)) {
        return rv;
    }
    size_t count = json_object_array_length(list);
    *msgs = apr_pcalloc(batch, (count > 0 ? count : 1) * sizeof(**msgs));
    for (size_t i = 0; i < count; i++) {
        *n += od_consumer_take(c, &(*msgs)[*n], json_object_array_get_idx(list, i), batch);
    }
    return APR_SUCCESS;
}

/* ==== one message ==== */

/* Another consumer holds the event: hide the message until that lease ends, so it comes back
 * when it can be taken over (or is done) rather than spending its receives meanwhile. */
static void od_consumer_defer(od_consumer_t *c, od_msg_t *m, apr_time_t lease_until)
{
    apr_interval_time_t left = lease_until - apr_time_now();
    long secs = left > 0 ? (long) apr_time_sec(left + APR_USEC_PER_SEC - 1) + 1 : 0;

    if (secs > OD_SQS_MAX_VISIBILITY_S) {
        secs = OD_SQS_MAX_VISIBILITY_S;
    }
    apr_status_t rv = secs > 0 ? od_consumer_visibility(c, m, secs, m->pool) : APR_SUCCESS;
    od_log_info(c->log,
                "consumer: event=%s outcome=busy receive=%d retry_in_s=%ld (claimed by another "
                "consumer%s)",
                m->event.event_id, m->receives, secs,
                rv == APR_SUCCESS ? "" : "; hiding the message failed");
}

static void od_consumer_duplicate(od_consumer_t *c, od_msg_t *m)
{
    apr_status_t rv = od_consumer_delete(c, m);

    od_log_info(c->log, "consumer: event=%s outcome=duplicate receive=%d deleted=%s",
                m->event.event_id, m->receives, rv == APR_SUCCESS ? "yes" : "no");
}

/* Runs the handler on a claimed event; completes and deletes, or releases and leaves it. */
static void od_consumer_handle(od_consumer_t *c, od_msg_t *m, const od_dedupe_claim_t *claim)
{
    const od_settings_t *s = c->s;
    apr_interval_time_t timeout = apr_time_from_sec(s->consumer_handler_timeout_s);
    apr_time_t started = apr_time_now();
    od_consumer_exit_t how;
    apr_status_t rv =
        od_consumer_exec(s->handler_command, m->event.json, m->event.len, timeout, &how);
    long ms = (long) apr_time_as_msec(apr_time_now() - started);

    if (rv != APR_SUCCESS) {
        /* A failed release only delays the retry until the lease ends. */
        od_dedupe_release(c->dedupe, m->event.event_id, claim->token, m->pool);
        od_log_warn(c->log,
                    "consumer: event=%s outcome=failed receive=%d ms=%ld handler=\"%s\" "
                    "(left for redelivery)",
                    m->event.event_id, m->receives, ms,
                    od_consumer_describe(rv, &how, timeout, m->pool));
        return;
    }
    rv = od_dedupe_complete(c->dedupe, m->event.event_id, claim->token, apr_time_now(),
                            apr_time_from_sec(s->consumer_processed_ttl_s), m->pool);
    if (rv != APR_SUCCESS) {
        /* Not deleted: the claim's lease runs out and a redelivery runs it again. */
        od_log_error(c->log,
                     "consumer: event=%s outcome=unrecorded receive=%d ms=%ld (handled, but not "
                     "marked done: left for redelivery, it may run again)",
                     m->event.event_id, m->receives, ms);
        return;
    }
    rv = od_consumer_delete(c, m);
    od_log_info(c->log, "consumer: event=%s outcome=processed receive=%d ms=%ld deleted=%s",
                m->event.event_id, m->receives, ms, rv == APR_SUCCESS ? "yes" : "no");
}

static void od_consumer_process(od_consumer_t *c, od_msg_t *m)
{
    od_dedupe_claim_t claim;
    char buf[96];

    if (m->parsed != APR_SUCCESS) {
        od_log_warn(c->log,
                    "consumer: message=%s outcome=invalid receive=%d reason=\"%s\" (left for "
                    "the dead-letter queue)",
                    m->message_id, m->receives, m->why);
        return;
    }
    apr_status_t rv =
        od_dedupe_claim(c->dedupe, m->event.event_id, apr_time_now(), c->lease, &claim, m->pool);
    if (rv != APR_SUCCESS) {
        od_log_error(c->log,
                     "consumer: event=%s outcome=store-error receive=%d reason=\"%s\" (left for "
                     "redelivery)",
                     m->event.event_id, m->receives, od_status_str(rv, buf, sizeof(buf)));
        return;
    }
    switch (claim.outcome) {
    case OD_DEDUPE_DONE:
        od_consumer_duplicate(c, m);
        break;
    case OD_DEDUPE_BUSY:
        od_consumer_defer(c, m, claim.lease_until);
        break;
    case OD_DEDUPE_CLAIMED:
        od_consumer_handle(c, m, &claim);
        break;
    }
}

/* ==== batches ==== */

static void *APR_THREAD_FUNC od_consumer_worker(apr_thread_t *thread, void *data)
{
    for (od_msg_t *m = data; m != NULL; m = m->same) {
        od_consumer_process(m->c, m);
    }
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* Chains messages of the batch that carry the same event_id behind the first one, so they are
 * processed in order by one thread: the later ones then find the event done. */
static void od_consumer_link(od_msg_t *msgs, int n)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i && msgs[i].parsed == APR_SUCCESS; j++) {
            if (msgs[j].follower || msgs[j].parsed != APR_SUCCESS ||
                strcmp(msgs[j].event.event_id, msgs[i].event.event_id) != 0) {
                continue;
            }
            od_msg_t *tail = &msgs[j];
            while (tail->same != NULL) {
                tail = tail->same;
            }
            tail->same = &msgs[i];
            msgs[i].follower = 1;
            break;
        }
    }
}

static void od_consumer_batch(od_consumer_t *c, od_msg_t *msgs, int n)
{
    apr_status_t trv = APR_SUCCESS;

    od_consumer_link(msgs, n);
    for (int i = 0; i < n; i++) {
        if (msgs[i].follower) {
            continue;
        }
        if (apr_thread_create(&msgs[i].thread, NULL, od_consumer_worker, &msgs[i], msgs[i].pool) !=
            APR_SUCCESS) {
            msgs[i].thread = NULL;
            for (od_msg_t *m = &msgs[i]; m != NULL; m = m->same) {
                od_consumer_process(c, m); /* no thread to spare: in this one */
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (msgs[i].thread != NULL) {
            apr_thread_join(&trv, msgs[i].thread);
        }
    }
}

/* Messages a long poll returned after the stop: visible again at once, unprocessed. */
static void od_consumer_return(od_consumer_t *c, od_msg_t *msgs, int n, apr_pool_t *p)
{
    for (int i = 0; i < n; i++) {
        od_consumer_visibility(c, &msgs[i], 0, p);
    }
    if (n > 0) {
        od_log_info(c->log,
                    "consumer: stopping: %d message(s) received meanwhile returned "
                    "unprocessed",
                    n);
    }
}

/* ==== the loop ==== */

static int od_consumer_stopping(od_consumer_t *c)
{
    apr_thread_mutex_lock(c->lock);
    int stopping = c->stopping;
    apr_thread_mutex_unlock(c->lock);
    return stopping;
}

/* Sleeps up to @p t, or less if the consumer is stopped meanwhile. */
static void od_consumer_nap(od_consumer_t *c, apr_interval_time_t t)
{
    apr_thread_mutex_lock(c->lock);
    if (!c->stopping) {
        apr_thread_cond_timedwait(c->wake, c->lock, t);
    }
    apr_thread_mutex_unlock(c->lock);
}

void od_consumer_stop(od_consumer_t *c)
{
    apr_thread_mutex_lock(c->lock);
    c->stopping = 1;
    apr_thread_cond_broadcast(c->wake);
    apr_thread_mutex_unlock(c->lock);
}

/* One round: receive, then process (or return, if stopped meanwhile). Returns the receive's
 * status. */
static apr_status_t od_consumer_round(od_consumer_t *c, apr_pool_t *batch)
{
    od_msg_t *msgs = NULL;
    int n = 0;
    apr_status_t rv = od_consumer_receive(c, &msgs, &n, batch);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (od_consumer_stopping(c)) {
        od_consumer_return(c, msgs, n, batch);
    } else {
        od_consumer_batch(c, msgs, n);
    }
    if (n == 0 && c->s->consumer_wait_time_s == 0) {
        od_consumer_nap(c, OD_CONSUMER_BACKOFF_MIN); /* short polling: do not spin */
    }
    return APR_SUCCESS;
}

apr_status_t od_consumer_run(od_consumer_t *c)
{
    const od_settings_t *s = c->s;
    apr_interval_time_t backoff = 0;
    apr_pool_t *batch = NULL;

    apr_pool_create(&batch, c->pool);
    od_log_info(c->log,
                "consumer: order-consumer %s receiving from %s (wait %d s, up to %d messages, "
                "handler timeout %d s, dedupe %s)",
                ORDERD_VERSION, s->sqs_queue_url, s->consumer_wait_time_s, s->consumer_max_messages,
                s->consumer_handler_timeout_s, od_dedupe_name(c->dedupe));
    while (!od_consumer_stopping(c)) {
        if (od_consumer_round(c, batch) == APR_SUCCESS) {
            backoff = 0;
        } else {
            /* Logged by od_aws; back off so an outage is not hammered. */
            backoff = backoff == 0 ? OD_CONSUMER_BACKOFF_MIN : backoff * 2;
            backoff = backoff > OD_CONSUMER_BACKOFF_MAX ? OD_CONSUMER_BACKOFF_MAX : backoff;
            od_consumer_nap(c, backoff);
        }
        apr_pool_clear(batch);
    }
    apr_pool_destroy(batch);
    od_log_info(c->log, "consumer: stopped");
    return APR_SUCCESS;
}

/* ==== building ==== */

static apr_status_t od_consumer_client(od_consumer_t *c, od_aws_t **out, od_aws_creds_t *creds,
                                       const char *region, int max_connections, long timeout_ms)
{
    const od_settings_t *s = c->s;
    od_aws_options_t o = {region,
                          max_connections,
                          s->aws_connect_timeout_ms,
                          timeout_ms,
                          s->aws_max_attempts,
                          s->aws_retry_base_ms,
                          s->aws_retry_cap_ms};

    return od_aws_create(out, &o, creds, c->log, c->pool);
}

static apr_status_t od_consumer_open_aws(od_consumer_t *c, const char **region)
{
    const od_settings_t *s = c->s;
    od_aws_creds_options_t co = {.access_key_id = s->aws_access_key_id,
                                 .secret_access_key = s->aws_secret_access_key,
                                 .session_token = s->aws_session_token};
    od_aws_creds_t *creds = NULL;

    *region = od_aws_resolve_region(s->aws_region);
    if (*region == NULL) {
        od_log_error(c->log, "consumer: no AWS region: set aws_region (or AWS_REGION)");
        return OD_ECONFIG;
    }
    apr_status_t rv = od_aws_creds_create(&creds, &co, c->log, c->pool);
    if (rv == APR_SUCCESS) {
        rv = od_consumer_client(c, &c->aws, creds, *region, s->aws_max_connections,
                                s->aws_request_timeout_ms);
    }
    if (rv == APR_SUCCESS) {
        /* A long poll holds the request for up to WaitTimeSeconds: time it out only after. */
        long poll_ms = s->consumer_wait_time_s * 1000L + s->aws_request_timeout_ms;
        rv = od_consumer_client(c, &c->poller, creds, *region, 1, poll_ms);
    }
    c->endpoint = od_aws_resolve_endpoint(s->sqs_endpoint, "SQS", "sqs", *region, c->pool);
    return rv;
}

static apr_status_t od_consumer_open_dedupe(od_consumer_t *c, const char *region)
{
    const od_settings_t *s = c->s;

    if (s->store == OD_STORE_KIND_SQLITE) {
        return od_dedupe_sqlite_create(&c->dedupe, s->sqlite_path, c->log, c->pool);
    }
    const char *endpoint =
        od_aws_resolve_endpoint(s->dynamodb_endpoint, "DYNAMODB", "dynamodb", region, c->pool);
    od_log_info(c->log, "consumer: dedupe in DynamoDB table %s at %s", s->dynamodb_table, endpoint);
    return od_dedupe_dynamodb_create(&c->dedupe, c->aws, endpoint, s->dynamodb_table, c->log,
                                     c->pool);
}

apr_status_t od_consumer_create(od_consumer_t **out, const od_settings_t *settings, od_log_t *log,
                                apr_pool_t *p)
{
    od_consumer_t *c = apr_pcalloc(p, sizeof(*c));
    const char *region = NULL;

    *out = NULL;
    c->s = settings;
    c->log = log;
    c->pool = p;
    c->lease = apr_time_from_sec(settings->consumer_handler_timeout_s + OD_CONSUMER_LEASE_MARGIN_S);
    apr_status_t rv = apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&c->wake, p);
    }
    if (rv != APR_SUCCESS) {
        od_log_error(log, "consumer: creating the stop lock failed: %d", rv);
        return rv;
    }
    rv = od_consumer_open_aws(c, &region);
    if (rv == APR_SUCCESS) {
        rv = od_consumer_open_dedupe(c, region);
    }
    if (rv == APR_SUCCESS) {
        *out = c;
    }
    return rv;
}
