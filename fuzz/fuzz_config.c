/*
 * fuzz_config: configuration files through od_config_parse, as `orderd -t` and start-up see them.
 *
 * For every input, the promises of od_config.h and what od_server_load_config builds on them:
 *   - a rejection names the file: "FILE:LINE: problem" (or "FILE: problem" for keys that
 *     contradict one another);
 *   - blank lines and comment lines appended change nothing: not the verdict, not the message,
 *     not one setting;
 *   - an accepted file yields settings od_order_rules_create accepts (the pattern compiles, the
 *     limits are positive), whose start-up log (od_config_to_json) has a value for every key,
 *     names its enums, and shows the secrets only as "***".
 */
#include "od_fuzz.h"
#include "od_config.h"
#include "od_order.h"

#include <apr_strings.h>
#include <json-c/json.h>
#include <string.h>

#define FUZZ_CONFIG_FILE "fuzz.conf"
#define FUZZ_CONFIG_TAIL "\n\n   \n# a comment\n\t# another = one\n"

static apr_status_t fuzz_config_parse(od_settings_t *s, const char **errmsg, const char *text,
                                      apr_size_t len, apr_pool_t *p)
{
    apr_status_t rv = od_config_parse(s, text, len, FUZZ_CONFIG_FILE, errmsg, p);

    if (rv != APR_SUCCESS) {
        OD_FUZZ_CHECK(*errmsg != NULL &&
                          strncmp(*errmsg, FUZZ_CONFIG_FILE ":", sizeof(FUZZ_CONFIG_FILE)) == 0,
                      "a rejection names the file: %s", *errmsg);
    }
    return rv;
}

static void fuzz_config_check_secret(json_object *log, const char *key, const char *value)
{
    json_object *v = NULL;

    OD_FUZZ_CHECK(json_object_object_get_ex(log, key, &v), "the start-up log has '%s'", key);
    OD_FUZZ_CHECK(value == NULL ? v == NULL : strcmp(json_object_get_string(v), "***") == 0,
                  "the start-up log shows '%s' only as \"***\"", key);
}

/* The start-up log of @p s as text (from @p p), after checking what it must say. */
static const char *fuzz_config_check_log(const od_settings_t *s, apr_pool_t *p)
{
    json_object *log = od_config_to_json(s);

    OD_FUZZ_CHECK(log != NULL && json_object_is_type(log, json_type_object),
                  "the start-up log is an object");
    fuzz_config_check_secret(log, "aws_secret_access_key", s->aws_secret_access_key);
    fuzz_config_check_secret(log, "aws_session_token", s->aws_session_token);
    OD_FUZZ_CHECK(strcmp(od_config_sink_name(s->events_sink), "?") != 0 &&
                      strcmp(od_config_log_level_name(s->log_level), "?") != 0,
                  "the events sink and log level have names");
    const char *text = apr_pstrdup(p, json_object_to_json_string_ext(log, JSON_C_TO_STRING_PLAIN));
    json_object_put(log);
    return text;
}

static void fuzz_config_check_accepted(const od_settings_t *s, apr_pool_t *p)
{
    od_order_rules_t *rules = NULL;
    const char *why = NULL;

    OD_FUZZ_CHECK(od_order_rules_create(&rules, s->customer_id_pattern, s->max_quantity,
                                        s->max_items, &why, p) == APR_SUCCESS,
                  "accepted settings make order rules: %s", why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = od_fuzz_pool();
    od_settings_t s, s2;
    const char *err = NULL, *err2 = NULL;
    apr_size_t tail = sizeof(FUZZ_CONFIG_TAIL) - 1;
    char *longer = apr_palloc(p, size + tail);

    apr_status_t rv = fuzz_config_parse(&s, &err, (const char *) data, size, p);
    memcpy(longer, data, size);
    memcpy(longer + size, FUZZ_CONFIG_TAIL, tail);
    apr_status_t rv2 = fuzz_config_parse(&s2, &err2, longer, size + tail, p);
    OD_FUZZ_CHECK(rv == rv2, "blank and comment lines at the end change the verdict");
    if (rv != APR_SUCCESS) {
        OD_FUZZ_CHECK(strcmp(err, err2) == 0, "blank and comment lines change the message: %s / %s",
                      err, err2);
    } else {
        fuzz_config_check_accepted(&s, p);
        OD_FUZZ_CHECK(strcmp(fuzz_config_check_log(&s, p), fuzz_config_check_log(&s2, p)) == 0,
                      "blank and comment lines at the end change a setting");
    }
    apr_pool_destroy(p);
    return 0;
}
