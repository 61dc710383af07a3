/*
 * tests/fuzz/fuzz_web.c — libFuzzer target for server/web.c's parsers.
 * The input follows "status_page:\n" as the section's text (so mutations stay
 * inside the section), parsed through mk_config_parse: never crashes or
 * leaks; every error line names a line:column; the same input gives the
 * same errors twice; maintenance lookups on the result stay total. The
 * input is also read as an Accept-Encoding header and rendered as a badge's texts: the SVG never carries a raw
 * '<' or '&' from the input (escaping is complete).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "web.h"

#define CHECK(c)                                                                              \
    do {                                                                                      \
        if (!(c)) {                                                                           \
            fprintf(stderr, "fuzz_web: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);  \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char head[] = "status_page:\n";
    char *text = malloc(sizeof head + size);
    if (!text) return 0;
    memcpy(text, head, sizeof head - 1);
    memcpy(text + sizeof head - 1, data, size);
    size_t n = sizeof head - 1 + size;
    char *errs[2] = {NULL, NULL};
    int count[2];
    for (int round = 0; round < 2; round++) {
        mk_config c;
        if (mk_config_init(&c) != 0) break;
        count[round] = mk_config_parse(&c, text, n, &errs[round]);
        CHECK(count[round] >= 0);
        (void)mk_web_in_maintenance(c.status_page, "api", 1764669600000LL);
        (void)mk_web_is_public(c.status_page, "api");
        mk_config_free(&c);
    }
    CHECK(count[0] == count[1]);
    CHECK((errs[0] == NULL) == (errs[1] == NULL));
    if (errs[0]) CHECK(strcmp(errs[0], errs[1]) == 0);
    free(errs[0]);
    free(errs[1]);

    /* the badge: input as NUL-free text */
    char *label = malloc(size + 1);
    if (label) {
        size_t k = 0;
        for (size_t i = 0; i < size && k < 200; i++)
            if (data[i]) label[k++] = (char)data[i];
        label[k] = '\0';
        (void)mk_web_accepts_gzip(label); /* header parsing is total */
        char *svg = mk_web_badge_svg(label, label, "#555555");
        if (svg) {
            /* after the opening tag, every '<' starts one of our tags */
            for (const char *p = strchr(svg, '<'); p; p = strchr(p + 1, '<'))
                CHECK(p[1] == '/' || p[1] == 's' || p[1] == 't' || p[1] == 'r' || p[1] == 'g');
            for (const char *p = strchr(svg, '&'); p; p = strchr(p + 1, '&'))
                CHECK(strncmp(p, "&amp;", 5) == 0 || strncmp(p, "&lt;", 4) == 0 || strncmp(p, "&gt;", 4) == 0 ||
                      strncmp(p, "&quot;", 6) == 0 || strncmp(p, "&#39;", 5) == 0);
            free(svg);
        }
        free(label);
    }
    free(text);
    return 0;
}
