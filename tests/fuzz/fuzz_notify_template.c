/*
 * tests/fuzz/fuzz_notify_template.c — notify/'s template parser and
 * renderer. The input's first byte splits it: a template, and a value every
 * placeholder renders to. Checks: no crash or leak; rendering twice gives
 * the same bytes and status (determinism); and the value, JSON-escaped
 * inside a string, decodes back to itself with jansson (an independent
 * parser) whenever it is valid UTF-8 without NUL.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tmpl.h"

typedef struct val {
    char *s;
} val;

static const char *lookup(void *ctx, const char *name, size_t n)
{
    (void)name;
    return n == 4 && !memcmp(name, "none", 4) ? NULL : ((val *)ctx)->s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) return 0;
    size_t cut = data[0] % (size);
    const char *t = (const char *)data + 1;
    size_t tn = cut > size - 1 ? size - 1 : cut;
    val v = {strndup((const char *)data + 1 + tn, size - 1 - tn)};
    if (!v.s) return 0;
    for (int esc = 0; esc < 3; esc++) {
        mk_buf a = {0}, b = {0};
        char ea[200] = "", eb[200] = "";
        int ra = mk_notify_tmpl_render(t, tn, (mk_notify_escape)esc, lookup, &v, &a, ea, sizeof ea);
        int rb = mk_notify_tmpl_render(t, tn, (mk_notify_escape)esc, lookup, &v, &b, eb, sizeof eb);
        if (ra != rb || strcmp(ea, eb) || (ra == 0 && (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len)))))
            abort();
        /* syntax-only check agrees with a full render on syntax errors */
        mk_buf c = {0};
        char ec[200] = "";
        int rc = mk_notify_tmpl_render(t, tn, (mk_notify_escape)esc, NULL, NULL, &c, ec, sizeof ec);
        if (rc == -1 && ra == 0) abort();
        mk_buf_free(&a);
        mk_buf_free(&b);
        mk_buf_free(&c);
    }
    /* round trip of the value through JSON escaping */
    mk_buf j = {0};
    char err[200];
    static const char tj[] = "{\"v\":\"{{x}}\"}";
    if (mk_notify_tmpl_render(tj, sizeof tj - 1, MK_NOTIFY_ESC_JSON, lookup, &v, &j, err, sizeof err) == 0) {
        json_error_t je;
        json_t *o = json_loadb((const char *)j.data, j.len, 0, &je);
        /* jansson refuses invalid UTF-8; a valid value must come back */
        json_t *probe = json_string(v.s);
        if (probe) {
            if (!o || strcmp(json_string_value(json_object_get(o, "v")), v.s) != 0) abort();
        }
        json_decref(probe);
        json_decref(o);
    }
    mk_buf_free(&j);
    free(v.s);
    return 0;
}
