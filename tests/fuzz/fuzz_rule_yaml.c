/*
 * tests/fuzz/fuzz_rule_yaml.c — the rules: parser, templates and cron
 * expressions on hostile text (detect/rule.c, detect/cron.c).
 *
 * Every input: parsing never crashes; a failure carries a message with a
 * position; parsing twice gives the same rules (determinism); every parsed
 * rule survives mk_rule_copy + mk_rule_validate unchanged in name, kind and
 * limits, and its annotations render. The same bytes are also tried as one
 * rule (the API's form), as a template and as a cron schedule.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "rule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    mk_rule_set a, b;
    mk_diag d1 = {0}, d2 = {0};
    mk_err e1 = mk_rule_parse_yaml(text, size, "fuzz.yaml", &a, &d1);
    mk_err e2 = mk_rule_parse_yaml(text, size, "fuzz.yaml", &b, &d2);
    if (e1 != e2 || a.n != b.n) abort();
    if (e1 && (strcmp(d1.msg, d2.msg) != 0 || !d1.msg[0])) abort();
    for (size_t i = 0; i < a.n; i++) {
        if (strcmp(a.rules[i].name, b.rules[i].name) != 0 || a.rules[i].kind != b.rules[i].kind) abort();
        mk_rule c;
        if (mk_rule_copy(&a.rules[i], &c, NULL) != MK_OK) abort();
        if (mk_rule_validate(&c, NULL) != MK_OK) abort();
        if (strcmp(c.name, a.rules[i].name) != 0 || c.interval_ms != a.rules[i].interval_ms ||
            c.policy.failures != a.rules[i].policy.failures)
            abort();
        mk_label l[] = {{"service", "api"}};
        mk_rule_tmpl_ctx ctx = {c.name, 1.5, 2, c.severity, "why", l, 1};
        for (size_t k = 0; k < c.n_annotations; k++) {
            char *out = NULL;
            if (mk_rule_render(c.annotations[k].value, &ctx, &out, NULL) != MK_OK) abort();
            free(out);
        }
        mk_rule_clear(&c);
    }
    mk_rule_set_free(&a);
    mk_rule_set_free(&b);

    mk_rule one;
    if (mk_rule_parse_one(text, size, NULL, &one, NULL) == MK_OK) mk_rule_clear(&one);

    /* NUL-terminated copies for the string APIs. */
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char *out = NULL;
    if (mk_rule_render(s, NULL, &out, NULL) == MK_OK) free(out);
    mk_cron c;
    if (mk_cron_parse(s, &c, NULL) == MK_OK) {
        int64_t t = mk_cron_next_ms(&c, NULL, 1767225600000LL);
        if (t != -1 && t <= 1767225600000LL) abort();
    }
    free(s);
    return 0;
}
