/*
 * engine/index.c — the series index (see index.h; file layout in FORMAT.md,
 * "Series index").
 *
 * Data structures (all owned by mk_index, freed by mk_index_free):
 *
 *   keys[ord]  -> arena:  [u16 len][len key bytes][NUL]
 *   ids[ord]      XXH3-64 of the key (ix->hash)
 *   id_slots      open addressing, linear probing; a u64 slot holds the
 *                 high 32 bits of the id above ordinal + 1 (0 = empty), so
 *                 a probe reads ids[] only when those bits match
 *   terms[]       one per measurement, (measurement, field),
 *                 (measurement, tag key) and (tag key term, tag value),
 *                 names unescaped in the arena; found through term_slots
 *                 (same probing as id_slots) by (kind, parent, name)
 *
 * Each term owns one sorted list of u32, stored inline when it holds at most
 * IX_INLINE entries (most tag values of a high-cardinality tag):
 *   measurement, field, tag value: ordinals of the series that have it;
 *   tag key: term ids of its values, in creation order.
 *
 * Invariants:
 *  - ordinals are dense, 0..count-1, in order of creation; a series is never
 *    removed, so keys[] pointers (into arena chunks that never move) stay
 *    valid until mk_index_free;
 *  - every key in the index is canonical: parsing it and building it again
 *    (mk_index_key_build) gives the same bytes, so one series has one id;
 *  - posting lists are strictly ascending, because a series appends its
 *    ordinal, larger than every earlier one, to each of its terms once;
 *  - a term may have an empty list (left by an add that ran out of memory
 *    after creating it, or by a rolled-back load); listings skip such terms.
 *
 * Queries on tags are answered by intersecting the shortest list with the
 * others by galloping search, then subtracting the negated ones; no query
 * with an equality matcher looks at every series. Tag terms are scoped to a
 * measurement (as InfluxDB's TSI does), so `m, service='api'` reads one list.
 */
#include "index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

#define IX_NONE UINT32_MAX
#define IX_INLINE 2            /* list entries stored inside the term */
#define IX_MIN_SLOTS 64u       /* smallest hash table */
#define IX_CHUNK_MIN 4096u     /* first arena chunk; doubles per chunk ... */
#define IX_CHUNK_MAX (1u << 20) /* ... up to 1 MiB */
#define IX_FILE "index.mki"

/* File header (FORMAT.md): magic u32, version u16, flags u16 (0), count u32,
 * body_len u64; the body; then XXH3-64 of everything before it. */
#define IX_HDR_BYTES 20u
#define IX_SUM_BYTES 8u

enum { IX_MEAS = 0, IX_FIELD = 1, IX_TAGKEY = 2, IX_TAGVAL = 3 };

/* Byte classes of the canonical key syntax; 0 for every plain byte. */
enum { IX_COMMA = 1, IX_EQ = 2, IX_SP = 4, IX_ALL = 7, IX_BSL = 8, IX_NUL = 16 };
static const uint8_t ix_class[256] = {[','] = IX_COMMA, ['='] = IX_EQ, [' '] = IX_SP,
                                      ['\\'] = IX_BSL, [0] = IX_NUL};

typedef struct ix_term {
    const char *name;  /* unescaped, NUL-terminated, in the arena */
    uint32_t parent;   /* measurement term (field, tag key), tag key term (tag value), IX_NONE */
    uint32_t n;        /* entries in the list */
    uint32_t cap;      /* capacity of u.ext; 0 = inline (IX_INLINE entries) */
    uint16_t name_len;
    uint8_t kind;
    union {
        uint32_t inl[IX_INLINE];
        uint32_t *ext;
    } u;
} ix_term;

/* Bytes that never move: keys and term names. Chunks are never realloc'ed. */
typedef struct ix_arena {
    uint8_t **chunks;
    uint32_t n_chunks, cap_chunks;
    size_t used, size; /* of the current (last) chunk */
    size_t bytes;      /* sum of chunk sizes */
} ix_arena;

typedef struct ix_part {
    uint32_t off, len; /* in the parse buffer */
} ix_part;

typedef struct ix_ptag {
    ix_part key, value;
    uint32_t term; /* the value's term, filled in by ix_add */
} ix_ptag;

/* A parsed key, in scratch space reused across adds. */
typedef struct ix_parsed {
    uint8_t *buf; /* unescaped parts, back to back */
    size_t cap_buf;
    ix_ptag *tags;
    uint32_t cap_tags, n_tags;
    ix_part meas, field;
    size_t field_at; /* byte offset of the field key in the key */
} ix_parsed;

/*
 * The measurement and tags of the last series added: the bytes before its
 * field key (ending with the separating space) and their terms. Series are
 * mostly created several at a time with one tag set (one line, many fields;
 * a saved index in ordinal order), and a key that starts with these bytes
 * parses to the same measurement and tags, so only its field is read.
 */
typedef struct ix_last {
    char *prefix;
    size_t len, cap; /* len 0: nothing cached */
    uint32_t meas;
    uint32_t *terms; /* value term per tag */
    uint32_t n_tags, cap_terms;
} ix_last;

struct mk_index {
    uint64_t (*hash)(const void *p, size_t n);
    uint32_t count, cap;
    uint64_t *ids;
    const char **keys;
    uint64_t *id_slots;
    uint32_t id_mask; /* slots - 1; slots is a power of two */
    ix_term *terms;
    uint32_t n_terms, cap_terms;
    uint32_t *term_slots;
    uint32_t term_mask;
    uint32_t *meas; /* measurement term ids, creation order */
    uint32_t n_meas, cap_meas;
    ix_arena arena;
    size_t post_bytes; /* heap held by out-of-line lists */
    ix_parsed ps;
    ix_last last;
};

/* ---- small helpers ------------------------------------------------------ */

static int bytes_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t term_hash(uint8_t kind, uint32_t parent, const void *name, size_t len)
{
    return mix64(mk_hash64(name, len) ^ (((uint64_t)parent << 8 | kind) * 0x9e3779b97f4a7c15ull));
}

static const uint32_t *term_list(const ix_term *t) { return t->cap ? t->u.ext : t->u.inl; }
static uint32_t *term_list_mut(ix_term *t) { return t->cap ? t->u.ext : t->u.inl; }

static mk_err grow_array(void **p, uint32_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap) return MK_OK;
    if (need > UINT32_MAX) return MK_ELIMIT;
    uint64_t nc = *cap ? *cap : 16;
    while (nc < need) nc = nc < 4096 ? nc * 2 : nc + nc / 2;
    if (nc > UINT32_MAX) nc = UINT32_MAX;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return MK_ENOMEM;
    *p = q;
    *cap = (uint32_t)nc;
    return MK_OK;
}

/* ---- arena -------------------------------------------------------------- */

static void *arena_alloc(ix_arena *a, size_t n)
{
    if (a->n_chunks && a->size - a->used >= n) {
        void *p = a->chunks[a->n_chunks - 1] + a->used;
        a->used += n;
        return p;
    }
    if (a->n_chunks == a->cap_chunks &&
        grow_array((void **)&a->chunks, &a->cap_chunks, (uint64_t)a->n_chunks + 1, sizeof *a->chunks))
        return NULL;
    size_t sz = (size_t)IX_CHUNK_MIN << (a->n_chunks < 8 ? a->n_chunks : 8);
    if (sz > IX_CHUNK_MAX) sz = IX_CHUNK_MAX;
    if (sz < n) sz = n;
    uint8_t *c = malloc(sz);
    if (!c) return NULL;
    a->chunks[a->n_chunks++] = c;
    a->used = n;
    a->size = sz;
    a->bytes += sz;
    return c;
}

static void arena_free(ix_arena *a)
{
    for (uint32_t i = 0; i < a->n_chunks; i++) free(a->chunks[i]);
    free(a->chunks);
    memset(a, 0, sizeof *a);
}

/* ---- id table ----------------------------------------------------------- */

static uint32_t id_lookup(const mk_index *ix, uint64_t id)
{
    if (!ix->id_slots) return IX_NONE;
    uint64_t fp = id & 0xffffffff00000000ull;
    for (uint32_t i = (uint32_t)id & ix->id_mask;; i = (i + 1) & ix->id_mask) {
        uint64_t s = ix->id_slots[i];
        if (!s) return IX_NONE;
        uint32_t o = (uint32_t)s - 1;
        if ((s & 0xffffffff00000000ull) == fp && ix->ids[o] == id) return o;
    }
}

static void id_insert(mk_index *ix, uint32_t ord)
{
    uint64_t id = ix->ids[ord];
    uint32_t i = (uint32_t)id & ix->id_mask;
    while (ix->id_slots[i]) i = (i + 1) & ix->id_mask;
    ix->id_slots[i] = (id & 0xffffffff00000000ull) | ((uint64_t)ord + 1);
}

static void id_rebuild(mk_index *ix)
{
    memset(ix->id_slots, 0, ((size_t)ix->id_mask + 1) * sizeof *ix->id_slots);
    for (uint32_t o = 0; o < ix->count; o++) id_insert(ix, o);
}

/* Room for n series in ids[], keys[] and the id table (load <= 3/4). */
static mk_err series_reserve(mk_index *ix, uint64_t n)
{
    if (n >= UINT32_MAX) return MK_ELIMIT; /* slots hold ordinal + 1 */
    if (n > ix->cap) {
        uint32_t cap = ix->cap;
        mk_err rc = grow_array((void **)&ix->ids, &cap, n, sizeof *ix->ids);
        if (rc) return rc;
        uint32_t cap2 = ix->cap;
        rc = grow_array((void **)&ix->keys, &cap2, cap, sizeof *ix->keys);
        if (rc) return rc;
        ix->cap = cap; /* both arrays now hold cap entries */
    }
    uint64_t slots = ix->id_slots ? (uint64_t)ix->id_mask + 1 : 0;
    if (n * 4 > slots * 3) {
        uint64_t ns = slots ? slots : IX_MIN_SLOTS;
        while (n * 4 > ns * 3) ns *= 2;
        if (ns > (1ull << 32)) return MK_ELIMIT;
        uint64_t *p = calloc((size_t)ns, sizeof *p);
        if (!p) return MK_ENOMEM;
        free(ix->id_slots);
        ix->id_slots = p;
        ix->id_mask = (uint32_t)(ns - 1);
        id_rebuild(ix);
    }
    return MK_OK;
}

/* ---- terms -------------------------------------------------------------- */

static uint32_t term_find(const mk_index *ix, uint8_t kind, uint32_t parent, const void *name,
                          size_t len)
{
    if (!ix->term_slots || len > UINT16_MAX) return IX_NONE;
    uint64_t h = term_hash(kind, parent, name, len);
    for (uint32_t i = (uint32_t)h & ix->term_mask;; i = (i + 1) & ix->term_mask) {
        uint32_t s = ix->term_slots[i];
        if (!s) return IX_NONE;
        const ix_term *t = &ix->terms[s - 1];
        if (t->kind == kind && t->parent == parent && t->name_len == len &&
            memcmp(t->name, name, len) == 0)
            return s - 1;
    }
}

static void term_insert(mk_index *ix, uint32_t tid)
{
    const ix_term *t = &ix->terms[tid];
    uint32_t i = (uint32_t)term_hash(t->kind, t->parent, t->name, t->name_len) & ix->term_mask;
    while (ix->term_slots[i]) i = (i + 1) & ix->term_mask;
    ix->term_slots[i] = tid + 1;
}

static void term_rebuild(mk_index *ix)
{
    memset(ix->term_slots, 0, ((size_t)ix->term_mask + 1) * sizeof *ix->term_slots);
    for (uint32_t t = 0; t < ix->n_terms; t++) term_insert(ix, t);
}

/* Room for `extra` more entries in t's list. */
static mk_err list_reserve(mk_index *ix, ix_term *t, uint32_t extra)
{
    uint32_t cap = t->cap ? t->cap : IX_INLINE;
    if (cap - t->n >= extra) return MK_OK;
    uint64_t need = (uint64_t)t->n + extra;
    if (need > UINT32_MAX) return MK_ELIMIT;
    uint64_t nc = cap;
    while (nc < need) nc = nc < 4096 ? nc * 2 : nc + nc / 2;
    if (nc > UINT32_MAX) nc = UINT32_MAX;
    uint32_t *p = realloc(t->cap ? t->u.ext : NULL, (size_t)nc * sizeof *p);
    if (!p) return MK_ENOMEM;
    if (!t->cap) memcpy(p, t->u.inl, t->n * sizeof *p);
    ix->post_bytes += ((size_t)nc - t->cap) * sizeof *p;
    t->u.ext = p;
    t->cap = (uint32_t)nc;
    return MK_OK;
}

/* Finds or creates the term (kind, parent, name). A new tag value is
 * recorded in its tag key's list and a new measurement in ix->meas; every
 * allocation happens before anything is linked, so a failure leaves no
 * half-made term. */
static mk_err term_get(mk_index *ix, uint8_t kind, uint32_t parent, const uint8_t *name,
                       uint32_t len, uint32_t *out)
{
    uint32_t tid = term_find(ix, kind, parent, name, len);
    mk_err rc = MK_OK;
    if (tid != IX_NONE) goto done;
    if (ix->n_terms >= UINT32_MAX - 1) return MK_ELIMIT;
    if (kind == IX_TAGVAL && (rc = list_reserve(ix, &ix->terms[parent], 1))) return rc;
    if (kind == IX_MEAS && (rc = grow_array((void **)&ix->meas, &ix->cap_meas,
                                             (uint64_t)ix->n_meas + 1, sizeof *ix->meas)))
        return rc;
    if ((rc = grow_array((void **)&ix->terms, &ix->cap_terms, (uint64_t)ix->n_terms + 1,
                         sizeof *ix->terms)))
        return rc;
    uint64_t slots = ix->term_slots ? (uint64_t)ix->term_mask + 1 : 0;
    if (((uint64_t)ix->n_terms + 1) * 4 > slots * 3) {
        uint64_t ns = slots ? slots * 2 : IX_MIN_SLOTS;
        uint32_t *p = calloc((size_t)ns, sizeof *p);
        if (!p) return MK_ENOMEM;
        free(ix->term_slots);
        ix->term_slots = p;
        ix->term_mask = (uint32_t)(ns - 1);
        term_rebuild(ix);
    }
    char *nm = arena_alloc(&ix->arena, (size_t)len + 1);
    if (!nm) return MK_ENOMEM;
    memcpy(nm, name, len);
    nm[len] = 0;
    tid = ix->n_terms++;
    ix_term *t = &ix->terms[tid];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->name_len = (uint16_t)len;
    t->kind = kind;
    t->parent = parent;
    term_insert(ix, tid);
    if (kind == IX_TAGVAL) {
        ix_term *k = &ix->terms[parent];
        term_list_mut(k)[k->n++] = tid;
    }
    if (kind == IX_MEAS) ix->meas[ix->n_meas++] = tid;
done:
    *out = tid;
    return rc;
}

/* ---- canonical keys ----------------------------------------------------- */

/*
 * Reads one part of a canonical key from key[*pos..len) into dst: `\c` with
 * c in `esc` stands for c; the part ends at the first unescaped byte in
 * `stop` (stop is a subset of esc) or at the end. Any other unescaped byte
 * of esc is an error, as are NUL, an empty part and a part ending with a
 * backslash: keys written by mk_index_key_build never hold them, and
 * refusing them keeps one spelling per series. Returns NULL or the reason.
 */
static const char *read_part(const char *key, size_t len, size_t *pos, unsigned esc, unsigned stop,
                             uint8_t *dst, uint32_t *dst_len)
{
    size_t i = *pos;
    uint32_t n = 0;
    const char *why = NULL;
    while (i < len) {
        uint8_t c = (uint8_t)key[i];
        unsigned k = ix_class[c];
        if (!k) { /* the common case */
            dst[n++] = c;
            i++;
            continue;
        }
        if (k & IX_NUL) { why = "NUL byte"; goto out; }
        if ((k & IX_BSL) && i + 1 < len && (ix_class[(uint8_t)key[i + 1]] & esc)) {
            dst[n++] = (uint8_t)key[i + 1];
            i += 2;
            continue;
        }
        if (k & stop) break;
        if (k & esc) {
            why = c == ',' ? "unescaped ','" : c == '=' ? "unescaped '='" : "unescaped ' '";
            goto out;
        }
        dst[n++] = c;
        i++;
    }
    if (n == 0) why = "empty part";
    else if (dst[n - 1] == '\\') why = "part ends with a backslash";
out:
    *pos = i;
    *dst_len = n;
    return why;
}

/* Room for the unescaped parts of a key of len bytes (never longer). */
static mk_err ps_reserve(ix_parsed *ps, size_t len)
{
    if (len <= ps->cap_buf) return MK_OK;
    uint8_t *b = realloc(ps->buf, len);
    if (!b) return MK_ENOMEM;
    ps->buf = b;
    ps->cap_buf = len;
    return MK_OK;
}

/* Parses a canonical key into ix->ps. MK_EINVAL with the reason and byte
 * offset if it is not one. */
static mk_err parse_key(mk_index *ix, const char *key, size_t len, mk_diag *diag)
{
    ix_parsed *ps = &ix->ps;
    mk_err rc = MK_OK;
    const char *why = NULL;
    size_t pos = 0;
    uint32_t out = 0, n = 0;
    if ((rc = ps_reserve(ps, len))) return rc;
    ps->n_tags = 0;
    const char *what = "measurement";
    if ((why = read_part(key, len, &pos, IX_COMMA | IX_SP, IX_COMMA | IX_SP, ps->buf, &n))) goto bad;
    ps->meas = (ix_part){0, n};
    out = n;
    while (pos < len && key[pos] == ',') {
        pos++;
        what = "tag key";
        if ((why = read_part(key, len, &pos, IX_ALL, IX_EQ, ps->buf + out, &n))) goto bad;
        if (pos >= len) { why = "no '=' after it"; goto bad; }
        pos++;
        if ((rc = grow_array((void **)&ps->tags, &ps->cap_tags, (uint64_t)ps->n_tags + 1,
                             sizeof *ps->tags)))
            goto out;
        ix_part k = {out, n};
        out += n;
        if (ps->n_tags) {
            ix_part p = ps->tags[ps->n_tags - 1].key;
            int c = bytes_cmp(ps->buf + p.off, p.len, ps->buf + k.off, k.len);
            if (c >= 0) { why = c ? "tags not sorted by key" : "duplicate tag key"; goto bad; }
        }
        what = "tag value";
        if ((why = read_part(key, len, &pos, IX_ALL, IX_COMMA | IX_SP, ps->buf + out, &n))) goto bad;
        ps->tags[ps->n_tags++] = (ix_ptag){k, {out, n}, IX_NONE};
        out += n;
    }
    what = "field key";
    if (pos >= len) { why = "missing (no space after the tags)"; goto bad; }
    pos++; /* the space: read_part stopped at ',' or ' ', and ',' was taken above */
    ps->field_at = pos;
    if ((why = read_part(key, len, &pos, IX_ALL, 0, ps->buf + out, &n))) goto bad;
    ps->field = (ix_part){out, n};
    goto out;
bad:
    rc = mk_diag_set(diag, MK_EINVAL, "series key \"%.*s\": %s at byte %zu: %s",
                     (int)(len < 200 ? len : 200), key, what, pos, why);
out:
    return rc;
}

static size_t escaped_len(const char *p, uint32_t n, unsigned esc)
{
    size_t r = n;
    for (uint32_t i = 0; i < n; i++) r += (ix_class[(uint8_t)p[i]] & esc) != 0;
    return r;
}

static uint8_t *escape_into(uint8_t *d, const char *p, uint32_t n, unsigned esc)
{
    for (uint32_t i = 0; i < n; i++) {
        if (ix_class[(uint8_t)p[i]] & esc) *d++ = '\\';
        *d++ = (uint8_t)p[i];
    }
    return d;
}

static int part_ok(mk_lp_str s)
{
    return s.len > 0 && s.p && !memchr(s.p, 0, s.len) && s.p[s.len - 1] != '\\';
}

mk_err mk_index_key_build(mk_buf *out, mk_lp_str measurement, const mk_lp_tag *sorted_tags,
                          uint32_t n_tags, mk_lp_str field)
{
    if (!out || !part_ok(measurement) || !part_ok(field) || (n_tags && !sorted_tags))
        return MK_EINVAL;
    size_t total = escaped_len(measurement.p, measurement.len, IX_COMMA | IX_SP) + 1 +
                   escaped_len(field.p, field.len, IX_ALL);
    for (uint32_t i = 0; i < n_tags; i++) {
        const mk_lp_tag *t = &sorted_tags[i];
        if (!part_ok(t->key) || !part_ok(t->value)) return MK_EINVAL;
        if (i && bytes_cmp(sorted_tags[i - 1].key.p, sorted_tags[i - 1].key.len, t->key.p,
                           t->key.len) >= 0)
            return MK_EINVAL;
        total += 2 + escaped_len(t->key.p, t->key.len, IX_ALL) +
                 escaped_len(t->value.p, t->value.len, IX_ALL);
        if (total > MK_INDEX_MAX_KEY_BYTES) return MK_ELIMIT; /* also bounds the sum */
    }
    if (total > MK_INDEX_MAX_KEY_BYTES) return MK_ELIMIT;
    mk_err rc = mk_buf_reserve(out, total);
    if (rc) return rc;
    uint8_t *d = out->data + out->len;
    d = escape_into(d, measurement.p, measurement.len, IX_COMMA | IX_SP);
    for (uint32_t i = 0; i < n_tags; i++) {
        *d++ = ',';
        d = escape_into(d, sorted_tags[i].key.p, sorted_tags[i].key.len, IX_ALL);
        *d++ = '=';
        d = escape_into(d, sorted_tags[i].value.p, sorted_tags[i].value.len, IX_ALL);
    }
    *d++ = ' ';
    d = escape_into(d, field.p, field.len, IX_ALL);
    out->len += total;
    return MK_OK;
}

/* ---- life cycle --------------------------------------------------------- */

mk_err mk_index_new(mk_index **out)
{
    mk_index *ix = calloc(1, sizeof *ix);
    if (!ix) return MK_ENOMEM;
    ix->hash = mk_hash64;
    *out = ix;
    return MK_OK;
}

void mk_index_free(mk_index *ix)
{
    if (!ix) return;
    for (uint32_t t = 0; t < ix->n_terms; t++)
        if (ix->terms[t].cap) free(ix->terms[t].u.ext);
    free(ix->terms);
    free(ix->term_slots);
    free(ix->meas);
    free(ix->ids);
    free(ix->keys);
    free(ix->id_slots);
    arena_free(&ix->arena);
    free(ix->ps.buf);
    free(ix->ps.tags);
    free(ix->last.prefix);
    free(ix->last.terms);
    free(ix);
}

mk_err mk_index_set_hash_for_testing(mk_index *ix, uint64_t (*hash)(const void *p, size_t n))
{
    if (ix->count) return MK_EINVAL;
    ix->hash = hash ? hash : mk_hash64;
    return MK_OK;
}

/*
 * Forgets every series >= count and term >= n_terms (the state before a
 * failed load): lists lose their tail entries, which are exactly those,
 * because lists only grow at the end; the hash tables are rebuilt. Arena
 * bytes of the forgotten keys stay allocated until mk_index_free.
 */
static void ix_truncate(mk_index *ix, uint32_t count, uint32_t n_terms)
{
    for (uint32_t t = 0; t < n_terms; t++) {
        ix_term *tm = &ix->terms[t];
        const uint32_t *l = term_list(tm);
        uint32_t lim = tm->kind == IX_TAGKEY ? n_terms : count;
        while (tm->n && l[tm->n - 1] >= lim) tm->n--;
    }
    for (uint32_t t = n_terms; t < ix->n_terms; t++) {
        if (ix->terms[t].cap) {
            ix->post_bytes -= (size_t)ix->terms[t].cap * sizeof(uint32_t);
            free(ix->terms[t].u.ext);
        }
    }
    while (ix->n_meas && ix->meas[ix->n_meas - 1] >= n_terms) ix->n_meas--;
    ix->n_terms = n_terms;
    ix->count = count;
    ix->last.len = 0; /* its terms may be gone */
    if (ix->term_slots) term_rebuild(ix);
    if (ix->id_slots) id_rebuild(ix);
}

/* ---- adding ------------------------------------------------------------- */

/* Reads only the field key of a key whose measurement and tags are those
 * cached in ix->last (see ix_last). */
static mk_err parse_field(mk_index *ix, const char *key, size_t len, mk_diag *diag)
{
    ix_parsed *ps = &ix->ps;
    size_t pos = ix->last.len;
    uint32_t n;
    mk_err rc = ps_reserve(ps, len - pos);
    if (rc) return rc;
    const char *why = read_part(key, len, &pos, IX_ALL, 0, ps->buf, &n);
    if (why)
        return mk_diag_set(diag, MK_EINVAL, "series key \"%.*s\": field key at byte %zu: %s",
                           (int)(len < 200 ? len : 200), key, pos, why);
    ps->field = (ix_part){0, n};
    ps->field_at = ix->last.len;
    ps->n_tags = ix->last.n_tags;
    for (uint32_t i = 0; i < ps->n_tags; i++) ps->tags[i].term = ix->last.terms[i];
    return MK_OK;
}

/* Remembers the measurement and tags of the series just added; best effort
 * (without memory the cache is simply off). */
static void remember_prefix(mk_index *ix, const char *key, uint32_t mt)
{
    ix_last *l = &ix->last;
    ix_parsed *ps = &ix->ps;
    l->len = 0;
    if (ps->field_at > l->cap) {
        char *p = realloc(l->prefix, ps->field_at);
        if (!p) return;
        l->prefix = p;
        l->cap = ps->field_at;
    }
    if (grow_array((void **)&l->terms, &l->cap_terms, ps->n_tags, sizeof *l->terms)) return;
    memcpy(l->prefix, key, ps->field_at);
    for (uint32_t i = 0; i < ps->n_tags; i++) l->terms[i] = ps->tags[i].term;
    l->n_tags = ps->n_tags;
    l->meas = mt;
    l->len = ps->field_at;
}

/* Adds key[0..len) (at most MK_INDEX_MAX_KEY_BYTES), whose id the caller
 * computed with ix->hash; see mk_index_add. */
static mk_err ix_add(mk_index *ix, const char *key, size_t len, uint64_t id, uint32_t *ord_out,
                     int *is_new_out, mk_diag *diag)
{
    mk_err rc = MK_OK;
    ix_parsed *ps = &ix->ps;
    int is_new = 0;
    uint32_t ord = IX_NONE, mt, ft;
    uint32_t found = id_lookup(ix, id);
    if (found != IX_NONE) {
        size_t olen;
        const char *old = mk_index_key_at(ix, found, &olen);
        if (olen == len && memcmp(old, key, len) == 0) {
            ord = found;
            goto done;
        }
    }
    int is_cached = ix->last.len && len > ix->last.len && memcmp(key, ix->last.prefix, ix->last.len) == 0;
    if ((rc = is_cached ? parse_field(ix, key, len, diag) : parse_key(ix, key, len, diag))) goto out;
    if (found != IX_NONE) {
        size_t olen;
        const char *old = mk_index_key_at(ix, found, &olen);
        rc = mk_diag_set(diag, MK_ECOLLISION,
                         "series id %016llx: key \"%.*s\" collides with key \"%.*s\" (ordinal %u)",
                         (unsigned long long)id, (int)(len < 200 ? len : 200), key,
                         (int)(olen < 200 ? olen : 200), old, found);
        goto out;
    }
    /* Phase 1: terms. A term made here survives a later failure with an
     * empty list, which is harmless. */
    const uint8_t *b = ps->buf;
    if (is_cached) {
        mt = ix->last.meas;
    } else {
        if ((rc = term_get(ix, IX_MEAS, IX_NONE, b + ps->meas.off, ps->meas.len, &mt))) goto oom;
        for (uint32_t i = 0; i < ps->n_tags; i++) {
            uint32_t kt;
            ix_ptag *pt = &ps->tags[i];
            if ((rc = term_get(ix, IX_TAGKEY, mt, b + pt->key.off, pt->key.len, &kt))) goto oom;
            if ((rc = term_get(ix, IX_TAGVAL, kt, b + pt->value.off, pt->value.len, &pt->term)))
                goto oom;
        }
    }
    if ((rc = term_get(ix, IX_FIELD, mt, b + ps->field.off, ps->field.len, &ft))) goto oom;
    /* Phase 2: room for everything, so that phase 3 cannot fail. */
    if ((rc = series_reserve(ix, (uint64_t)ix->count + 1))) goto oom;
    if ((rc = list_reserve(ix, &ix->terms[mt], 1))) goto oom;
    if ((rc = list_reserve(ix, &ix->terms[ft], 1))) goto oom;
    for (uint32_t i = 0; i < ps->n_tags; i++)
        if ((rc = list_reserve(ix, &ix->terms[ps->tags[i].term], 1))) goto oom;
    uint8_t *kp = arena_alloc(&ix->arena, len + 3);
    if (!kp) { rc = MK_ENOMEM; goto oom; }
    /* Phase 3: link. */
    mk_put_u16(kp, (uint16_t)len);
    memcpy(kp + 2, key, len);
    kp[len + 2] = 0;
    ord = ix->count++;
    ix->ids[ord] = id;
    ix->keys[ord] = (const char *)kp + 2;
    id_insert(ix, ord);
    ix_term *t = &ix->terms[mt];
    term_list_mut(t)[t->n++] = ord;
    t = &ix->terms[ft];
    term_list_mut(t)[t->n++] = ord;
    for (uint32_t i = 0; i < ps->n_tags; i++) {
        t = &ix->terms[ps->tags[i].term];
        term_list_mut(t)[t->n++] = ord;
    }
    if (!is_cached) remember_prefix(ix, key, mt);
    is_new = 1;
done:
    *ord_out = ord;
    *is_new_out = is_new;
    goto out;
oom:
    rc = mk_diag_set(diag, rc, "series key \"%.*s\": %s", (int)(len < 200 ? len : 200), key,
                     rc == MK_ELIMIT ? "index is full" : "out of memory");
out:
    return rc;
}

mk_err mk_index_add(mk_index *ix, const char *key, size_t len, uint64_t *id, uint32_t *ordinal,
                    int *is_new, mk_diag *diag)
{
    uint32_t o;
    int nw;
    if (!ix || (!key && len)) return mk_diag_set(diag, MK_EINVAL, "mk_index_add: NULL argument");
    if (len > MK_INDEX_MAX_KEY_BYTES)
        return mk_diag_set(diag, MK_ELIMIT, "series key of %zu bytes is longer than %u", len,
                           MK_INDEX_MAX_KEY_BYTES);
    if (!key) key = "";
    uint64_t i = ix->hash(key, len);
    mk_err rc = ix_add(ix, key, len, i, &o, &nw, diag);
    if (rc == MK_OK) {
        if (id) *id = i;
        if (ordinal) *ordinal = o;
        if (is_new) *is_new = nw;
    }
    return rc;
}

/* ---- lookups ------------------------------------------------------------ */

mk_err mk_index_ordinal(const mk_index *ix, uint64_t id, uint32_t *ordinal)
{
    uint32_t o = id_lookup(ix, id);
    if (o == IX_NONE) return MK_ENOTFOUND;
    *ordinal = o;
    return MK_OK;
}

uint64_t mk_index_id_at(const mk_index *ix, uint32_t ordinal)
{
    return ordinal < ix->count ? ix->ids[ordinal] : 0;
}

const char *mk_index_key_at(const mk_index *ix, uint32_t ordinal, size_t *len)
{
    if (ordinal >= ix->count) {
        if (len) *len = 0;
        return NULL;
    }
    const char *k = ix->keys[ordinal];
    if (len) *len = mk_get_u16((const uint8_t *)k - 2);
    return k;
}

uint32_t mk_index_count(const mk_index *ix) { return ix->count; }

size_t mk_index_bytes(const mk_index *ix)
{
    return sizeof *ix + (size_t)ix->cap * (sizeof *ix->ids + sizeof *ix->keys) +
           (ix->id_slots ? ((size_t)ix->id_mask + 1) * sizeof *ix->id_slots : 0) +
           (size_t)ix->cap_terms * sizeof(ix_term) +
           (ix->term_slots ? ((size_t)ix->term_mask + 1) * sizeof(uint32_t) : 0) +
           (size_t)ix->cap_meas * sizeof(uint32_t) + ix->arena.bytes +
           (size_t)ix->arena.cap_chunks * sizeof(uint8_t *) + ix->post_bytes + ix->ps.cap_buf +
           (size_t)ix->ps.cap_tags * sizeof(ix_ptag) + ix->last.cap +
           (size_t)ix->last.cap_terms * sizeof(uint32_t);
}

/* ---- find --------------------------------------------------------------- */

/* A sorted list of ordinals, borrowed from a term or owned (then freed). */
typedef struct ix_list {
    const uint32_t *p;
    uint32_t n;
    uint32_t *owned;
} ix_list;

/* Growable ordinal vector for results. */
typedef struct ix_vec {
    uint32_t *p;
    size_t n, cap;
} ix_vec;

static mk_err vec_reserve(ix_vec *v, size_t extra)
{
    if (v->cap - v->n >= extra) return MK_OK;
    size_t nc = v->cap ? v->cap : 16;
    while (nc - v->n < extra) nc *= 2;
    uint32_t *p = realloc(v->p, nc * sizeof *p);
    if (!p) return MK_ENOMEM;
    v->p = p;
    v->cap = nc;
    return MK_OK;
}

/* First index i in [lo, n) with a[i] >= x (n if none): exponential steps
 * from lo, then binary search, so walking a long list in step with a short
 * one costs O(short * log(long / short)). */
static size_t gallop(const uint32_t *a, size_t lo, size_t n, uint32_t x)
{
    size_t step = 1, hi = lo;
    while (hi < n && a[hi] < x) {
        lo = hi + 1;
        hi = lo + step;
        step *= 2;
    }
    if (hi > n) hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The series that have tag key term kt (of one measurement), whatever the
 * value: the union of its value lists, which are disjoint (a series has one
 * value per key), so concatenating and sorting is enough. For the rare
 * `k = ''` / `k != ''` matchers only. */
static mk_err key_union(const mk_index *ix, uint32_t kt, ix_list *out)
{
    const ix_term *k = &ix->terms[kt];
    const uint32_t *vals = term_list(k);
    size_t total = 0;
    for (uint32_t i = 0; i < k->n; i++) total += ix->terms[vals[i]].n;
    uint32_t *p = malloc((total ? total : 1) * sizeof *p);
    if (!p) return MK_ENOMEM;
    size_t n = 0;
    for (uint32_t i = 0; i < k->n; i++) {
        const ix_term *v = &ix->terms[vals[i]];
        memcpy(p + n, term_list(v), (size_t)v->n * sizeof *p);
        n += v->n;
    }
    qsort(p, n, sizeof *p, cmp_u32);
    *out = (ix_list){p, (uint32_t)n, p};
    return MK_OK;
}

/* Appends to res the ordinals of measurement term mt that satisfy the
 * matchers and field (ascending). pos has room for n_m + 2 lists, neg for
 * n_m; owned lists are freed before returning. */
static mk_err find_in_meas(const mk_index *ix, uint32_t mt, const mk_matcher *m, size_t n_m,
                           const char *field, ix_list *pos, ix_list *neg, ix_vec *res)
{
    mk_err rc = MK_OK;
    size_t n_pos = 0, n_neg = 0;
    if (field) {
        uint32_t ft = term_find(ix, IX_FIELD, mt, field, strlen(field));
        if (ft == IX_NONE) goto out;
        pos[n_pos++] = (ix_list){term_list(&ix->terms[ft]), ix->terms[ft].n, NULL};
    }
    for (size_t i = 0; i < n_m; i++) {
        uint32_t kt = term_find(ix, IX_TAGKEY, mt, m[i].key, strlen(m[i].key));
        size_t vlen = strlen(m[i].value);
        if (vlen) {
            uint32_t vt = kt == IX_NONE ? IX_NONE : term_find(ix, IX_TAGVAL, kt, m[i].value, vlen);
            ix_list l = {NULL, 0, NULL};
            if (vt != IX_NONE) l = (ix_list){term_list(&ix->terms[vt]), ix->terms[vt].n, NULL};
            if (!m[i].is_negated) {
                if (!l.n) goto out;
                pos[n_pos++] = l;
            } else if (l.n) {
                neg[n_neg++] = l;
            }
        } else if (!m[i].is_negated) { /* key = '': the tag is absent */
            if (kt != IX_NONE) {
                if ((rc = key_union(ix, kt, &neg[n_neg]))) goto out;
                n_neg++;
            }
        } else { /* key != '': the tag is present */
            if (kt == IX_NONE) goto out;
            if ((rc = key_union(ix, kt, &pos[n_pos]))) goto out;
            n_pos++;
            if (!pos[n_pos - 1].n) goto out;
        }
    }
    if (!n_pos) pos[n_pos++] = (ix_list){term_list(&ix->terms[mt]), ix->terms[mt].n, NULL};
    /* Shortest first: it bounds the result and every later step. */
    for (size_t i = 1; i < n_pos; i++)
        for (size_t j = i; j > 0 && pos[j].n < pos[j - 1].n; j--) {
            ix_list t = pos[j];
            pos[j] = pos[j - 1];
            pos[j - 1] = t;
        }
    if (!pos[0].n) goto out; /* possible: a term left empty by a failed add */
    if ((rc = vec_reserve(res, pos[0].n))) goto out;
    uint32_t *r = res->p + res->n;
    size_t n = pos[0].n;
    memcpy(r, pos[0].p, n * sizeof *r);
    for (size_t j = 1; j < n_pos && n; j++) {
        size_t at = 0, w = 0;
        for (size_t i = 0; i < n && at < pos[j].n; i++) {
            at = gallop(pos[j].p, at, pos[j].n, r[i]);
            if (at < pos[j].n && pos[j].p[at] == r[i]) r[w++] = r[i];
        }
        n = w;
    }
    for (size_t j = 0; j < n_neg && n; j++) {
        size_t at = 0, w = 0;
        for (size_t i = 0; i < n; i++) {
            at = gallop(neg[j].p, at, neg[j].n, r[i]);
            if (at >= neg[j].n || neg[j].p[at] != r[i]) r[w++] = r[i];
        }
        n = w;
    }
    res->n += n;
out:
    for (size_t i = 0; i < n_pos; i++) free(pos[i].owned);
    for (size_t i = 0; i < n_neg; i++) free(neg[i].owned);
    return rc;
}

mk_err mk_index_find(const mk_index *ix, const char *measurement, const mk_matcher *m, size_t n_m,
                     const char *field, uint32_t **out, size_t *n, mk_diag *diag)
{
    mk_err rc = MK_OK;
    ix_vec res = {NULL, 0, 0};
    ix_list *lists = NULL;
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < n_m; i++)
        if (!m[i].key || !m[i].value) {
            rc = mk_diag_set(diag, MK_EINVAL, "matcher %zu has a NULL key or value", i);
            goto out;
        }
    if (!measurement && !n_m && !field) { /* everything */
        if ((rc = vec_reserve(&res, ix->count))) goto oom;
        for (uint32_t o = 0; o < ix->count; o++) res.p[o] = o;
        res.n = ix->count;
        goto out;
    }
    lists = malloc((2 * n_m + 2) * sizeof *lists);
    if (!lists) { rc = MK_ENOMEM; goto oom; }
    if (measurement) {
        uint32_t mt = term_find(ix, IX_MEAS, IX_NONE, measurement, strlen(measurement));
        if (mt != IX_NONE && (rc = find_in_meas(ix, mt, m, n_m, field, lists, lists + n_m + 2, &res)))
            goto oom;
    } else {
        int is_sorted = 1;
        for (uint32_t i = 0; i < ix->n_meas; i++) {
            size_t before = res.n;
            if ((rc = find_in_meas(ix, ix->meas[i], m, n_m, field, lists, lists + n_m + 2, &res)))
                goto oom;
            if (before && res.n > before && res.p[before] < res.p[before - 1]) is_sorted = 0;
        }
        if (!is_sorted) qsort(res.p, res.n, sizeof *res.p, cmp_u32);
    }
    goto out;
oom:
    rc = mk_diag_set(diag, rc, "mk_index_find: out of memory");
out:
    free(lists);
    if (rc || !res.n) {
        free(res.p);
    } else {
        *out = res.p;
        *n = res.n;
    }
    return rc;
}

/* ---- listings ----------------------------------------------------------- */

static int cmp_term_name(const void *a, const void *b)
{
    const ix_term *x = *(const ix_term *const *)a, *y = *(const ix_term *const *)b;
    return bytes_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* Calls cb with the distinct names of terms[0..n) in ascending order. */
static mk_err walk_sorted(const ix_term **terms, size_t n, int (*cb)(void *, const char *), void *ctx)
{
    qsort(terms, n, sizeof *terms, cmp_term_name);
    for (size_t i = 0; i < n; i++) {
        if (i && cmp_term_name(&terms[i - 1], &terms[i]) == 0) continue;
        if (cb(ctx, terms[i]->name)) break;
    }
    return MK_OK;
}

mk_err mk_index_measurements(const mk_index *ix, int (*cb)(void *ctx, const char *name), void *ctx)
{
    const ix_term **v = malloc((ix->n_meas ? ix->n_meas : 1) * sizeof *v);
    if (!v) return MK_ENOMEM;
    size_t n = 0;
    for (uint32_t i = 0; i < ix->n_meas; i++)
        if (ix->terms[ix->meas[i]].n) v[n++] = &ix->terms[ix->meas[i]];
    mk_err rc = walk_sorted(v, n, cb, ctx);
    free(v);
    return rc;
}

mk_err mk_index_tag_values(const mk_index *ix, const char *measurement, const char *key,
                           int (*cb)(void *ctx, const char *value), void *ctx)
{
    mk_err rc = MK_OK;
    const ix_term **v = NULL;
    size_t n = 0, total = 0;
    uint32_t kts_one, *kts = &kts_one, n_kt = 0;
    if (!key) return MK_EINVAL;
    if (measurement) {
        uint32_t mt = term_find(ix, IX_MEAS, IX_NONE, measurement, strlen(measurement));
        uint32_t kt = mt == IX_NONE ? IX_NONE : term_find(ix, IX_TAGKEY, mt, key, strlen(key));
        if (kt != IX_NONE) {
            kts_one = kt;
            n_kt = 1;
        }
    } else {
        kts = malloc((ix->n_meas ? ix->n_meas : 1) * sizeof *kts);
        if (!kts) return MK_ENOMEM;
        for (uint32_t i = 0; i < ix->n_meas; i++) {
            uint32_t kt = term_find(ix, IX_TAGKEY, ix->meas[i], key, strlen(key));
            if (kt != IX_NONE) kts[n_kt++] = kt;
        }
    }
    for (uint32_t i = 0; i < n_kt; i++) total += ix->terms[kts[i]].n;
    v = malloc((total ? total : 1) * sizeof *v);
    if (!v) { rc = MK_ENOMEM; goto out; }
    for (uint32_t i = 0; i < n_kt; i++) {
        const ix_term *k = &ix->terms[kts[i]];
        const uint32_t *vals = term_list(k);
        for (uint32_t j = 0; j < k->n; j++)
            if (ix->terms[vals[j]].n) v[n++] = &ix->terms[vals[j]];
    }
    rc = walk_sorted(v, n, cb, ctx);
out:
    free(v);
    if (kts != &kts_one) free(kts);
    return rc;
}

/* ---- persistence -------------------------------------------------------- */

mk_err mk_index_encode(const mk_index *ix, mk_buf *out)
{
    size_t start = out->len;
    mk_err rc = mk_buf_reserve(out, IX_HDR_BYTES);
    if (rc) goto out;
    uint8_t *h = out->data + out->len;
    mk_put_u32(h, MK_INDEX_MAGIC);
    mk_put_u16(h + 4, MK_INDEX_VERSION);
    mk_put_u16(h + 6, 0);
    mk_put_u32(h + 8, ix->count);
    out->len += IX_HDR_BYTES; /* body_len is filled in below */
    const char *prev = "";
    size_t prev_len = 0;
    for (uint32_t o = 0; o < ix->count; o++) {
        size_t len, shared = 0;
        const char *k = mk_index_key_at(ix, o, &len);
        while (shared < len && shared < prev_len && k[shared] == prev[shared]) shared++;
        if ((rc = mk_buf_reserve(out, 20 + len - shared))) goto out;
        uint8_t *d = out->data + out->len;
        d += mk_put_uvarint(d, shared);
        d += mk_put_uvarint(d, len - shared);
        memcpy(d, k + shared, len - shared);
        out->len = (size_t)(d - out->data) + len - shared;
        prev = k;
        prev_len = len;
    }
    mk_put_u64(out->data + start + 12, out->len - start - IX_HDR_BYTES);
    if ((rc = mk_buf_reserve(out, IX_SUM_BYTES))) goto out;
    mk_put_u64(out->data + out->len, mk_hash64(out->data + start, out->len - start));
    out->len += IX_SUM_BYTES;
out:
    if (rc) out->len = start;
    return rc;
}

mk_err mk_index_save(const mk_index *ix, mk_env *env, const char *dir, mk_diag *diag)
{
    mk_buf b = {0};
    mk_err rc = mk_index_encode(ix, &b);
    if (rc) {
        rc = mk_diag_set(diag, rc, "%s/%s: out of memory encoding %u series", dir, IX_FILE,
                         ix->count);
        goto out;
    }
    rc = mk_env_write_file_atomic(env, dir, IX_FILE, b.data, b.len, diag);
out:
    mk_buf_free(&b);
    return rc;
}

/* Decodes the key-stream entry at p[*pos..n) against the previous key
 * prev[0..prev_len) into key, *len. Returns NULL or what is wrong. */
static const char *decode_entry(const uint8_t *p, size_t n, size_t *pos, const uint8_t *prev,
                                size_t prev_len, uint8_t *key, size_t *len)
{
    uint64_t shared, suffix;
    size_t at = *pos, u;
    if (!(u = mk_get_uvarint(p + at, n - at, &shared))) return "bad shared-prefix varint";
    at += u;
    if (!(u = mk_get_uvarint(p + at, n - at, &suffix))) return "bad suffix-length varint";
    at += u;
    if (shared > prev_len) return "shared prefix longer than the previous key";
    if (suffix > n - at || shared + suffix > MK_INDEX_MAX_KEY_BYTES)
        return "key runs past the end of the body or the limit";
    /* A key is at most the previous one plus its suffix, so no key is
     * longer than all suffixes so far, hence than the body: load_keys sizes
     * its key buffers by that. */
    if (shared && key != prev) memcpy(key, prev, shared);
    memcpy(key + shared, p + at, suffix);
    *pos = at + suffix;
    *len = shared + suffix;
    return NULL;
}

/*
 * Adds the series of a checked file body p[0..n) (file offset base) to ix,
 * whose tables already have room for them all. Stops at the first bad key;
 * the caller rolls back. Entry i+1 is decoded and its id slot fetched into
 * the cache before entry i is added: the slot is a random access into a
 * table larger than the cache, and this hides most of it behind the work
 * of adding i.
 */
static mk_err load_keys(mk_index *ix, const uint8_t *p, size_t n, size_t base, uint32_t count,
                        uint32_t old_count, const char *name, mk_diag *diag)
{
    mk_err rc = MK_OK;
    /* A key is made of suffix bytes only, so none is longer than the body. */
    size_t max_key = n < MK_INDEX_MAX_KEY_BYTES ? n : MK_INDEX_MAX_KEY_BYTES;
    uint8_t *buf = malloc(2 * max_key + 1);
    uint8_t *key[2];
    size_t pos = 0, len[2] = {0, 0}, at[2] = {0, 0};
    uint64_t id[2] = {0, 0};
    const char *why = NULL;
    if (!buf) return mk_diag_set(diag, MK_ENOMEM, "%s: out of memory", name);
    key[0] = buf;
    key[1] = buf + max_key;
    if (count && !(why = decode_entry(p, n, &pos, key[1], 0, key[0], &len[0])))
        id[0] = ix->hash(key[0], len[0]);
    for (uint32_t i = 0; i < count; i++) {
        int c = i & 1, nx = c ^ 1;
        if (why) {
            rc = MK_CORRUPT(diag, name, base + at[c], why);
            goto out;
        }
        if (i + 1 < count) {
            at[nx] = pos;
            why = decode_entry(p, n, &pos, key[c], len[c], key[nx], &len[nx]);
            if (!why) {
                id[nx] = ix->hash(key[nx], len[nx]);
                __builtin_prefetch(&ix->id_slots[(uint32_t)id[nx] & ix->id_mask]);
            }
        }
        uint32_t ord;
        int is_new;
        mk_diag d2 = {0, {0}};
        rc = ix_add(ix, (const char *)key[c], len[c], id[c], &ord, &is_new, &d2);
        if (rc == MK_EINVAL) {
            char msg[600];
            snprintf(msg, sizeof msg, "key %u: %s", i, d2.msg);
            rc = MK_CORRUPT(diag, name, base + at[c], msg);
            goto out;
        }
        if (rc) {
            rc = mk_diag_set(diag, rc, "%s: key %u at offset %zu: %s", name, i, base + at[c], d2.msg);
            goto out;
        }
        if (!is_new && ord >= old_count) {
            rc = MK_CORRUPT(diag, name, base + at[c], "duplicate key");
            goto out;
        }
    }
    if (pos != n) rc = MK_CORRUPT(diag, name, base + pos, "bytes after the last key");
out:
    free(buf);
    return rc;
}

mk_err mk_index_load_buf(mk_index *ix, const uint8_t *data, size_t n, const char *name,
                         mk_diag *diag)
{
    mk_err rc = MK_OK;
    uint32_t old_count = ix->count, old_terms = ix->n_terms;
    if (!name) name = IX_FILE;
    if (n < 4) { rc = MK_CORRUPT(diag, name, n, "file too short for a magic number"); goto out; }
    if (mk_get_u32(data) != MK_INDEX_MAGIC) {
        rc = mk_diag_set(diag, MK_ENOTOURS, "%s: not a Meerkat series index (magic %08x)", name,
                         mk_get_u32(data));
        goto out;
    }
    if (n < 6) { rc = MK_CORRUPT(diag, name, n, "file too short for a version"); goto out; }
    uint16_t version = mk_get_u16(data + 4);
    if (version > MK_INDEX_VERSION) {
        rc = mk_diag_set(diag, MK_ETOONEW, "%s: series index format version %u, this build reads up to %u",
                         name, version, MK_INDEX_VERSION);
        goto out;
    }
    if (version == 0) { rc = MK_CORRUPT(diag, name, 4, "format version 0"); goto out; }
    if (n < IX_HDR_BYTES + IX_SUM_BYTES) { rc = MK_CORRUPT(diag, name, n, "file too short for a header"); goto out; }
    uint64_t body_len = mk_get_u64(data + 12);
    if (body_len != n - IX_HDR_BYTES - IX_SUM_BYTES) {
        char why[128];
        snprintf(why, sizeof why, "header says %llu body bytes, file holds %zu (truncated?)",
                 (unsigned long long)body_len, n - IX_HDR_BYTES - IX_SUM_BYTES);
        rc = MK_CORRUPT(diag, name, 12, why);
        goto out;
    }
    if (mk_hash64(data, n - IX_SUM_BYTES) != mk_get_u64(data + n - IX_SUM_BYTES)) {
        rc = MK_CORRUPT(diag, name, n - IX_SUM_BYTES, "checksum mismatch");
        goto out;
    }
    if (mk_get_u16(data + 6) != 0) { rc = MK_CORRUPT(diag, name, 6, "unknown flags"); goto out; }
    uint32_t count = mk_get_u32(data + 8);
    /* Every key takes at least two bytes (two varints); checking this first
     * bounds what the reservation below may allocate. */
    if (count > body_len / 2) { rc = MK_CORRUPT(diag, name, 8, "series count larger than the body"); goto out; }
    if ((rc = series_reserve(ix, (uint64_t)old_count + count))) {
        rc = mk_diag_set(diag, rc, "%s: no room for %u more series", name, count);
        goto out;
    }
    rc = load_keys(ix, data + IX_HDR_BYTES, (size_t)body_len, IX_HDR_BYTES, count, old_count, name, diag);
    if (rc) ix_truncate(ix, old_count, old_terms);
out:
    return rc;
}

mk_err mk_index_load(mk_index *ix, mk_env *env, const char *dir, mk_diag *diag)
{
    char path[4096];
    uint8_t *data = NULL;
    size_t n = 0;
    mk_err rc;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, IX_FILE) >= sizeof path) {
        rc = mk_diag_set(diag, MK_EINVAL, "%s: directory name too long", dir);
        goto out;
    }
    if ((rc = mk_env_read_file(env, path, &data, &n, diag))) goto out;
    rc = mk_index_load_buf(ix, data, n, path, diag);
out:
    free(data);
    return rc;
}
