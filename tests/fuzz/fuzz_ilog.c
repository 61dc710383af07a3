/*
 * tests/fuzz/fuzz_ilog.c — opening the incident store on hostile logs
 * (detect/ilog.c framing, detect/incident.c items).
 *
 * The first input byte picks a mode:
 *   raw         the rest is the file (behind a valid header when bit 1 is
 *               set, so the fuzzer gets past the header checksum);
 *   structured  the rest is a list of (len u8, payload) records framed with
 *               valid lengths and checksums, so the item decoder sees the
 *               fuzzer's bytes; then cut at an offset taken from the input.
 * Every input: opening never crashes and either fails with a message or
 * gives a state; closing writes a snapshot and reopening it gives the same
 * state (incidents, machines via their incidents, outbox) — the snapshot
 * round trip is exact.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "ilog.h"
#include "incident.h"
#include "util.h"

static char g_dir[256];
static mk_env g_env; /* the OS without fsync: durability is not what is fuzzed, speed is */

static int no_fsync(mk_env *env, int fd)
{
    (void)env;
    (void)fd;
    return 0;
}

static void quiet_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

/* A printable digest of the store's state. */
static void digest(mk_inc_store *s, mk_buf *out)
{
    mk_incident *l;
    size_t n;
    if (mk_inc_list(s, NULL, &l, &n, NULL)) abort();
    char line[512];
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(line, sizeof line, "I %llu %s %llu %d %d %lld %lld %lld %zu %zu %s\n",
                         (unsigned long long)l[i].id, l[i].rule, (unsigned long long)l[i].series_id, (int)l[i].state,
                         (int)l[i].severity, (long long)l[i].start_ms, (long long)l[i].fired_ms,
                         (long long)l[i].end_ms, l[i].n_labels, l[i].n_annotations, l[i].reason);
        if (k > 0) mk_buf_append(out, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
        mk_inc_state ms = mk_inc_machine_state(s, l[i].rule, l[i].series_id);
        k = snprintf(line, sizeof line, "M %d\n", (int)ms);
        mk_buf_append(out, line, (size_t)k);
    }
    mk_incidents_free(l, n);
    mk_outbox_rec *ob;
    if (mk_inc_outbox_pending(s, 0, &ob, &n, NULL)) abort();
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(line, sizeof line, "O %llu %llu %d %u %lld\n", (unsigned long long)ob[i].seq,
                         (unsigned long long)ob[i].incident_id, (int)ob[i].event, ob[i].attempts,
                         (long long)ob[i].event_ms);
        mk_buf_append(out, line, (size_t)k);
    }
    mk_inc_outbox_free(ob, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/fuzz_ilog-%d", (int)getpid());
        g_env = *mk_env_default();
        g_env.fsync = no_fsync;
    }
    if (size < 1) return 0;
    mk_buf file = {0};
    uint8_t h[24];
    mk_put_u32(h, MK_ILOG_MAGIC);
    mk_put_u16(h + 4, MK_ILOG_VERSION);
    mk_put_u16(h + 6, 0);
    mk_put_u64(h + 8, 1);
    mk_put_u64(h + 16, mk_hash64(h, 16));
    uint8_t mode = data[0];
    if (!(mode & 1)) {
        if (mode & 2) mk_buf_append(&file, h, 24);
        mk_buf_append(&file, data + 1, size - 1);
    } else {
        mk_buf_append(&file, h, 24);
        size_t at = 1;
        while (at < size) {
            size_t len = data[at++];
            if (len > size - at) len = size - at;
            if (len) mk_ilog_frame(&file, data + at, len);
            at += len;
        }
        if (mode & 2 && size > 2 && file.len > 24) file.len = 24 + data[size - 1] % (file.len - 24);
    }
    char path[300];
    mkdir(g_dir, 0755);
    snprintf(path, sizeof path, "%s/incidents.log", g_dir);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (file.len && fwrite(file.data, 1, file.len, f) != file.len) abort();
    fclose(f);
    mk_buf_free(&file);

    mk_inc_store_opts o = {0};
    o.log = quiet_log;
    o.max_resolved = 1000000;
    mk_inc_store *s = NULL;
    mk_diag d = {0};
    if (mk_inc_store_open(&g_env, g_dir, &o, &s, &d) != MK_OK) {
        if (!d.msg[0]) abort(); /* a failure always says why */
        unlink(path);
        return 0;
    }
    mk_buf a = {0}, b = {0};
    digest(s, &a);
    if (mk_inc_store_close(s, &d) != MK_OK) abort();
    s = NULL;
    if (mk_inc_store_open(&g_env, g_dir, &o, &s, &d) != MK_OK) abort();
    digest(s, &b);
    if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0)) {
        fprintf(stderr, "snapshot round trip differs:\n%.*s---\n%.*s", (int)a.len, (char *)a.data, (int)b.len,
                (char *)b.data);
        abort();
    }
    mk_inc_store_close(s, NULL);
    mk_buf_free(&a);
    mk_buf_free(&b);
    unlink(path);
    return 0;
}
