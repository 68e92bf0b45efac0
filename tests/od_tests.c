/*
 * The test runner: `od_tests SUITE` runs one registered suite (as CTest does), `od_tests` runs
 * them all. Fork mode is on (CK_FORK=yes unless the environment says otherwise) so a crash in
 * one test is reported as a failure of that test, not of the runner.
 */
#include "od_suites.h"

#include <apr_general.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run_suites(const char *only)
{
    SRunner *runner = NULL;
    int found = 0;

    for (const od_suite_entry_t *e = od_suites; e->name != NULL; e++) {
        if (only != NULL && strcmp(only, e->name) != 0) {
            continue;
        }
        if (runner == NULL) {
            runner = srunner_create(e->make());
        } else {
            srunner_add_suite(runner, e->make());
        }
        found++;
    }
    if (found == 0) {
        fprintf(stderr, "od_tests: no suite named '%s'\n", only);
        return 2;
    }
    srunner_set_fork_status(runner, CK_FORK_GETENV);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (getenv("CK_FORK") == NULL) {
        setenv("CK_FORK", "yes", 1);
    }
    apr_initialize();
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any test starts a thread */
    int rc = run_suites(argc > 1 ? argv[1] : NULL);
    curl_global_cleanup();
    apr_terminate();
    return rc;
}
