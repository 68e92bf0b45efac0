/* od_problem: RFC 9457 problem details bodies, serialised by json-c. */
#include "od_problem.h"

#include <apr_strings.h>
#include <json-c/json.h>

void od_problem_add(apr_array_header_t *errors, const char *field, const char *message)
{
    od_field_error_t *e = apr_array_push(errors);

    /* NULL would make json-c emit null where the schema promises strings. */
    e->field = apr_pstrdup(errors->pool, field != NULL ? field : "");
    e->message = apr_pstrdup(errors->pool, message != NULL ? message : "");
}

static json_object *od_problem_errors(const apr_array_header_t *errors)
{
    json_object *arr = json_object_new_array_ext(errors->nelts);

    for (int i = 0; i < errors->nelts; i++) {
        const od_field_error_t *e = &APR_ARRAY_IDX(errors, i, od_field_error_t);
        json_object *item = json_object_new_object();
        json_object_object_add(item, "field", json_object_new_string(e->field));
        json_object_object_add(item, "message", json_object_new_string(e->message));
        json_object_array_add(arr, item);
    }
    return arr;
}

const char *od_problem_render(int status, const char *type, const char *title, const char *detail,
                              const apr_array_header_t *errors, apr_pool_t *p)
{
    json_object *doc = json_object_new_object();

    /* json-c keeps insertion order, which is the member order clients see. */
    json_object_object_add(doc, "type",
                           json_object_new_string(type != NULL ? type : "about:blank"));
    json_object_object_add(doc, "title", json_object_new_string(title != NULL ? title : ""));
    json_object_object_add(doc, "status", json_object_new_int(status));
    if (detail != NULL) {
        json_object_object_add(doc, "detail", json_object_new_string(detail));
    }
    if (errors != NULL && errors->nelts > 0) {
        json_object_object_add(doc, "errors", od_problem_errors(errors));
    }
    const char *body =
        apr_pstrdup(p, json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(doc);
    return body;
}
