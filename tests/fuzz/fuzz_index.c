/*
 * tests/fuzz/fuzz_index.c — the series index under libFuzzer. The first
 * byte picks a mode, the rest is its input:
 *
 *   0  the bytes as an index file (mk_index_load_buf): never crashes; two
 *      loads agree; a loaded index re-encodes to a file that loads to the
 *      same keys and ids (round trip).
 *   1  the same with a valid header and checksum put around the bytes
 *      (count from the first 2 bytes), so the key decoder and the key
 *      checks are reached instead of stopping at the checksum.
 *   2  the bytes, split at '\n', as raw keys for mk_index_add: two indexes
 *      fed the same keys answer the same (determinism); re-adding an
 *      accepted key finds it; the whole index survives encode + load.
 *   3  the bytes, split at NUL, as unescaped parts (measurement, field, then
 *      tag key/value pairs) for mk_index_key_build; a built key must be
 *      accepted and read back as exactly those parts.
 *
 * Any broken property calls abort(), which libFuzzer reports. Setting
 * MK_FUZZ_INDEX_MODE=0..3 pins the mode (the first byte is then ignored), to
 * give each mode its own run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "index.h"

#define CHECK(c) \
    do {         \
        if (!(c)) abort(); \
    } while (0)

static void same_index(const mk_index *a, const mk_index *b)
{
    CHECK(mk_index_count(a) == mk_index_count(b));
    for (uint32_t o = 0; o < mk_index_count(a); o++) {
        size_t la, lb;
        const char *ka = mk_index_key_at(a, o, &la), *kb = mk_index_key_at(b, o, &lb);
        CHECK(la == lb && memcmp(ka, kb, la) == 0);
        CHECK(mk_index_id_at(a, o) == mk_index_id_at(b, o));
    }
}

/* encode(ix) loads into an index equal to ix, and re-encodes identically. */
static void round_trip(const mk_index *ix)
{
    mk_buf f = {0}, g = {0};
    mk_index *back = NULL;
    CHECK(mk_index_encode(ix, &f) == MK_OK);
    CHECK(mk_index_new(&back) == MK_OK);
    CHECK(mk_index_load_buf(back, f.data, f.len, "rt", NULL) == MK_OK);
    same_index(ix, back);
    CHECK(mk_index_encode(back, &g) == MK_OK);
    CHECK(f.len == g.len && memcmp(f.data, g.data, f.len) == 0);
    uint32_t *all;
    size_t n;
    CHECK(mk_index_find(back, NULL, NULL, 0, NULL, &all, &n, NULL) == MK_OK);
    CHECK(n == mk_index_count(ix));
    free(all);
    mk_index_free(back);
    mk_buf_free(&f);
    mk_buf_free(&g);
}

static void load_mode(const uint8_t *p, size_t n)
{
    mk_index *a = NULL, *b = NULL;
    mk_diag da = {0, {0}}, db = {0, {0}};
    CHECK(mk_index_new(&a) == MK_OK && mk_index_new(&b) == MK_OK);
    mk_err ra = mk_index_load_buf(a, p, n, "fuzz", &da);
    mk_err rb = mk_index_load_buf(b, p, n, "fuzz", &db);
    CHECK(ra == rb && strcmp(da.msg, db.msg) == 0);
    if (ra == MK_OK) {
        same_index(a, b);
        round_trip(a);
    } else {
        CHECK(mk_index_count(a) == 0); /* a failed load leaves nothing */
    }
    mk_index_free(a);
    mk_index_free(b);
}

static void framed_mode(const uint8_t *p, size_t n)
{
    if (n < 2) return;
    uint32_t count = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    p += 2;
    n -= 2;
    uint8_t *f = malloc(n + 28);
    CHECK(f);
    mk_put_u32(f, MK_INDEX_MAGIC);
    mk_put_u16(f + 4, MK_INDEX_VERSION);
    mk_put_u16(f + 6, 0);
    mk_put_u32(f + 8, count);
    mk_put_u64(f + 12, n);
    if (n) memcpy(f + 20, p, n);
    mk_put_u64(f + 20 + n, mk_hash64(f, 20 + n));
    load_mode(f, n + 28);
    free(f);
}

static void keys_mode(const uint8_t *p, size_t n)
{
    mk_index *a = NULL, *b = NULL;
    CHECK(mk_index_new(&a) == MK_OK && mk_index_new(&b) == MK_OK);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != '\n') continue;
        const char *k = (const char *)p + start;
        size_t len = i - start;
        start = i + 1;
        uint64_t ida = 0, idb = 0;
        uint32_t oa = 0, ob = 0;
        int na = 0, nb = 0;
        uint32_t before = mk_index_count(a);
        mk_err ra = mk_index_add(a, k, len, &ida, &oa, &na, NULL);
        mk_err rb = mk_index_add(b, k, len, &idb, &ob, &nb, NULL);
        CHECK(ra == rb);
        if (ra != MK_OK) {
            CHECK(ra == MK_EINVAL || ra == MK_ELIMIT);
            CHECK(mk_index_count(a) == before);
            continue;
        }
        CHECK(ida == idb && oa == ob && na == nb);
        CHECK(ida == mk_hash64(k, len));
        CHECK(na ? oa == before : oa < before);
        size_t kl;
        const char *kk = mk_index_key_at(a, oa, &kl);
        CHECK(kl == len && memcmp(kk, k, len) == 0 && kk[len] == 0);
        uint32_t o2;
        int n2;
        CHECK(mk_index_add(a, k, len, &ida, &o2, &n2, NULL) == MK_OK && o2 == oa && !n2);
        CHECK(mk_index_ordinal(a, ida, &o2) == MK_OK && o2 == oa);
    }
    same_index(a, b);
    round_trip(a);
    mk_index_free(a);
    mk_index_free(b);
}

typedef struct seen {
    const char *want;
    int n;
    int is_ok;
} seen;

static int expect_one(void *ctx, const char *name)
{
    seen *s = ctx;
    s->n++;
    s->is_ok = strcmp(name, s->want) == 0;
    return 0;
}

static int cmp_tag(const void *a, const void *b)
{
    const mk_lp_tag *x = a, *y = b;
    int c = memcmp(x->key.p, y->key.p, x->key.len < y->key.len ? x->key.len : y->key.len);
    return c ? c : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

static void parts_mode(const uint8_t *p, size_t n)
{
    /* parts[0] measurement, [1] field, then key, value, key, value ... */
    enum { MAX_PARTS = 34 };
    mk_lp_str parts[MAX_PARTS];
    size_t n_parts = 0, start = 0;
    for (size_t i = 0; i <= n && n_parts < MAX_PARTS; i++) {
        if (i < n && p[i] != 0) continue;
        parts[n_parts++] = (mk_lp_str){(const char *)p + start, (uint32_t)(i - start)};
        start = i + 1;
    }
    if (n_parts < 2) return;
    mk_lp_tag tags[MAX_PARTS / 2];
    uint32_t n_tags = 0;
    for (size_t i = 2; i + 1 < n_parts; i += 2) tags[n_tags++] = (mk_lp_tag){parts[i], parts[i + 1]};
    qsort(tags, n_tags, sizeof *tags, cmp_tag);
    mk_buf key = {0};
    if (mk_index_key_build(&key, parts[0], tags, n_tags, parts[1]) != MK_OK) {
        CHECK(key.len == 0);
        mk_buf_free(&key);
        return;
    }
    mk_index *ix = NULL;
    CHECK(mk_index_new(&ix) == MK_OK);
    uint64_t id;
    uint32_t o;
    int nw;
    CHECK(mk_index_add(ix, (const char *)key.data, key.len, &id, &o, &nw, NULL) == MK_OK);
    CHECK(o == 0 && nw == 1);
    /* Read the parts back through the index: names are C strings, and the
     * parts hold no NUL (they were split at NUL). */
    char *meas = strndup(parts[0].p, parts[0].len), *field = strndup(parts[1].p, parts[1].len);
    seen s = {meas, 0, 0};
    CHECK(mk_index_measurements(ix, expect_one, &s) == MK_OK && s.n == 1 && s.is_ok);
    mk_matcher m[MAX_PARTS / 2];
    char *strs[MAX_PARTS];
    for (uint32_t i = 0; i < n_tags; i++) {
        strs[2 * i] = strndup(tags[i].key.p, tags[i].key.len);
        strs[2 * i + 1] = strndup(tags[i].value.p, tags[i].value.len);
        m[i] = (mk_matcher){strs[2 * i], strs[2 * i + 1], 0};
        seen v = {strs[2 * i + 1], 0, 0};
        CHECK(mk_index_tag_values(ix, meas, strs[2 * i], expect_one, &v) == MK_OK && v.n == 1 && v.is_ok);
    }
    uint32_t *out;
    size_t n_out;
    CHECK(mk_index_find(ix, meas, m, n_tags, field, &out, &n_out, NULL) == MK_OK);
    CHECK(n_out == 1 && out[0] == 0);
    free(out);
    for (uint32_t i = 0; i < n_tags; i++) m[i].is_negated = 1;
    CHECK(mk_index_find(ix, meas, m, n_tags, field, &out, &n_out, NULL) == MK_OK);
    CHECK(n_out == (n_tags ? 0u : 1u));
    free(out);
    round_trip(ix);
    for (uint32_t i = 0; i < 2 * n_tags; i++) free(strs[i]);
    free(meas);
    free(field);
    mk_index_free(ix);
    mk_buf_free(&key);
}

static int pinned_mode = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *m = getenv("MK_FUZZ_INDEX_MODE");
    if (m && *m >= '0' && *m <= '3') pinned_mode = *m - '0';
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    switch (pinned_mode >= 0 ? pinned_mode : data[0] & 3) {
    case 0: load_mode(data + 1, size - 1); break;
    case 1: framed_mode(data + 1, size - 1); break;
    case 2: keys_mode(data + 1, size - 1); break;
    default: parts_mode(data + 1, size - 1); break;
    }
    return 0;
}
