/*
 * tests/fuzz/fuzz_server_config.c — libFuzzer target for server/config.c.
 * Any bytes as a YAML configuration: parsing never crashes or leaks; the
 * error count matches the lines of the error text, each error names a
 * line:column inside the input (or none, for whole-file problems); a valid
 * result keeps its invariants (a parseable listen address, limits in range,
 * monitors with a name and token); parsing the same input twice gives the
 * same errors.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define CHECK(c)                                                                        \
    do {                                                                                \
        if (!(c)) {                                                                     \
            fprintf(stderr, "fuzz_server_config: check failed: %s (%s:%d)\n", #c, __FILE__, \
                    __LINE__);                                                          \
            abort();                                                                    \
        }                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mk_config c;
    char *errs = NULL, *errs2 = NULL;
    if (mk_config_init(&c) != 0) return 0;
    int n = mk_config_parse(&c, (const char *)data, size, &errs);
    CHECK(n >= 0);
    /* libyaml also breaks lines at CR, NEL and LS/PS: bound by the byte count */
    size_t lines = 0, n_newlines = size + 1;
    for (const char *p = errs; p && *p; p = strchr(p, '\n') + 1) {
        CHECK(strchr(p, '\n') != NULL);
        unsigned long line, col;
        if (sscanf(p, "%lu:%lu:", &line, &col) == 2) CHECK(line >= 1 && line <= n_newlines + 1);
        lines++;
    }
    CHECK(errs == NULL ? n == 0 : lines == (size_t)n);
    char host[256];
    unsigned port;
    CHECK(mk_config_parse_listen(c.listen, host, sizeof host, &port) == 0);
    if (n == 0) {
        CHECK(c.max_connections >= 1 && c.request_timeout_s >= 1 && c.max_body_bytes >= 1024);
        for (size_t i = 0; i < c.n_monitors; i++) CHECK(c.monitors[i].name[0] && c.monitors[i].token[0]);
    }
    mk_config_free(&c);
    CHECK(mk_config_init(&c) == 0);
    int n2 = mk_config_parse(&c, (const char *)data, size, &errs2);
    CHECK(n2 == n && (errs == errs2 || (errs && errs2 && strcmp(errs, errs2) == 0)));
    mk_config_free(&c);
    free(errs);
    free(errs2);
    return 0;
}
