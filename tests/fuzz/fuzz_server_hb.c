/*
 * tests/fuzz/fuzz_server_hb.c — libFuzzer target for server/hb.c: the
 * heartbeat URL router, Uptime Kuma's parameters and Kener's JSON body.
 * The first byte picks the part. Checks: a routed token is non-empty, at
 * most MK_HB_TOKEN_MAX characters of the token alphabet and a prefix of the
 * path's segment; Healthchecks exit statuses lie in 0..255; a parsed Kener
 * body has a known status, a finite latency and a timestamp on a minute
 * within the accepted window; errors leave a message.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb.h"

#define CHECK(c)                                                                    \
    do {                                                                            \
        if (!(c)) {                                                                 \
            fprintf(stderr, "fuzz_server_hb: check failed: %s (%s:%d)\n", #c, __FILE__, \
                    __LINE__);                                                      \
            abort();                                                                \
        }                                                                           \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    int mode = data[0] % 3;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char *z = malloc(n + 1);
    memcpy(z, s, n);
    z[n] = '\0';
    if (mode == 0) {
        mk_hb_route r;
        int rc = mk_hb_route_parse(z, &r);
        CHECK(rc >= -1 && rc <= 1);
        if (rc == 1 && r.kind != MK_HB_KENER) {
            size_t tl = strlen(r.token);
            CHECK(tl > 0 && tl <= MK_HB_TOKEN_MAX);
            CHECK(strstr(z, r.token) != NULL);
            for (size_t i = 0; i < tl; i++) CHECK(strchr("-_.", r.token[i]) || (r.token[i] >= '0' && r.token[i] <= '9') ||
                                                  (r.token[i] | 32) >= 'a' && (r.token[i] | 32) <= 'z');
            CHECK(r.exit_status >= 0 && r.exit_status <= 255);
        }
    } else if (mode == 1) {
        char *amp = strchr(z, '&');
        if (amp) *amp = '\0';
        double st, ping;
        char err[160] = "";
        if (mk_hb_kuma_params(z, amp ? amp + 1 : NULL, &st, &ping, err, sizeof err) == 0)
            CHECK((st == 0 || st == 1) && (isnan(ping) || (ping >= 0 && ping <= 1e11)));
        else
            CHECK(err[0] != '\0');
    } else {
        const int64_t now = 1764547230;
        mk_hb_kener k;
        char err[256] = "";
        if (mk_hb_kener_parse(s, n, now, &k, err, sizeof err) == 0) {
            CHECK(k.status == 0 || k.status == 0.5 || k.status == 1);
            CHECK(isfinite(k.latency));
            CHECK(k.ts_s % 60 == 0 && k.ts_s <= now && k.ts_s >= now - 90 * 86400);
            CHECK(k.tag[0] != '\0');
        } else {
            CHECK(err[0] != '\0');
        }
    }
    free(z);
    return 0;
}
