/*
 * tests/notify/schema.h — a small JSON Schema checker (the subset the
 * schemas in tests/notify/ use: type (one or a list), enum of strings,
 * required, properties, additionalProperties (false or a schema), items,
 * minItems, minLength, maxLength, format "rfc3339"). Header-only. Returns
 * 0 when doc conforms; else 1 with the first problem and its JSON path in
 * why. Independent of notify/: the schemas were written from the
 * Alertmanager and Kener documentation.
 */
#ifndef MK_TEST_NOTIFY_SCHEMA_H
#define MK_TEST_NOTIFY_SCHEMA_H

#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

static inline int schema_type_ok(const json_t *d, const char *t)
{
    if (!strcmp(t, "object")) return json_is_object(d);
    if (!strcmp(t, "array")) return json_is_array(d);
    if (!strcmp(t, "string")) return json_is_string(d);
    if (!strcmp(t, "integer")) return json_is_integer(d);
    if (!strcmp(t, "number")) return json_is_number(d);
    if (!strcmp(t, "boolean")) return json_is_boolean(d);
    if (!strcmp(t, "null")) return json_is_null(d);
    return 0;
}

static inline int schema_check(const json_t *s, const json_t *d, const char *path, char *why, size_t cap)
{
    const json_t *t = json_object_get(s, "type");
    if (json_is_string(t) && !schema_type_ok(d, json_string_value(t))) {
        snprintf(why, cap, "%s: not of type %s", path, json_string_value(t));
        return 1;
    }
    if (json_is_array(t)) {
        int ok = 0;
        for (size_t i = 0; i < json_array_size(t); i++) ok |= schema_type_ok(d, json_string_value(json_array_get(t, i)));
        if (!ok) {
            snprintf(why, cap, "%s: not of any allowed type", path);
            return 1;
        }
    }
    const json_t *en = json_object_get(s, "enum");
    if (en) {
        int ok = 0;
        for (size_t i = 0; i < json_array_size(en); i++) ok |= json_equal(json_array_get(en, i), (json_t *)d);
        if (!ok) {
            snprintf(why, cap, "%s: value not in enum", path);
            return 1;
        }
    }
    if (json_is_string(d)) {
        size_t n = json_string_length(d);
        const json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
        if ((mn && n < (size_t)json_integer_value(mn)) || (mx && n > (size_t)json_integer_value(mx))) {
            snprintf(why, cap, "%s: length %zu out of bounds", path, n);
            return 1;
        }
        const json_t *fm = json_object_get(s, "format");
        if (fm && !strcmp(json_string_value(fm), "rfc3339")) {
            regex_t re;
            regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$",
                    REG_EXTENDED | REG_NOSUB);
            int bad = regexec(&re, json_string_value(d), 0, NULL, 0) != 0;
            regfree(&re);
            if (bad) {
                snprintf(why, cap, "%s: '%s' is not RFC 3339", path, json_string_value(d));
                return 1;
            }
        }
    }
    if (json_is_object(d)) {
        const json_t *req = json_object_get(s, "required");
        for (size_t i = 0; i < json_array_size(req); i++) {
            const char *k = json_string_value(json_array_get(req, i));
            if (!json_object_get(d, k)) {
                snprintf(why, cap, "%s: missing required '%s'", path, k);
                return 1;
            }
        }
        const json_t *props = json_object_get(s, "properties"), *add = json_object_get(s, "additionalProperties");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)d, k, v)
        {
            char sub[512];
            snprintf(sub, sizeof sub, "%s.%s", path, k);
            const json_t *ps = props ? json_object_get(props, k) : NULL;
            if (ps) {
                if (schema_check(ps, v, sub, why, cap)) return 1;
            } else if (add && json_is_false(add)) {
                snprintf(why, cap, "%s: property not allowed", sub);
                return 1;
            } else if (json_is_object(add)) {
                if (schema_check(add, v, sub, why, cap)) return 1;
            }
        }
    }
    if (json_is_array(d)) {
        const json_t *mi = json_object_get(s, "minItems"), *it = json_object_get(s, "items");
        if (mi && json_array_size(d) < (size_t)json_integer_value(mi)) {
            snprintf(why, cap, "%s: fewer than %d items", path, (int)json_integer_value(mi));
            return 1;
        }
        for (size_t i = 0; it && i < json_array_size(d); i++) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (schema_check(it, json_array_get(d, i), sub, why, cap)) return 1;
        }
    }
    return 0;
}

/* Loads tests/notify/<name> (dir given) and checks doc; prints the problem. */
static inline int schema_check_file(const char *dir, const char *name, const json_t *doc)
{
    char path[2200], why[600] = "";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t je;
    json_t *s = json_load_file(path, 0, &je);
    if (!s) {
        fprintf(stderr, "schema %s: %s\n", path, je.text);
        return 1;
    }
    int rc = schema_check(s, doc, "$", why, sizeof why);
    if (rc) fprintf(stderr, "schema %s: %s\n", name, why);
    json_decref(s);
    return rc;
}

#endif
