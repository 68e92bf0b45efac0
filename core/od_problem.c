/* od_problem: RFC 9457 problem details bodies, escaped and buffered by json-c. */
#include "od_problem.h"

#include <apr_strings.h>
#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <stdio.h>
#include <string.h>

void od_problem_add(apr_array_header_t *errors, const char *field, const char *message)
{
    od_field_error_t *e = apr_array_push(errors);

    /* NULL would make json-c emit null where the schema promises strings. */
    e->field = apr_pstrdup(errors->pool, field != NULL ? field : "");
    e->message = apr_pstrdup(errors->pool, message != NULL ? message : "");
}

#define OD_PROBLEM_STRING_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* A body is written into a json-c print buffer with json-c's own string escaping, through one
 * string object reused for every value: the fixed member structure needs no tree of objects,
 * and building and freeing that tree (a hash table per object) cost more than the rest of a
 * 400 answer. */
typedef struct od_problem_out_s {
    struct printbuf *pb;
    json_object *str;
} od_problem_out_t;

/* Appends ,"name":"value" (no comma when @p first); @p name is a plain constant, @p value is
 * escaped by json-c. */
static void od_problem_member(od_problem_out_t *o, const char *name, const char *value, int first)
{
    size_t len = 0;

    json_object_set_string(o->str, value);
    const char *esc = json_object_to_json_string_length(o->str, OD_PROBLEM_STRING_FLAGS, &len);
    if (!first) {
        printbuf_strappend(o->pb, ",");
    }
    printbuf_strappend(o->pb, "\"");
    printbuf_memappend(o->pb, name, (int) strlen(name));
    printbuf_strappend(o->pb, "\":");
    printbuf_memappend(o->pb, esc, (int) len);
}

static void od_problem_errors(od_problem_out_t *o, const apr_array_header_t *errors)
{
    printbuf_strappend(o->pb, ",\"errors\":[");
    for (int i = 0; i < errors->nelts; i++) {
        const od_field_error_t *e = &APR_ARRAY_IDX(errors, i, od_field_error_t);
        if (i > 0) {
            printbuf_strappend(o->pb, ",");
        }
        printbuf_strappend(o->pb, "{");
        od_problem_member(o, "field", e->field, 1);
        od_problem_member(o, "message", e->message, 0);
        printbuf_strappend(o->pb, "}");
    }
    printbuf_strappend(o->pb, "]");
}

const char *od_problem_render(int status, const char *type, const char *title, const char *detail,
                              const apr_array_header_t *errors, apr_pool_t *p)
{
    od_problem_out_t o = {printbuf_new(), json_object_new_string("")};

    /* The member order clients see: type, title, status, detail, errors. */
    printbuf_strappend(o.pb, "{");
    od_problem_member(&o, "type", type != NULL ? type : "about:blank", 1);
    od_problem_member(&o, "title", title != NULL ? title : "", 0);
    char num[16];
    printbuf_strappend(o.pb, ",\"status\":");
    printbuf_memappend(o.pb, num, snprintf(num, sizeof(num), "%d", status));
    if (detail != NULL) {
        od_problem_member(&o, "detail", detail, 0);
    }
    if (errors != NULL && errors->nelts > 0) {
        od_problem_errors(&o, errors);
    }
    printbuf_strappend(o.pb, "}");
    const char *body = apr_pstrmemdup(p, o.pb->buf, (apr_size_t) o.pb->bpos);
    printbuf_free(o.pb);
    json_object_put(o.str);
    return body;
}
