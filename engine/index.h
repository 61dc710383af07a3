/*
 * engine/index.h — the series index.
 *
 * Maps a canonical series key to its id (XXH3-64 of the key) and to a dense
 * ordinal (0, 1, 2... in order of creation, so the db keeps per-series state
 * in plain arrays), and keeps tag postings: for each (measurement), each
 * (tag key, tag value) and each field name, the sorted list of ordinals that
 * have it, so `service='api'` is answered without scanning every series.
 *
 * Canonical key: line protocol's `measurement,k1=v1,k2=v2 field` with tags
 * sorted bytewise by key and line-protocol escaping (measurement: `,` ` `;
 * tag keys/values and field key: `,` `=` ` `; each as backslash + char).
 *
 * Persistence: mk_index_save writes every key in ordinal order to
 * dir/index.mki atomically (layout in FORMAT.md, "Series index");
 * mk_index_load rebuilds ids, ordinals and postings from it.
 *
 * Thread rules: not thread-safe; the db's lock guards it. Keys are never
 * removed, so pointers returned by mk_index_key stay valid until free.
 */
#ifndef MK_INDEX_H
#define MK_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "lp.h"
#include "meerkat/db.h"
#include "util.h"

typedef struct mk_index mk_index;

/* Longest canonical key accepted, in bytes (InfluxDB's limit too); longer
 * keys are MK_ELIMIT. */
#define MK_INDEX_MAX_KEY_BYTES 65535u

mk_err mk_index_new(mk_index **out);
void mk_index_free(mk_index *ix); /* accepts NULL */

/* Appends the canonical key of (measurement, tags sorted by key, field), all
 * unescaped, to out. MK_EINVAL (out untouched) if a part is empty, holds a
 * NUL byte or ends with a backslash (line protocol cannot write that), or if
 * tag keys are not strictly ascending; MK_ELIMIT if the key would exceed
 * MK_INDEX_MAX_KEY_BYTES. */
mk_err mk_index_key_build(mk_buf *out, mk_lp_str measurement, const mk_lp_tag *sorted_tags,
                          uint32_t n_tags, mk_lp_str field);

/*
 * Adds the series with canonical key[0..len) unless present. *id = its hash,
 * *ordinal its dense ordinal, *is_new whether it was added. MK_ECOLLISION
 * (diag names both keys) if another key has the same hash; MK_EINVAL if the
 * key does not parse as a canonical key.
 */
mk_err mk_index_add(mk_index *ix, const char *key, size_t len, uint64_t *id, uint32_t *ordinal,
                    int *is_new, mk_diag *diag);

/* Ordinal of id, or MK_ENOTFOUND. */
mk_err mk_index_ordinal(const mk_index *ix, uint64_t id, uint32_t *ordinal);

/* Id and key of an ordinal (< count); the key is NUL-terminated, borrowed. */
uint64_t mk_index_id_at(const mk_index *ix, uint32_t ordinal);
const char *mk_index_key_at(const mk_index *ix, uint32_t ordinal, size_t *len);

uint32_t mk_index_count(const mk_index *ix);

/*
 * Ordinals of the series of `measurement` (NULL = any) matching every
 * matcher and with field `field` (NULL = any), ascending; *out malloc'ed
 * (caller frees; NULL when *n == 0). Uses postings intersection; negated
 * matchers subtract postings. As in InfluxQL, a matcher value "" stands for
 * an absent tag: `k = ''` matches series without tag k, `k != ''` those
 * with it. MK_EINVAL if a matcher's key or value is NULL.
 */
mk_err mk_index_find(const mk_index *ix, const char *measurement, const mk_matcher *m, size_t n_m,
                     const char *field, uint32_t **out, size_t *n, mk_diag *diag);

/* Distinct measurement names, and tag values of one tag key, in ascending
 * order (for SHOW statements later). Each callback's strings are borrowed for
 * the call; returning non-zero stops the walk. */
mk_err mk_index_measurements(const mk_index *ix, int (*cb)(void *ctx, const char *name), void *ctx);
mk_err mk_index_tag_values(const mk_index *ix, const char *measurement, const char *key,
                           int (*cb)(void *ctx, const char *value), void *ctx);

/* Heap bytes held (for memory figures). */
size_t mk_index_bytes(const mk_index *ix);

/* Persist / recover (see above). Loading into a non-empty index adds the
 * file's series in order (a key already present keeps its ordinal); a
 * damaged file is MK_ECORRUPT naming the offset, a wrong magic MK_ENOTOURS,
 * a newer version MK_ETOONEW, a missing file MK_ENOTFOUND. A failed load
 * leaves the series, ids, ordinals and postings of ix as they were. */
mk_err mk_index_save(const mk_index *ix, mk_env *env, const char *dir, mk_diag *diag);
mk_err mk_index_load(mk_index *ix, mk_env *env, const char *dir, mk_diag *diag);

/* The bytes mk_index_save writes, appended to out (caller frees out). */
mk_err mk_index_encode(const mk_index *ix, mk_buf *out);

/* mk_index_load from an index file's bytes data[0..n) (borrowed for the
 * call); name is the file name used in diagnostics. */
mk_err mk_index_load_buf(mk_index *ix, const uint8_t *data, size_t n, const char *name,
                         mk_diag *diag);

/* Test hook: replaces the id hash of an empty index (NULL restores
 * mk_hash64) so tests can force MK_ECOLLISION. MK_EINVAL if ix holds series.
 * Per index, no global state; never used outside tests and fuzz targets. */
mk_err mk_index_set_hash_for_testing(mk_index *ix, uint64_t (*hash)(const void *p, size_t n));

#endif
