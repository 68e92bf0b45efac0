/*
 * Tests of od_sink_file on a file that fills up: a file size limit (RLIMIT_FSIZE, with SIGXFSZ
 * ignored) makes write() stop short at the limit and then fail with EFBIG, as a full disk stops
 * it with ENOSPC, a genuine partial write. A failed batch must leave the file byte for byte as it
 * was, and later batches complete lines only; and scripts/verify-events must report a corrupt
 * line instead of crashing on it.
 *
 * The limit holds for every file of the test process, Check's own message file too: the events
 * file starts with 1 MiB of padding lines, so that only its writes reach the limit.
 */
#include "od_event.h"
#include "od_sink_file.h"
#include "od_status.h"
#include "od_suites.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define SF_EVENTS 8

static char dir[64];
static const char *path;
static od_event_t ev[SF_EVENTS];
static apr_status_t results[SF_EVENTS];

static void setup(void)
{
    od_test_pool_setup();
    strcpy(dir, "/tmp/od-sink-file-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    path = apr_pstrcat(od_test_pool, dir, "/events.jsonl", NULL);
    for (int i = 0; i < SF_EVENTS; i++) {
        ev[i].event_id = apr_psprintf(od_test_pool, "01EV%022d", i);
        ev[i].order_id = apr_psprintf(od_test_pool, "01OR%022d", i);
        const char *doc = apr_psprintf(od_test_pool, "{\"order_id\":\"%s\",\"pad\":\"%0200d\"}",
                                       ev[i].order_id, i);
        ev[i].body = od_event_render(ev[i].event_id, doc, 0, &ev[i].body_len, od_test_pool);
    }
    unsetenv("ORDERD_FAULT_EVENTS_TRUNCATE_FAILS");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 256; i++) {
        fprintf(f, "{\"pad\":\"%04090d\"}\n", i);
    }
    ck_assert_int_eq(fclose(f), 0);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    od_test_pool_teardown();
}

static od_sink_t *sink_open(void)
{
    od_log_t *log = NULL;
    od_sink_t *sink = NULL;

    ck_assert_int_eq(od_log_create(&log, OD_LOG_WARN, stderr, od_test_pool), APR_SUCCESS);
    ck_assert_int_eq(od_sink_file_create(&sink, path, log, od_test_pool), APR_SUCCESS);
    return sink;
}

static const char *contents(apr_size_t *len)
{
    apr_file_t *f = NULL;
    apr_finfo_t fi;
    char *text = NULL;

    ck_assert_int_eq(apr_file_open(&f, path, APR_FOPEN_READ, 0, od_test_pool), APR_SUCCESS);
    ck_assert_int_eq(apr_file_info_get(&fi, APR_FINFO_SIZE, f), APR_SUCCESS);
    *len = (apr_size_t) fi.size;
    text = apr_pcalloc(od_test_pool, *len + 1);
    if (*len > 0) {
        ck_assert_int_eq(apr_file_read_full(f, text, *len, NULL), APR_SUCCESS);
    }
    apr_file_close(f);
    return text;
}

/* The file size limit of this (forked) test process: @p limit bytes, or none (-1). */
static void file_limit(long limit)
{
    struct rlimit lim;

    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &lim), 0);
    lim.rlim_cur = limit < 0 ? lim.rlim_max : (rlim_t) limit;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

/* Publishes events [@p from, @p to); returns the batch's status, each result checked. */
static apr_status_t publish(od_sink_t *sink, int from, int to)
{
    apr_status_t rv = od_sink_publish(sink, ev + from, to - from, results, od_test_pool);
    for (int i = 0; i < to - from; i++) {
        ck_assert_int_eq(results[i], rv);
    }
    return rv;
}

/* Each line of the file is a whole envelope; event i appears exactly @p want[i] times. An
 * unparseable line counts in @p *corrupt (NULL: none allowed). */
static void assert_lines(const int *want, int *corrupt)
{
    apr_size_t len = 0;
    char *text = apr_pstrdup(od_test_pool, contents(&len));
    int seen[SF_EVENTS] = {0}, bad = 0;

    ck_assert_msg(len == 0 || text[len - 1] == '\n', "the file ends in part of a line");
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "{\"pad\":", 7) == 0) {
            continue;
        }
        json_object *doc = json_tokener_parse(line), *id = NULL;
        if (doc == NULL || !json_object_object_get_ex(doc, "event_id", &id)) {
            ck_assert_msg(corrupt != NULL, "not an envelope: %.80s", line);
            bad++;
            json_object_put(doc);
            continue;
        }
        int i = atoi(json_object_get_string(id) + 4);
        ck_assert_str_eq(line, ev[i].body);
        seen[i]++;
        json_object_put(doc);
    }
    for (int i = 0; i < SF_EVENTS; i++) {
        ck_assert_msg(seen[i] == want[i], "event %d: %d times, not %d", i, seen[i], want[i]);
    }
    if (corrupt != NULL) {
        *corrupt = bad;
    }
}

START_TEST(test_sink_file_failed_write_leaves_file_as_it_was)
{
    od_sink_t *sink = sink_open();
    apr_size_t before_len = 0, after_len = 0;
    int want[SF_EVENTS] = {1, 1, 0, 0, 0, 0, 0, 0};

    ck_assert_int_eq(publish(sink, 0, 2), APR_SUCCESS);
    const char *before = contents(&before_len);
    /* Room for one and a half events: the batch of three stops part-way. */
    file_limit((long) (before_len + ev[2].body_len * 3 / 2));
    ck_assert_int_eq(publish(sink, 2, 5), OD_EUNAVAIL);
    const char *after = contents(&after_len);
    ck_assert_uint_eq(after_len, before_len);
    ck_assert(memcmp(after, before, before_len) == 0);
    assert_lines(want, NULL);
    /* Still full: one event fits, the next batch does not; the file stays whole lines. */
    ck_assert_int_eq(publish(sink, 2, 3), APR_SUCCESS);
    ck_assert_int_eq(publish(sink, 3, 5), OD_EUNAVAIL);
    want[2] = 1;
    assert_lines(want, NULL);
    /* Room again: the failed events, published again, are whole lines, each once. */
    file_limit(-1);
    ck_assert_int_eq(publish(sink, 3, 8), APR_SUCCESS);
    for (int i = 3; i < 8; i++) {
        want[i] = 1;
    }
    assert_lines(want, NULL);
}
END_TEST

/* The cut after a failed write fails once (fault injection): the next publish cuts again first,
 * so the file is whole lines again before anything is appended. */
START_TEST(test_sink_file_failed_cut_retried_before_next_write)
{
#ifdef ORDERD_FAULT_INJECTION
    int want[SF_EVENTS] = {1, 0, 1, 1, 0, 0, 0, 0};
    apr_size_t len = 0, len0 = 0;

    setenv("ORDERD_FAULT_EVENTS_TRUNCATE_FAILS", "1", 1);
    od_sink_t *sink = sink_open();
    ck_assert_int_eq(publish(sink, 0, 1), APR_SUCCESS);
    contents(&len0);
    file_limit((long) (len0 + ev[1].body_len / 2));
    ck_assert_int_eq(publish(sink, 1, 2), OD_EUNAVAIL);
    contents(&len);
    ck_assert_uint_eq(len, len0 + ev[1].body_len / 2); /* the fragment is still there */
    file_limit(-1);
    ck_assert_int_eq(publish(sink, 2, 4), APR_SUCCESS);
    assert_lines(want, NULL); /* no corrupt line: the fragment was cut */
#endif
}
END_TEST

/* The cut fails again when retried: the next batch starts on a new line, so its events are
 * whole lines and the fragment a line of its own, which readers report as corrupt. */
START_TEST(test_sink_file_uncuttable_fragment_kept_on_its_own_line)
{
#ifdef ORDERD_FAULT_INJECTION
    int want[SF_EVENTS] = {1, 0, 1, 1, 1, 0, 0, 0}, corrupt = 0;
    apr_size_t len = 0;

    setenv("ORDERD_FAULT_EVENTS_TRUNCATE_FAILS", "2", 1);
    od_sink_t *sink = sink_open();
    ck_assert_int_eq(publish(sink, 0, 1), APR_SUCCESS);
    contents(&len);
    file_limit((long) (len + ev[1].body_len / 2));
    ck_assert_int_eq(publish(sink, 1, 2), OD_EUNAVAIL);
    file_limit(-1);
    ck_assert_int_eq(publish(sink, 2, 4), APR_SUCCESS);
    ck_assert_int_eq(publish(sink, 4, 5), APR_SUCCESS);
    assert_lines(want, &corrupt);
    ck_assert_int_eq(corrupt, 1);
#endif
}
END_TEST

/* A file that ends in part of a line when orderd starts (a write cut short by a crash): the
 * first event starts on a new line, and nothing of the old text is lost. In test builds also
 * when the first write fails and cutting it off fails once: the retried cut keeps the old
 * fragment, which still gets its newline. */
START_TEST(test_sink_file_partial_line_at_start_ended)
{
    int want[SF_EVENTS] = {1, 0, 0, 0, 0, 0, 0, 0}, corrupt = 0;
    apr_size_t len = 0;
    FILE *f = fopen(path, "a");

    ck_assert_ptr_nonnull(f);
    fputs("{\"event_id\":\"01EV", f);
    fclose(f);
    setenv("ORDERD_FAULT_EVENTS_TRUNCATE_FAILS", "1", 1);
    od_sink_t *sink = sink_open();
#ifdef ORDERD_FAULT_INJECTION
    contents(&len);
    file_limit((long) (len + ev[1].body_len / 2));
    ck_assert_int_eq(publish(sink, 1, 2), OD_EUNAVAIL);
    file_limit(-1);
#endif
    ck_assert_int_eq(publish(sink, 0, 1), APR_SUCCESS);
    const char *text = contents(&len);
    ck_assert_ptr_nonnull(strstr(text, "{\"event_id\":\"01EV\n{"));
    assert_lines(want, &corrupt);
    ck_assert_int_eq(corrupt, 1);
}
END_TEST

/* ---- scripts/verify-events ---- */

static const char *write_file(const char *name, const char *text, apr_size_t len)
{
    const char *p = apr_pstrcat(od_test_pool, dir, "/", name, NULL);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
    return p;
}

/* Runs verify-events (no --url: stored is not checked); its stdout and stderr go to @p out. */
static int verify_events(const char *accepted, const char *events, char *out, size_t size)
{
    char cmd[PATH_MAX * 3];

    snprintf(cmd, sizeof(cmd), "python3 %s/scripts/verify-events --accepted %s --events %s 2>&1",
             ORDERD_SOURCE_DIR, accepted, events);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    int rc = pclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

START_TEST(test_sink_file_verify_events_reports_corrupt_lines)
{
    char out[4096];
    const char *accepted = apr_pstrcat(od_test_pool, ev[0].order_id, "\n", ev[1].order_id, "\n",
                                       ev[2].order_id, "\n", NULL);
    /* Line 2: an event glued onto a cut one; 3: not UTF-8; 4: JSON, not an event; 6: an SNS
     * notification whose Message is not JSON. */
    const char *events =
        apr_pstrcat(od_test_pool, ev[0].body, "\n", "{\"event_id\":\"01EV", ev[1].body, "\n",
                    "\xff\xfe{}\n", "[1,2]\n", ev[2].body, "\n",
                    "{\"Type\":\"Notification\",\"Message\":\"{\\\"event_id\"}\n", "\n", NULL);

    int rc = verify_events(write_file("accepted.txt", accepted, strlen(accepted)),
                           write_file("events.jsonl", events, strlen(events)), out, sizeof(out));
    ck_assert_msg(strstr(out, "Traceback") == NULL, "verify-events crashed: %s", out);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
    ck_assert_msg(strncmp(out, "accepted 3, stored 3, delivered 2, lost 1, corrupt 4\n", 53) == 0,
                  "%s", out);
    for (int line = 2; line <= 6; line++) {
        char want[32];
        snprintf(want, sizeof(want), "corrupt: line %d:", line);
        ck_assert_msg((strstr(out, want) != NULL) == (line != 5), "line %d: %s", line, out);
    }
    /* Only the good lines: every order delivered, nothing corrupt, exit 0. */
    events = apr_pstrcat(od_test_pool, ev[0].body, "\n", ev[1].body, "\n", ev[2].body, "\n", NULL);
    rc = verify_events(write_file("accepted.txt", accepted, strlen(accepted)),
                       write_file("events.jsonl", events, strlen(events)), out, sizeof(out));
    ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
    ck_assert_str_eq(out, "accepted 3, stored 3, delivered 3, lost 0, corrupt 0\n");
}
END_TEST

Suite *od_sink_file_suite(void)
{
    Suite *s = suite_create("sink_file");
    TCase *tc = tcase_create("full");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sink_file_failed_write_leaves_file_as_it_was);
    tcase_add_test(tc, test_sink_file_failed_cut_retried_before_next_write);
    tcase_add_test(tc, test_sink_file_uncuttable_fragment_kept_on_its_own_line);
    tcase_add_test(tc, test_sink_file_partial_line_at_start_ended);
    tcase_add_test(tc, test_sink_file_verify_events_reports_corrupt_lines);
    suite_add_tcase(s, tc);
    return s;
}
