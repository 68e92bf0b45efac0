/* od_problem: RFC 9457 problem details bodies, written by od_jsonw. */
#include "od_problem.h"

#include "od_jsonw.h"

#include <apr_strings.h>

void od_problem_add(apr_array_header_t *errors, const char *field, const char *message)
{
    od_field_error_t *e = apr_array_push(errors);

    /* NULL would make json-c emit null where the schema promises strings. */
    e->field = apr_pstrdup(errors->pool, field != NULL ? field : "");
    e->message = apr_pstrdup(errors->pool, message != NULL ? message : "");
}

static void od_problem_errors(od_jsonw_t *w, const apr_array_header_t *errors)
{
    od_jsonw_key(w, "errors");
    od_jsonw_open(w, '[');
    for (int i = 0; i < errors->nelts; i++) {
        const od_field_error_t *e = &APR_ARRAY_IDX(errors, i, od_field_error_t);
        od_jsonw_open(w, '{');
        od_jsonw_member_string(w, "field", e->field);
        od_jsonw_member_string(w, "message", e->message);
        od_jsonw_close(w, '}');
    }
    od_jsonw_close(w, ']');
}

const char *od_problem_render(int status, const char *type, const char *title, const char *detail,
                              const apr_array_header_t *errors, apr_pool_t *p)
{
    od_jsonw_t *w = od_jsonw_create(p);

    /* The member order clients see: type, title, status, detail, errors. */
    od_jsonw_open(w, '{');
    od_jsonw_member_string(w, "type", type != NULL ? type : "about:blank");
    od_jsonw_member_string(w, "title", title != NULL ? title : "");
    od_jsonw_member_int(w, "status", status);
    if (detail != NULL) {
        od_jsonw_member_string(w, "detail", detail);
    }
    if (errors != NULL && errors->nelts > 0) {
        od_problem_errors(w, errors);
    }
    od_jsonw_close(w, '}');
    return od_jsonw_finish(w, NULL);
}
