/*
 * tests/fuzz/fuzz_server_alerts.c — libFuzzer target for server/alertq.c:
 * the times, silence bodies and incident filters of the alert APIs. The
 * first byte picks the parser. Checks: a time that parses prints and parses
 * back to the same millisecond; a silence that parses is printed, read back
 * as stored and printed again identically; a filter is accepted only with a
 * limit in range and one label pair per label.K argument or labels= pair.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alertq.h"

#define CHECK(c)                                                                              \
    do {                                                                                      \
        if (!(c)) {                                                                           \
            fprintf(stderr, "fuzz_server_alerts: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

#define NOW_MS 1764633600000LL /* 2025-12-02T00:00:00Z */

static void fuzz_time(const char *s)
{
    int64_t ms;
    if (mk_alertq_parse_time(s, &ms) != 0) return;
    if (ms <= 0 || ms >= 253402300800000LL) return; /* printable as YYYY */
    json_t *j = mk_alertq_time_json(ms);
    CHECK(json_is_string(j));
    int64_t back;
    CHECK(mk_alertq_parse_time(json_string_value(j), &back) == 0);
    CHECK(back == ms);
    json_decref(j);
}

static void fuzz_silence(const char *s, size_t n, int is_stored)
{
    json_error_t je;
    json_t *o = json_loadb(s, n, 0, &je);
    if (!o) return;
    mk_alertq_silence sil;
    char err[400];
    if (mk_alertq_silence_from_json(o, is_stored, NOW_MS, &sil, err, sizeof err) != 0) {
        CHECK(err[0] != '\0');
        json_decref(o);
        return;
    }
    if (!is_stored) sil.id = 7;
    CHECK(sil.n_m >= 1 && sil.ends_ms > sil.starts_ms);
    mk_label l[2] = {{"service", "api"}, {"env", "dev"}};
    int m = mk_alertq_silence_matches(&sil, "rule-x", l, 2);
    CHECK(m == 0 || m == 1);
    if (sil.starts_ms > 0 && sil.ends_ms < 253402300800000LL && sil.created_ms > 0) {
        json_t *j1 = mk_alertq_silence_json(&sil, NOW_MS);
        mk_alertq_silence again;
        CHECK(mk_alertq_silence_from_json(j1, 1, NOW_MS, &again, err, sizeof err) == 0);
        json_t *j2 = mk_alertq_silence_json(&again, NOW_MS);
        char *t1 = json_dumps(j1, JSON_SORT_KEYS), *t2 = json_dumps(j2, JSON_SORT_KEYS);
        CHECK(t1 && t2 && strcmp(t1, t2) == 0);
        CHECK(mk_alertq_silence_matches(&again, "rule-x", l, 2) == m);
        free(t1);
        free(t2);
        json_decref(j1);
        json_decref(j2);
        mk_alertq_silence_clear(&again);
    }
    mk_alertq_silence_clear(&sil);
    json_decref(o);
}

/* "k=v&k2=v2..." split in place into args. */
static void fuzz_filter(char *s)
{
    mk_alerts_arg args[32];
    size_t n = 0, expect_pairs = 0;
    int is_bad_labels = 0;
    for (char *p = s; p && n < 32;) {
        char *amp = strchr(p, '&');
        if (amp) *amp = 0;
        char *eq = strchr(p, '=');
        if (eq) {
            *eq = 0;
            args[n].key = p;
            args[n].val = eq + 1;
            if (strncmp(p, "label.", 6) == 0 && p[6]) expect_pairs++;
            if (strcmp(p, "labels") == 0)
                for (const char *q = eq + 1; *q;) {
                    size_t k = strcspn(q, ",");
                    const char *e = memchr(q, '=', k);
                    if (!e || e == q) is_bad_labels = 1;
                    expect_pairs++;
                    q += k + (q[k] == ',');
                }
            n++;
        }
        p = amp ? amp + 1 : NULL;
    }
    mk_alertq_filter f;
    char err[300];
    int rc = mk_alertq_filter_parse(args, n, &f, err, sizeof err);
    CHECK(rc == 0 || rc == -1 || rc == -2);
    if (rc == 0) {
        CHECK(!is_bad_labels);
        CHECK(f.f.limit >= 1 && f.f.limit <= MK_ALERTQ_MAX_LIMIT);
        CHECK(f.n_match == expect_pairs && f.f.n_match == f.n_match);
        CHECK((f.f.state_mask & ~((1u << MK_INC_PENDING) | (1u << MK_INC_FIRING) | (1u << MK_INC_RESOLVED))) == 0);
    }
    if (rc == -1) CHECK(err[0] != '\0');
    mk_alertq_filter_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) return 0;
    char *s = malloc(size);
    if (!s) return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    switch (data[0] % 4) {
    case 0: fuzz_time(s); break;
    case 1: fuzz_silence(s, size - 1, 0); break;
    case 2: fuzz_silence(s, size - 1, 1); break;
    default: fuzz_filter(s); break;
    }
    free(s);
    return 0;
}
