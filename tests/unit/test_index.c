/*
 * tests/unit/test_index.c — the series index against independent references:
 * known canonical keys, a lenient InfluxDB-style reference parser written
 * here, a plain array of parsed series scanned by brute force for find(),
 * measurements and tag values, and a file writer/reader written here from
 * the layout in FORMAT.md. Seeds are fixed and printed.
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format.h"
#include "index.h"

#define SEED 20240611u

/* ---- a series as the test sees it: plain unescaped strings ------------- */

#define T_MAXT 6
#define T_STR 128
typedef struct t_series {
    char meas[T_STR];
    int n_tags;
    char tk[T_MAXT][T_STR], tv[T_MAXT][T_STR];
    char field[T_STR];
} t_series;

static mk_lp_str S(const char *s) { return (mk_lp_str){s, (uint32_t)strlen(s)}; }

/* Sorts the tags of s by key, bytewise (strcmp compares unsigned bytes). */
static void t_sort_tags(t_series *s)
{
    for (int i = 1; i < s->n_tags; i++)
        for (int j = i; j > 0 && strcmp(s->tk[j], s->tk[j - 1]) < 0; j--) {
            char t[T_STR];
            strcpy(t, s->tk[j]); strcpy(s->tk[j], s->tk[j - 1]); strcpy(s->tk[j - 1], t);
            strcpy(t, s->tv[j]); strcpy(s->tv[j], s->tv[j - 1]); strcpy(s->tv[j - 1], t);
        }
}

static mk_err t_build(const t_series *s, mk_buf *out)
{
    mk_lp_tag tags[T_MAXT];
    for (int i = 0; i < s->n_tags; i++) tags[i] = (mk_lp_tag){S(s->tk[i]), S(s->tv[i])};
    return mk_index_key_build(out, S(s->meas), tags, (uint32_t)s->n_tags, S(s->field));
}

/* Value of tag key k in s, "" when absent (InfluxQL's reading). */
static const char *t_tag(const t_series *s, const char *k)
{
    for (int i = 0; i < s->n_tags; i++)
        if (strcmp(s->tk[i], k) == 0) return s->tv[i];
    return "";
}

/* Random nasty string: atoms with escapable bytes, backslashes, UTF-8. */
static const char *const atoms[] = {"a", "b", "c", "x", "y", ",", "=", " ", "\\", "\\\\", "é",
                                    "日本", "🐱", "\"", "'", "\\,", "\\ ", "\\="};
static void t_rand_str(mk_rng *r, char *out, int max_atoms)
{
    out[0] = 0;
    int n = 1 + (int)mk_rng_below(r, (uint64_t)max_atoms);
    for (int i = 0; i < n; i++) strcat(out, atoms[mk_rng_below(r, sizeof atoms / sizeof atoms[0])]);
    size_t l = strlen(out);
    if (out[l - 1] == '\\') strcat(out, "z"); /* a part may not end with a backslash */
}

static void t_rand_series(mk_rng *r, t_series *s)
{
    memset(s, 0, sizeof *s);
    t_rand_str(r, s->meas, 4);
    t_rand_str(r, s->field, 4);
    s->n_tags = (int)mk_rng_below(r, 4);
    for (int i = 0; i < s->n_tags; i++) {
    again:
        t_rand_str(r, s->tk[i], 3);
        for (int j = 0; j < i; j++)
            if (strcmp(s->tk[i], s->tk[j]) == 0) goto again;
        t_rand_str(r, s->tv[i], 3);
    }
    t_sort_tags(s);
}

/* ---- a lenient reference parser (InfluxDB 1.x style) -------------------- */

/* Reads until an unescaped byte of `stop`, unescaping `\c` for c in esc. */
static const char *ref_read(const char *p, const char *end, const char *esc, const char *stop,
                            char *dst, size_t cap)
{
    size_t n = 0;
    while (p < end && !(*p && strchr(stop, *p))) {
        if (*p == '\\' && p + 1 < end && p[1] && strchr(esc, p[1])) p++;
        if (n + 1 >= cap) return NULL;
        dst[n++] = *p++;
    }
    dst[n] = 0;
    return p;
}

/* 1 and *s filled if k[0..len) reads as a key at all (not yet canonical). */
static int ref_parse(const char *k, size_t len, t_series *s)
{
    const char *p = k, *end = k + len;
    memset(s, 0, sizeof *s);
    if (memchr(k, 0, len)) return 0;
    if (!(p = ref_read(p, end, ", ", ", ", s->meas, T_STR))) return 0;
    while (p < end && *p == ',') {
        if (s->n_tags == T_MAXT) return 0;
        if (!(p = ref_read(p + 1, end, ",= ", "=", s->tk[s->n_tags], T_STR))) return 0;
        if (p == end) return 0;
        if (!(p = ref_read(p + 1, end, ",= ", ", ", s->tv[s->n_tags], T_STR))) return 0;
        s->n_tags++;
    }
    if (p == end) return 0;
    return ref_read(p + 1, end, ",= ", "", s->field, T_STR) != NULL;
}

/* The index must accept exactly the keys that are the build of their own
 * reading: one spelling per series. */
static int ref_accepts(const char *k, size_t len)
{
    t_series s;
    mk_buf b = {0};
    int ok = ref_parse(k, len, &s) && t_build(&s, &b) == MK_OK && b.len == len &&
             memcmp(b.data, k, len) == 0;
    mk_buf_free(&b);
    return ok;
}

/* ---- listing helpers ---------------------------------------------------- */

typedef struct t_names {
    char **v;
    size_t n;
    size_t stop_after; /* 0 = never stop */
} t_names;

static int t_collect(void *ctx, const char *name)
{
    t_names *c = ctx;
    c->v = realloc(c->v, (c->n + 1) * sizeof *c->v);
    c->v[c->n++] = strdup(name);
    return c->stop_after && c->n >= c->stop_after;
}

static void t_names_free(t_names *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->v[i]);
    free(c->v);
    memset(c, 0, sizeof *c);
}

static int t_strcmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted distinct copy of names. */
static void t_distinct(t_names *c)
{
    if (c->n) qsort(c->v, c->n, sizeof *c->v, t_strcmp);
    size_t w = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (w && strcmp(c->v[w - 1], c->v[i]) == 0) { free(c->v[i]); continue; }
        c->v[w++] = c->v[i];
    }
    c->n = w;
}

static void t_names_equal(const t_names *a, const t_names *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) assert_string_equal(a->v[i], b->v[i]);
}

/* ---- known answers for the key syntax ----------------------------------- */

static void test_key_build_known(void **state)
{
    (void)state;
    mk_buf b = {0};
    mk_lp_tag tags[2] = {{S("host"), S("a b")}, {S("region"), S("us,east=1")}};
    assert_int_equal(mk_index_key_build(&b, S("cpu load"), tags, 2, S("usage idle")), MK_OK);
    const char *want = "cpu\\ load,host=a\\ b,region=us\\,east\\=1 usage\\ idle";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    b.len = 0;
    /* '=' is not escaped in a measurement; a lone backslash stays as it is. */
    mk_lp_tag t1[1] = {{S("k\\x"), S("v\\\\w")}};
    assert_int_equal(mk_index_key_build(&b, S("a=b\\c"), t1, 1, S("f")), MK_OK);
    want = "a=b\\c,k\\x=v\\\\w f";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    /* A backslash before an escapable byte stays, and the byte is escaped. */
    b.len = 0;
    assert_int_equal(mk_index_key_build(&b, S("a\\,b"), NULL, 0, S("f\\ g")), MK_OK);
    want = "a\\\\,b f\\\\ g";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);

    /* Refusals leave out untouched. */
    b.len = 3;
    mk_lp_tag unsorted[2] = {{S("b"), S("1")}, {S("a"), S("2")}};
    mk_lp_tag dup[2] = {{S("a"), S("1")}, {S("a"), S("2")}};
    mk_lp_tag empty_v[1] = {{S("a"), S("")}};
    mk_lp_tag empty_k[1] = {{S(""), S("x")}};
    mk_lp_tag trailing[1] = {{S("a"), S("x\\")}};
    assert_int_equal(mk_index_key_build(&b, S("m"), unsorted, 2, S("f")), MK_EINVAL);
    assert_int_equal(mk_index_key_build(&b, S("m"), dup, 2, S("f")), MK_EINVAL);
    assert_int_equal(mk_index_key_build(&b, S("m"), empty_v, 1, S("f")), MK_EINVAL);
    assert_int_equal(mk_index_key_build(&b, S("m"), empty_k, 1, S("f")), MK_EINVAL);
    assert_int_equal(mk_index_key_build(&b, S("m"), trailing, 1, S("f")), MK_EINVAL);
    assert_int_equal(mk_index_key_build(&b, S(""), NULL, 0, S("f")), MK_EINVAL);
    assert_int_equal(mk_index_key_build(&b, S("m"), NULL, 0, S("")), MK_EINVAL);
    assert_int_equal(mk_index_key_build(&b, S("m\\"), NULL, 0, S("f")), MK_EINVAL);
    assert_int_equal(mk_index_key_build(&b, (mk_lp_str){"m\0n", 3}, NULL, 0, S("f")), MK_EINVAL);
    assert_int_equal(b.len, 3);

    /* The length limit: exactly MK_INDEX_MAX_KEY_BYTES passes. */
    size_t big = MK_INDEX_MAX_KEY_BYTES - 2;
    char *m = malloc(big + 2);
    memset(m, 'm', big + 1);
    b.len = 0;
    assert_int_equal(mk_index_key_build(&b, (mk_lp_str){m, (uint32_t)big}, NULL, 0, S("f")), MK_OK);
    assert_int_equal(b.len, MK_INDEX_MAX_KEY_BYTES);
    b.len = 0;
    assert_int_equal(mk_index_key_build(&b, (mk_lp_str){m, (uint32_t)big + 1}, NULL, 0, S("f")),
                     MK_ELIMIT);
    mk_index *ix;
    assert_int_equal(mk_index_new(&ix), MK_OK);
    memcpy(m + big, " f", 2);
    uint64_t id;
    uint32_t o;
    int nw;
    assert_int_equal(mk_index_add(ix, m, big + 2, &id, &o, &nw, NULL), MK_OK);
    m = realloc(m, big + 3);
    memmove(m + 1, m, big + 2);
    mk_diag d = {0, {0}};
    assert_int_equal(mk_index_add(ix, m, big + 3, &id, &o, &nw, &d), MK_ELIMIT);
    size_t len;
    assert_non_null(mk_index_key_at(ix, 0, &len));
    assert_int_equal(len, MK_INDEX_MAX_KEY_BYTES);
    mk_index_free(ix);

    /* A long field after a short one with the same measurement and tags
     * (the add reuses the parse of the shared prefix). */
    assert_int_equal(mk_index_new(&ix), MK_OK);
    assert_int_equal(mk_index_add(ix, "m,k=v f", 7, &id, &o, &nw, NULL), MK_OK);
    memcpy(m, "m,k=v ", 6);
    memset(m + 6, 'g', MK_INDEX_MAX_KEY_BYTES - 6);
    assert_int_equal(mk_index_add(ix, m, MK_INDEX_MAX_KEY_BYTES, &id, &o, &nw, NULL), MK_OK);
    assert_int_equal(o, 1);
    m[100] = ' ';
    assert_int_equal(mk_index_add(ix, m, 200, &id, &o, &nw, &d), MK_EINVAL);
    assert_true(strstr(d.msg, "field key at byte 100") != NULL);
    assert_int_equal(mk_index_add(ix, "m,k=v h\\", 8, &id, &o, &nw, &d), MK_EINVAL);
    assert_true(strstr(d.msg, "backslash") != NULL);
    assert_int_equal(mk_index_add(ix, "m,k=v h", 7, &id, &o, &nw, NULL), MK_OK);
    assert_int_equal(o, 2);
    mk_index_free(ix);
    free(m);
    mk_buf_free(&b);
}

static void test_add_rejects(void **state)
{
    (void)state;
    static const struct { const char *key; size_t len; } bad[] = {
        {"", 0},           {"cpu", 3},          {"cpu,", 4},          {"cpu,a=1", 7},
        {"cpu f,g", 7},    {"cpu f=g", 7},      {"cpu  f", 6},        {"cpu f ", 6},
        {"cpu,b=1,a=2 f", 13}, {"cpu,a=1,a=2 f", 13}, {"cpu,a= f", 8}, {"cpu,=1 f", 8},
        {" f", 2},         {"cpu,a=1=2 f", 11}, {"cpu,a b=1 f", 11},  {"cpu f\\", 6},
        {"cpu\0 f", 6},    {"cpu,a f", 7},      {",a=1 f", 6},        {"cpu,a=1, f", 10},
        {"cpu,a=1 ", 8},   {"cp u f", 6},
    };
    mk_index *ix;
    assert_int_equal(mk_index_new(&ix), MK_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mk_diag d = {0, {0}};
        uint64_t id = 7;
        assert_int_equal(mk_index_add(ix, bad[i].key, bad[i].len, &id, NULL, NULL, &d), MK_EINVAL);
        assert_int_equal(d.code, MK_EINVAL);
        assert_true(strstr(d.msg, "series key") != NULL);
        assert_int_equal(id, 7);
        assert_false(ref_accepts(bad[i].key, bad[i].len));
    }
    assert_int_equal(mk_index_count(ix), 0);
    /* and their good neighbours */
    static const char *good[] = {"cpu f", "cpu,a=1 f", "cpu,a=1,b=2 f", "c\\ pu,a\\==\\, f\\ x",
                                 "a=b f", "m\\x,k\\y=v\\z f\\w"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t id;
        uint32_t o;
        int nw;
        assert_int_equal(mk_index_add(ix, good[i], strlen(good[i]), &id, &o, &nw, NULL), MK_OK);
        assert_int_equal(o, i);
        assert_int_equal(nw, 1);
        assert_true(id == mk_hash64(good[i], strlen(good[i])));
        assert_true(ref_accepts(good[i], strlen(good[i])));
    }
    mk_index_free(ix);
}

/* Random nasty parts: build -> add -> key_at -> reference parse gives the
 * parts back; mutated keys are accepted exactly when the reference says. */
static void test_roundtrip_random(void **state)
{
    (void)state;
    mk_rng r = {SEED};
    printf("seed %u\n", SEED);
    mk_index *ix;
    assert_int_equal(mk_index_new(&ix), MK_OK);
    mk_buf b = {0};
    uint32_t n_series = 0;
    for (int it = 0; it < 3000; it++) {
        t_series s, back;
        t_rand_series(&r, &s);
        b.len = 0;
        assert_int_equal(t_build(&s, &b), MK_OK);
        uint64_t id;
        uint32_t o;
        int nw;
        mk_diag d = {0, {0}};
        assert_int_equal(mk_index_add(ix, (const char *)b.data, b.len, &id, &o, &nw, &d), MK_OK);
        assert_true(id == mk_hash64(b.data, b.len));
        if (nw) assert_int_equal(o, n_series++);
        size_t len;
        const char *k = mk_index_key_at(ix, o, &len);
        assert_int_equal(len, b.len);
        assert_memory_equal(k, b.data, len);
        assert_int_equal(k[len], 0);
        assert_true(mk_index_id_at(ix, o) == id);
        uint32_t o2;
        assert_int_equal(mk_index_ordinal(ix, id, &o2), MK_OK);
        assert_int_equal(o2, o);
        assert_true(ref_parse(k, len, &back));
        assert_string_equal(back.meas, s.meas);
        assert_string_equal(back.field, s.field);
        assert_int_equal(back.n_tags, s.n_tags);
        for (int i = 0; i < s.n_tags; i++) {
            assert_string_equal(back.tk[i], s.tk[i]);
            assert_string_equal(back.tv[i], s.tv[i]);
        }
        /* re-adding is a no-op */
        uint64_t id2;
        assert_int_equal(mk_index_add(ix, k, len, &id2, &o2, &nw, NULL), MK_OK);
        assert_int_equal(nw, 0);
        assert_int_equal(o2, o);

        /* mutations */
        static const char mut[] = {',', '=', ' ', '\\', 'a', 0, (char)0xff};
        char mk[256];
        size_t ml = b.len;
        if (ml + 4 > sizeof mk) continue;
        memcpy(mk, b.data, ml);
        int n_mut = 1 + (int)mk_rng_below(&r, 3);
        for (int j = 0; j < n_mut; j++) {
            size_t at = mk_rng_below(&r, ml + 1);
            char c = mut[mk_rng_below(&r, sizeof mut)];
            switch (mk_rng_below(&r, 3)) {
            case 0: memmove(mk + at + 1, mk + at, ml - at); mk[at] = c; ml++; break;
            case 1: if (at < ml) { memmove(mk + at, mk + at + 1, ml - at - 1); ml--; } break;
            default: if (at < ml) mk[at] = c; break;
            }
        }
        uint32_t before = mk_index_count(ix);
        d.code = MK_OK;
        mk_err rc = mk_index_add(ix, mk, ml, &id, &o, &nw, &d);
        int want = ref_accepts(mk, ml);
        if ((rc == MK_OK) != want) fail_msg("key \"%.*s\": index says %s, reference %d (%s)", (int)ml, mk,
                                            mk_err_name(rc), want, d.msg);
        if (rc == MK_OK) {
            k = mk_index_key_at(ix, o, &len);
            assert_int_equal(len, ml);
            assert_memory_equal(k, mk, ml);
            if (nw) assert_int_equal(o, n_series++);
        } else {
            assert_int_equal(mk_index_count(ix), before);
        }
    }
    assert_int_equal(mk_index_count(ix), n_series);
    mk_buf_free(&b);
    mk_index_free(ix);
}

/* ---- find, measurements and tag values against brute force ------------- */

static const char *const p_meas[] = {"svc", "cpu", "mem,x", "é m"};
static const char *const p_keys[] = {"host", "region", "service", "env", "we ird,k=", "日"};
static const char *const p_vals[] = {"a", "b", "c d", "x=y", "api", "日本", "\\v"};
static const char *const p_fields[] = {"p95", "qps", "err rate", "up"};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct t_model {
    t_series *s;
    size_t n;
} t_model;

/* Builds a random index over small pools so queries match things. */
static void t_fill(mk_index *ix, t_model *mo, mk_rng *r, size_t n)
{
    mk_buf b = {0};
    mo->s = calloc(n, sizeof *mo->s);
    mo->n = 0;
    for (size_t it = 0; it < n; it++) {
        t_series s;
        memset(&s, 0, sizeof s);
        strcpy(s.meas, p_meas[mk_rng_below(r, NELEM(p_meas))]);
        strcpy(s.field, p_fields[mk_rng_below(r, NELEM(p_fields))]);
        for (size_t k = 0; k < NELEM(p_keys); k++)
            if (mk_rng_below(r, 2)) {
                strcpy(s.tk[s.n_tags], p_keys[k]);
                strcpy(s.tv[s.n_tags], p_vals[mk_rng_below(r, NELEM(p_vals))]);
                if (++s.n_tags == T_MAXT) break;
            }
        t_sort_tags(&s);
        b.len = 0;
        assert_int_equal(t_build(&s, &b), MK_OK);
        uint64_t id;
        uint32_t o;
        int nw;
        assert_int_equal(mk_index_add(ix, (const char *)b.data, b.len, &id, &o, &nw, NULL), MK_OK);
        if (nw) {
            assert_int_equal(o, mk_index_count(ix) - 1);
            mo->s[mo->n++] = s;
        }
    }
    mk_buf_free(&b);
}

static void t_check_find(const mk_index *ix, const t_model *mo, const char *meas,
                         const mk_matcher *m, size_t n_m, const char *field)
{
    uint32_t *got;
    size_t n_got, w = 0;
    assert_int_equal(mk_index_find(ix, meas, m, n_m, field, &got, &n_got, NULL), MK_OK);
    for (size_t o = 0; o < mo->n; o++) {
        const t_series *s = &mo->s[o];
        int ok = (!meas || strcmp(meas, s->meas) == 0) && (!field || strcmp(field, s->field) == 0);
        for (size_t i = 0; ok && i < n_m; i++)
            ok = (strcmp(t_tag(s, m[i].key), m[i].value) == 0) != (m[i].is_negated != 0);
        if (!ok) continue;
        if (w >= n_got || got[w] != o)
            fail_msg("find(%s, %zu matchers, %s): missing or extra ordinal near %zu", meas ? meas : "NULL",
                     n_m, field ? field : "NULL", o);
        w++;
    }
    assert_int_equal(w, n_got);
    if (!n_got) assert_null(got);
    free(got);
}

static void t_random_queries(const mk_index *ix, const t_model *mo, mk_rng *r, int n_q)
{
    for (int q = 0; q < n_q; q++) {
        mk_matcher m[4];
        size_t n_m = mk_rng_below(r, 5);
        for (size_t i = 0; i < n_m; i++) {
            uint64_t k = mk_rng_below(r, NELEM(p_keys) + 1), v = mk_rng_below(r, NELEM(p_vals) + 2);
            m[i].key = k < NELEM(p_keys) ? p_keys[k] : "absent";
            m[i].value = v < NELEM(p_vals) ? p_vals[v] : v == NELEM(p_vals) ? "" : "nope";
            m[i].is_negated = mk_rng_below(r, 10) < 3;
        }
        uint64_t mi = mk_rng_below(r, NELEM(p_meas) + 3), fi = mk_rng_below(r, NELEM(p_fields) + 3);
        const char *meas = mi < NELEM(p_meas) ? p_meas[mi] : mi == NELEM(p_meas) ? "nope" : NULL;
        const char *field = fi < NELEM(p_fields) ? p_fields[fi] : fi == NELEM(p_fields) ? "nope" : NULL;
        t_check_find(ix, mo, meas, m, n_m, field);
    }
}

static void t_check_listings(const mk_index *ix, const t_model *mo)
{
    t_names got = {0}, want = {0};
    assert_int_equal(mk_index_measurements(ix, t_collect, &got), MK_OK);
    for (size_t i = 0; i < mo->n; i++) t_collect(&want, mo->s[i].meas);
    t_distinct(&want);
    t_names_equal(&got, &want);
    t_names_free(&got);
    t_names_free(&want);
    for (size_t mi = 0; mi <= NELEM(p_meas); mi++) {
        const char *meas = mi < NELEM(p_meas) ? p_meas[mi] : NULL;
        for (size_t k = 0; k <= NELEM(p_keys); k++) {
            const char *key = k < NELEM(p_keys) ? p_keys[k] : "absent";
            assert_int_equal(mk_index_tag_values(ix, meas, key, t_collect, &got), MK_OK);
            for (size_t i = 0; i < mo->n; i++) {
                const char *v = t_tag(&mo->s[i], key);
                if (*v && (!meas || strcmp(meas, mo->s[i].meas) == 0)) t_collect(&want, v);
            }
            t_distinct(&want);
            t_names_equal(&got, &want);
            /* a callback returning non-zero stops the walk */
            if (want.n > 1) {
                t_names one = {0};
                one.stop_after = 1;
                assert_int_equal(mk_index_tag_values(ix, meas, key, t_collect, &one), MK_OK);
                assert_int_equal(one.n, 1);
                assert_string_equal(one.v[0], want.v[0]);
                t_names_free(&one);
            }
            t_names_free(&got);
            t_names_free(&want);
        }
    }
}

static void test_find_random(void **state)
{
    (void)state;
    mk_rng r = {SEED + 1};
    printf("seed %u\n", SEED + 1);
    mk_index *ix;
    t_model mo;
    assert_int_equal(mk_index_new(&ix), MK_OK);
    t_fill(ix, &mo, &r, 4000);
    t_random_queries(ix, &mo, &r, 4000);
    t_check_find(ix, &mo, NULL, NULL, 0, NULL); /* everything */
    mk_matcher bad = {"host", NULL, 0};
    uint32_t *out;
    size_t n;
    mk_diag d = {0, {0}};
    assert_int_equal(mk_index_find(ix, NULL, &bad, 1, NULL, &out, &n, &d), MK_EINVAL);
    t_check_listings(ix, &mo);
    free(mo.s);
    mk_index_free(ix);

    /* an empty index answers everything with nothing */
    assert_int_equal(mk_index_new(&ix), MK_OK);
    mo.n = 0;
    mo.s = NULL;
    t_random_queries(ix, &mo, &r, 50);
    t_check_find(ix, &mo, NULL, NULL, 0, NULL);
    t_check_listings(ix, &mo);
    mk_index_free(ix);
}

/* ---- persistence -------------------------------------------------------- */

static void t_same_index(const mk_index *a, const mk_index *b)
{
    assert_int_equal(mk_index_count(a), mk_index_count(b));
    for (uint32_t o = 0; o < mk_index_count(a); o++) {
        size_t la, lb;
        const char *ka = mk_index_key_at(a, o, &la), *kb = mk_index_key_at(b, o, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(ka, kb, la);
        assert_true(mk_index_id_at(a, o) == mk_index_id_at(b, o));
        uint32_t ob;
        assert_int_equal(mk_index_ordinal(b, mk_index_id_at(a, o), &ob), MK_OK);
        assert_int_equal(ob, o);
    }
}

/* Reads a file the way FORMAT.md draws it, independently of the loader. */
static void t_check_layout(const uint8_t *p, size_t n, const mk_index *ix)
{
    assert_true(n >= 28);
    assert_int_equal(mk_get_u32(p), MK_INDEX_MAGIC);
    assert_memory_equal(p, "MKIX", 4);
    assert_int_equal(mk_get_u16(p + 4), MK_INDEX_VERSION);
    assert_int_equal(mk_get_u16(p + 6), 0);
    assert_int_equal(mk_get_u32(p + 8), mk_index_count(ix));
    assert_true(mk_get_u64(p + 12) == n - 28);
    assert_true(mk_get_u64(p + n - 8) == mk_hash64(p, n - 8));
    size_t pos = 20;
    char prev[MK_INDEX_MAX_KEY_BYTES];
    size_t prev_len = 0;
    for (uint32_t o = 0; o < mk_index_count(ix); o++) {
        uint64_t shared = 0, suffix = 0;
        size_t u = mk_get_uvarint(p + pos, n - 8 - pos, &shared);
        assert_true(u > 0);
        pos += u;
        u = mk_get_uvarint(p + pos, n - 8 - pos, &suffix);
        assert_true(u > 0 && suffix <= n - 8 - pos - u);
        pos += u;
        assert_true(shared <= prev_len);
        memcpy(prev + shared, p + pos, suffix);
        pos += suffix;
        prev_len = shared + suffix;
        size_t len;
        const char *k = mk_index_key_at(ix, o, &len);
        assert_int_equal(len, prev_len);
        assert_memory_equal(k, prev, len);
    }
    assert_int_equal(pos, n - 8);
}

static void test_save_load_roundtrip(void **state)
{
    (void)state;
    mk_rng r = {SEED + 2};
    printf("seed %u\n", SEED + 2);
    char *dir = mk_test_dir("index-roundtrip");
    assert_non_null(dir);
    mk_index *a, *b, *c;
    t_model mo;
    assert_int_equal(mk_index_new(&a), MK_OK);
    mk_diag d = {0, {0}};
    assert_int_equal(mk_index_load(a, mk_env_default(), dir, &d), MK_ENOTFOUND);
    /* empty index */
    assert_int_equal(mk_index_save(a, mk_env_default(), dir, &d), MK_OK);
    assert_int_equal(mk_index_new(&b), MK_OK);
    assert_int_equal(mk_index_load(b, mk_env_default(), dir, &d), MK_OK);
    assert_int_equal(mk_index_count(b), 0);
    mk_index_free(b);

    t_fill(a, &mo, &r, 3000);
    assert_int_equal(mk_index_save(a, mk_env_default(), dir, &d), MK_OK);
    char path[4200];
    snprintf(path, sizeof path, "%s/index.mki", dir);
    uint8_t *file;
    size_t n;
    assert_int_equal(mk_env_read_file(mk_env_default(), path, &file, &n, &d), MK_OK);
    t_check_layout(file, n, a);
    mk_buf enc = {0};
    assert_int_equal(mk_index_encode(a, &enc), MK_OK);
    assert_int_equal(enc.len, n);
    assert_memory_equal(enc.data, file, n);
    mk_buf_free(&enc);
    free(file);

    assert_int_equal(mk_index_new(&b), MK_OK);
    assert_int_equal(mk_index_load(b, mk_env_default(), dir, &d), MK_OK);
    t_same_index(a, b);
    mk_rng r2 = r;
    t_random_queries(b, &mo, &r, 1500);
    t_random_queries(a, &mo, &r2, 1500);
    t_check_listings(b, &mo);

    /* Loading into an index that already holds the first series in the same
     * order keeps them and adds the rest with the file's ordinals. */
    assert_int_equal(mk_index_new(&c), MK_OK);
    for (uint32_t o = 0; o < 100; o++) {
        size_t len;
        const char *k = mk_index_key_at(a, o, &len);
        assert_int_equal(mk_index_add(c, k, len, NULL, NULL, NULL, NULL), MK_OK);
    }
    assert_int_equal(mk_index_load(c, mk_env_default(), dir, &d), MK_OK);
    t_same_index(a, c);
    t_check_listings(c, &mo);

    /* A second save over the first, after more adds, replaces it. */
    t_model mo2;
    t_fill(a, &mo2, &r, 50);
    assert_int_equal(mk_index_save(a, mk_env_default(), dir, &d), MK_OK);
    mk_index_free(b);
    assert_int_equal(mk_index_new(&b), MK_OK);
    assert_int_equal(mk_index_load(b, mk_env_default(), dir, &d), MK_OK);
    t_same_index(a, b);
    free(mo2.s);

    free(mo.s);
    mk_index_free(a);
    mk_index_free(b);
    mk_index_free(c);
    mk_test_rmrf(dir);
    free(dir);
}

static void t_small_index(mk_index **out, mk_buf *file)
{
    static const char *keys[] = {"svc,host=a,service=api p95", "svc,host=a,service=api qps",
                                 "svc,host=b\\ c,service=web p95", "cpu usage",
                                 "mem\\,x,k\\==v\\, f\\ g"};
    assert_int_equal(mk_index_new(out), MK_OK);
    for (size_t i = 0; i < NELEM(keys); i++)
        assert_int_equal(mk_index_add(*out, keys[i], strlen(keys[i]), NULL, NULL, NULL, NULL), MK_OK);
    assert_int_equal(mk_index_encode(*out, file), MK_OK);
}

/* Every single-byte change of a small file is refused, and a failed load
 * leaves the index as it was. */
static void test_corrupt_each_byte(void **state)
{
    (void)state;
    mk_index *src, *ix;
    mk_buf f = {0};
    t_small_index(&src, &f);
    printf("file of %zu bytes\n", f.len);
    static const uint8_t flips[] = {0x01, 0x02, 0x10, 0x80, 0xff};
    assert_int_equal(mk_index_new(&ix), MK_OK);
    assert_int_equal(mk_index_add(ix, "pre,k=v f", 9, NULL, NULL, NULL, NULL), MK_OK);
    for (size_t i = 0; i < f.len; i++)
        for (size_t j = 0; j < NELEM(flips); j++) {
            f.data[i] ^= flips[j];
            mk_diag d = {0, {0}};
            mk_err rc = mk_index_load_buf(ix, f.data, f.len, "index.mki", &d);
            f.data[i] ^= flips[j];
            if (i < 4) assert_int_equal(rc, MK_ENOTOURS);
            else if (i < 6) assert_true(rc == MK_ETOONEW || rc == MK_ECORRUPT);
            else assert_int_equal(rc, MK_ECORRUPT);
            assert_int_equal(d.code, rc);
            if (rc == MK_ECORRUPT) assert_true(strstr(d.msg, "offset") != NULL);
            assert_int_equal(mk_index_count(ix), 1);
        }
    /* still intact, and the good file still loads */
    assert_int_equal(mk_index_load_buf(ix, f.data, f.len, "index.mki", NULL), MK_OK);
    assert_int_equal(mk_index_count(ix), 6);
    t_names got = {0};
    assert_int_equal(mk_index_measurements(ix, t_collect, &got), MK_OK);
    assert_int_equal(got.n, 4);
    t_names_free(&got);
    mk_index_free(ix);
    mk_index_free(src);
    mk_buf_free(&f);
}

static void test_truncated_and_extended(void **state)
{
    (void)state;
    mk_index *src, *ix;
    mk_buf f = {0};
    t_small_index(&src, &f);
    assert_int_equal(mk_index_new(&ix), MK_OK);
    for (size_t n = 0; n < f.len; n++) {
        mk_diag d = {0, {0}};
        mk_err rc = mk_index_load_buf(ix, f.data, n, "index.mki", &d);
        assert_int_equal(rc, MK_ECORRUPT);
        assert_true(strstr(d.msg, "offset") != NULL);
        assert_int_equal(mk_index_count(ix), 0);
    }
    assert_int_equal(mk_buf_append(&f, "", 1), MK_OK);
    assert_int_equal(mk_index_load_buf(ix, f.data, f.len, "index.mki", NULL), MK_ECORRUPT);
    assert_int_equal(mk_index_load_buf(ix, f.data, f.len - 1, "index.mki", NULL), MK_OK);
    t_same_index(src, ix);
    mk_index_free(ix);
    mk_index_free(src);
    mk_buf_free(&f);
}

static void t_fix_sum(mk_buf *f)
{
    mk_put_u64(f->data + f->len - 8, mk_hash64(f->data, f->len - 8));
}

/* A file written here without front coding: (shared 0, len, bytes) each. */
static void t_write_file(mk_buf *f, const char *const *keys, size_t n, uint32_t count)
{
    uint8_t h[20] = {0}, v[10];
    f->len = 0;
    mk_put_u32(h, MK_INDEX_MAGIC);
    mk_put_u16(h + 4, MK_INDEX_VERSION);
    mk_put_u32(h + 8, count);
    assert_int_equal(mk_buf_append(f, h, 20), MK_OK);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(keys[i]);
        assert_int_equal(mk_buf_append(f, v, mk_put_uvarint(v, 0)), MK_OK);
        assert_int_equal(mk_buf_append(f, v, mk_put_uvarint(v, l)), MK_OK);
        assert_int_equal(mk_buf_append(f, keys[i], l), MK_OK);
    }
    mk_put_u64(f->data + 12, f->len - 20);
    assert_int_equal(mk_buf_append(f, h, 8), MK_OK);
    t_fix_sum(f);
}

static void t_expect(const mk_buf *f, mk_err want, const char *msg_part)
{
    mk_index *ix;
    assert_int_equal(mk_index_new(&ix), MK_OK);
    mk_diag d = {0, {0}};
    mk_err rc = mk_index_load_buf(ix, f->data, f->len, "x.mki", &d);
    if (rc != want || (msg_part && !strstr(d.msg, msg_part)))
        fail_msg("want %s \"%s\", got %s \"%s\"", mk_err_name(want), msg_part ? msg_part : "",
                 mk_err_name(rc), d.msg);
    if (rc) assert_int_equal(mk_index_count(ix), 0);
    mk_index_free(ix);
}

/* Damage a checksum cannot see (a buggy writer): every kind is still found. */
static void test_structure_errors(void **state)
{
    (void)state;
    mk_buf f = {0};
    static const char *const good[] = {"a,t=1 f", "a,t=2 f", "b g"};
    t_write_file(&f, good, 3, 3);
    t_expect(&f, MK_OK, NULL);
    t_write_file(&f, good, 3, 4);
    t_expect(&f, MK_ECORRUPT, "varint");
    t_write_file(&f, good, 3, 2);
    t_expect(&f, MK_ECORRUPT, "bytes after the last key");
    t_write_file(&f, good, 3, 0xffffffffu);
    t_expect(&f, MK_ECORRUPT, "series count");
    static const char *const unparsable[] = {"a,t=1 f", "nospace"};
    t_write_file(&f, unparsable, 2, 2);
    t_expect(&f, MK_ECORRUPT, "key 1");
    static const char *const dup[] = {"a,t=1 f", "b g", "a,t=1 f"};
    t_write_file(&f, dup, 3, 3);
    t_expect(&f, MK_ECORRUPT, "duplicate key");
    t_write_file(&f, good, 3, 3);
    f.data[20] = 5; /* first key claims 5 shared bytes */
    t_fix_sum(&f);
    t_expect(&f, MK_ECORRUPT, "shared prefix");
    t_write_file(&f, good, 3, 3);
    f.data[21] = 100; /* suffix longer than the body */
    t_fix_sum(&f);
    t_expect(&f, MK_ECORRUPT, "past the end");
    t_write_file(&f, good, 3, 3);
    mk_put_u16(f.data + 6, 1);
    t_fix_sum(&f);
    t_expect(&f, MK_ECORRUPT, "flags");
    t_write_file(&f, good, 3, 3);
    mk_put_u16(f.data + 4, 0);
    t_fix_sum(&f);
    t_expect(&f, MK_ECORRUPT, "version 0");
    t_write_file(&f, good, 3, 3);
    mk_put_u16(f.data + 4, MK_INDEX_VERSION + 1); /* too new, checksum fixed or not */
    t_expect(&f, MK_ETOONEW, NULL);
    t_fix_sum(&f);
    t_expect(&f, MK_ETOONEW, NULL);
    t_write_file(&f, good, 3, 3);
    memcpy(f.data, "MKWL", 4);
    t_expect(&f, MK_ENOTOURS, NULL);
    t_write_file(&f, good, 3, 3);
    mk_put_u64(f.data + 12, 1000);
    t_expect(&f, MK_ECORRUPT, "truncated");
    mk_buf_free(&f);
}

/* A load that fails half way leaves nothing of the file behind. */
static void test_failed_load_rolls_back(void **state)
{
    (void)state;
    mk_index *ix;
    mk_buf f = {0};
    assert_int_equal(mk_index_new(&ix), MK_OK);
    static const char *const pre[] = {"m1,t=v f", "m1,t=w f", "m1 g"};
    for (size_t i = 0; i < NELEM(pre); i++)
        assert_int_equal(mk_index_add(ix, pre[i], strlen(pre[i]), NULL, NULL, NULL, NULL), MK_OK);
    static const char *const file[] = {"zz,t=v f", "m1,t=v,u=1 f", "m1,t=x h", "m1 g", "broken"};
    t_write_file(&f, file, NELEM(file), NELEM(file));
    mk_diag d = {0, {0}};
    assert_int_equal(mk_index_load_buf(ix, f.data, f.len, "x.mki", &d), MK_ECORRUPT);
    assert_int_equal(mk_index_count(ix), 3);
    uint32_t o;
    assert_int_equal(mk_index_ordinal(ix, mk_hash64("zz,t=v f", 8), &o), MK_ENOTFOUND);
    t_names got = {0};
    assert_int_equal(mk_index_measurements(ix, t_collect, &got), MK_OK);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.v[0], "m1");
    t_names_free(&got);
    assert_int_equal(mk_index_tag_values(ix, NULL, "t", t_collect, &got), MK_OK);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.v[0], "v");
    assert_string_equal(got.v[1], "w");
    t_names_free(&got);
    assert_int_equal(mk_index_tag_values(ix, NULL, "u", t_collect, &got), MK_OK);
    assert_int_equal(got.n, 0);
    uint32_t *out;
    size_t n;
    mk_matcher m = {"t", "v", 0};
    assert_int_equal(mk_index_find(ix, NULL, &m, 1, NULL, &out, &n, NULL), MK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 0);
    free(out);
    assert_int_equal(mk_index_find(ix, "m1", NULL, 0, "h", &out, &n, NULL), MK_OK);
    assert_int_equal(n, 0);
    /* the next series takes the next ordinal, and is found */
    int nw;
    assert_int_equal(mk_index_add(ix, "zz,t=v f", 8, NULL, &o, &nw, NULL), MK_OK);
    assert_int_equal(o, 3);
    assert_int_equal(mk_index_find(ix, NULL, &m, 1, NULL, &out, &n, NULL), MK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 3);
    free(out);
    mk_index_free(ix);
    mk_buf_free(&f);
}

/* ---- collisions through the test hash hook ------------------------------ */

static uint64_t t_len_hash(const void *p, size_t n)
{
    (void)p;
    return n; /* every key of one length has the same id */
}

static void test_collision(void **state)
{
    (void)state;
    mk_index *ix, *plain;
    assert_int_equal(mk_index_new(&ix), MK_OK);
    assert_int_equal(mk_index_set_hash_for_testing(ix, t_len_hash), MK_OK);
    uint64_t id;
    uint32_t o;
    int nw;
    mk_diag d = {0, {0}};
    assert_int_equal(mk_index_add(ix, "a f", 3, &id, &o, &nw, &d), MK_OK);
    assert_true(id == 3);
    assert_int_equal(mk_index_add(ix, "b f", 3, &id, &o, &nw, &d), MK_ECOLLISION);
    assert_int_equal(d.code, MK_ECOLLISION);
    assert_true(strstr(d.msg, "\"a f\"") && strstr(d.msg, "\"b f\""));
    assert_int_equal(mk_index_count(ix), 1);
    assert_int_equal(mk_index_add(ix, "a f", 3, &id, &o, &nw, &d), MK_OK);
    assert_int_equal(nw, 0);
    assert_int_equal(mk_index_add(ix, "ab f", 4, &id, &o, &nw, &d), MK_OK);
    assert_int_equal(o, 1);
    /* an invalid key is refused as such, colliding or not */
    assert_int_equal(mk_index_add(ix, "b,f", 3, &id, &o, &nw, &d), MK_EINVAL);
    /* the hook only goes on an empty index */
    assert_int_equal(mk_index_set_hash_for_testing(ix, NULL), MK_EINVAL);

    /* a collision met while loading: refused, and nothing of the file stays */
    assert_int_equal(mk_index_new(&plain), MK_OK);
    assert_int_equal(mk_index_add(plain, "zz,k=v g", 8, NULL, NULL, NULL, NULL), MK_OK);
    assert_int_equal(mk_index_add(plain, "c f", 3, NULL, NULL, NULL, NULL), MK_OK);
    mk_buf f = {0};
    assert_int_equal(mk_index_encode(plain, &f), MK_OK);
    d.code = MK_OK;
    assert_int_equal(mk_index_load_buf(ix, f.data, f.len, "x.mki", &d), MK_ECOLLISION);
    assert_true(strstr(d.msg, "\"a f\"") && strstr(d.msg, "\"c f\""));
    assert_int_equal(mk_index_count(ix), 2);
    t_names got = {0};
    assert_int_equal(mk_index_measurements(ix, t_collect, &got), MK_OK);
    assert_int_equal(got.n, 2); /* "a" and "ab", not "zz" */
    t_names_free(&got);
    mk_buf_free(&f);
    mk_index_free(plain);
    mk_index_free(ix);
}

/* ---- faults and odd arguments ------------------------------------------- */

static void test_save_faults(void **state)
{
    (void)state;
    char *dir = mk_test_dir("index-faults");
    mk_faultenv fe;
    mk_faultenv_init(&fe);
    mk_index *ix, *back;
    mk_buf f = {0};
    t_small_index(&ix, &f);
    mk_diag d = {0, {0}};
    assert_int_equal(mk_index_save(ix, &fe.env, dir, &d), MK_OK);
    assert_int_equal(mk_index_add(ix, "new f", 5, NULL, NULL, NULL, NULL), MK_OK);
    mk_faultenv_arm(&fe, MK_FAULT_FSYNC, 1, EIO);
    assert_int_equal(mk_index_save(ix, &fe.env, dir, &d), MK_EIO);
    mk_faultenv_reset(&fe);
    mk_faultenv_arm(&fe, MK_FAULT_PWRITE, 1, ENOSPC);
    assert_int_equal(mk_index_save(ix, &fe.env, dir, &d), MK_ENOSPC);
    /* the old file is untouched */
    assert_int_equal(mk_index_new(&back), MK_OK);
    assert_int_equal(mk_index_load(back, &fe.env, dir, &d), MK_OK);
    assert_int_equal(mk_index_count(back), 5);
    mk_index_free(back);
    mk_index_free(ix);
    mk_buf_free(&f);
    mk_test_rmrf(dir);
    free(dir);
}

/* ---- the memory figure -------------------------------------------------- */

static double t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_memory_100k(void **state)
{
    (void)state;
    enum { N_INST = 25000, N_FIELDS = 4 };
    static const char *const fields[N_FIELDS] = {"qps", "p95_ms", "error_rate", "up"};
    mk_index *ix, *back;
    assert_int_equal(mk_index_new(&ix), MK_OK);
    char key[128];
    double t0 = t_now_ms();
    for (int i = 0; i < N_INST; i++)
        for (int f = 0; f < N_FIELDS; f++) {
            int n = snprintf(key, sizeof key, "svc,instance=i-%d,service=s%d %s", i, i % 20, fields[f]);
            assert_int_equal(mk_index_add(ix, key, (size_t)n, NULL, NULL, NULL, NULL), MK_OK);
        }
    double t1 = t_now_ms();
    size_t bytes = mk_index_bytes(ix);
    mk_buf f = {0};
    assert_int_equal(mk_index_encode(ix, &f), MK_OK);
    assert_int_equal(mk_index_new(&back), MK_OK);
    double t2 = t_now_ms();
    assert_int_equal(mk_index_load_buf(back, f.data, f.len, "x", NULL), MK_OK);
    double t3 = t_now_ms();
    printf("100000 fleet series: index %zu bytes = %.1f bytes/series; add %.1f ms; "
           "file %zu bytes = %.1f bytes/series; load %.1f ms\n",
           bytes, bytes / 1e5, t1 - t0, f.len, f.len / 1e5, t3 - t2);
    assert_true(bytes / 100000 < 200);
    assert_int_equal(mk_index_count(back), 100000);
    mk_matcher m = {"instance", "i-123", 0};
    uint32_t *out;
    size_t n;
    assert_int_equal(mk_index_find(back, "svc", &m, 1, NULL, &out, &n, NULL), MK_OK);
    assert_int_equal(n, 4);
    assert_int_equal(out[0], 123 * 4);
    free(out);
    mk_matcher s3 = {"service", "s3", 0};
    assert_int_equal(mk_index_find(back, "svc", &s3, 1, "up", &out, &n, NULL), MK_OK);
    assert_int_equal(n, N_INST / 20);
    for (size_t i = 0; i < n; i++) assert_int_equal(out[i] % 4, 3);
    free(out);
    mk_buf_free(&f);
    mk_index_free(back);
    mk_index_free(ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_build_known),
        cmocka_unit_test(test_add_rejects),
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_find_random),
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_corrupt_each_byte),
        cmocka_unit_test(test_truncated_and_extended),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_failed_load_rolls_back),
        cmocka_unit_test(test_collision),
        cmocka_unit_test(test_save_faults),
        cmocka_unit_test(test_memory_100k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
