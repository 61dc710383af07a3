/*
 * tests/fuzz/fuzz_notify_config.c — the channels:/routes:/inhibit_rules:
 * parser (notify/ncfg.c) on arbitrary YAML. Checks: no crash or leak; the
 * same text gives the same problem count and messages twice
 * (determinism); a valid result has every route channel index in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    mk_notify_config a, b;
    char *ea = NULL, *eb = NULL;
    int ra = mk_notify_config_parse_text(&a, (const char *)data, size, &ea);
    int rb = mk_notify_config_parse_text(&b, (const char *)data, size, &eb);
    if (ra != rb || (!ea) != (!eb) || (ea && strcmp(ea, eb))) abort();
    if (a.n_channels != b.n_channels || a.n_routes != b.n_routes) abort();
    for (size_t i = 0; i < a.n_routes; i++) {
        for (size_t k = 0; k < a.routes[i].n_channels; k++)
            if (a.routes[i].channels[k] >= a.n_channels) abort();
        for (size_t k = 0; k < a.routes[i].n_fallback; k++)
            if (a.routes[i].fallback[k] >= a.n_channels) abort();
        for (size_t t = 0; t < a.routes[i].n_tiers; t++)
            for (size_t k = 0; k < a.routes[i].tiers[t].n_channels; k++)
                if (a.routes[i].tiers[t].channels[k] >= a.n_channels) abort();
    }
    free(ea);
    free(eb);
    mk_notify_config_free(&a);
    mk_notify_config_free(&b);
    return 0;
}
