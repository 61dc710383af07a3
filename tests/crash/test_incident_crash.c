/*
 * tests/crash/test_incident_crash.c — SIGKILL a process that opens and
 * closes incidents and writes and delivers outbox records.
 *
 * Each round a child opens the incident store and feeds scripted
 * observations (a deterministic function of round and step) into 8 series'
 * state machines, and delivers the oldest pending notification every few
 * steps. After each acknowledged call it appends a line to a side file:
 *   F <incident id>   a step returned with the machine FIRING
 *   N <seq>           a step wrote outbox record seq
 *   D <seq>           record seq was marked delivered
 * (a plain write(2): the page cache survives the kill of the process). The
 * parent kills the child after a random delay, reopens the store and checks
 * against everything acknowledged so far:
 *   - every acknowledged FIRING incident exists (not lost);
 *   - incident ids are unique, and each series has at most one open incident,
 *     the one its machine points at (no duplicate);
 *   - every acknowledged, undelivered record is pending; no acknowledged
 *     delivered record is pending; beyond those, at most the one record in
 *     flight at the kill is pending (and is then expected from then on);
 *   - no two pending records describe the same (incident, event, time).
 * The compaction limit is tiny, so kills also land inside compactions.
 * MK_CRASH_ROUNDS (default 25) kills; seed printed.
 */
#include "testutil.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "incident.h"

#define N_SERIES 8
#define MAX_IDS 200000

static mk_inc_store *open_store(const char *dir)
{
    mk_inc_store_opts o = {0};
    o.compact_bytes = 4096; /* compactions every few dozen records */
    o.max_resolved = 1000000; /* keep all: the check looks every incident up */
    mk_inc_store *s = NULL;
    mk_diag d = {0};
    if (mk_inc_store_open(NULL, dir, &o, &s, &d)) {
        fprintf(stderr, "open failed: %s\n", d.msg);
        return NULL;
    }
    return s;
}

static void side(int fd, char kind, uint64_t v)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%c %" PRIu64 "\n", kind, v);
    if (write(fd, line, (size_t)n) != n) _exit(5);
}

static void child(const char *dir, const char *side_path, int round)
{
    int fd = open(side_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) _exit(2);
    mk_inc_store *s = open_store(dir);
    if (!s) _exit(3);
    mk_inc_policy p = {0};
    p.failures = 2;
    p.successes = 2;
    mk_label lab[] = {{"service", "api"}};
    for (uint64_t k = 0;; k++) {
        mk_rng r = {(uint64_t)round * 1000003 + k};
        uint64_t sid = k % N_SERIES + 1;
        int is_bad = mk_rng_below(&r, 100) < 50;
        mk_inc_obs o = {is_bad, !is_bad, MK_SEV_WARNING, (double)mk_rng_below(&r, 1000), 500, "scripted"};
        int64_t now = ((int64_t)round * 1000000 + (int64_t)k) * 1000;
        mk_inc_step_result res;
        mk_diag d = {0};
        if (mk_inc_step(s, "crash", sid, &p, &o, lab, 1, NULL, 0, now, &res, &d)) _exit(4);
        if (res.to == MK_INC_FIRING) side(fd, 'F', res.incident_id);
        if (res.n_notified) side(fd, 'N', res.outbox_seq);
        if (k % 5 == 4) {
            mk_outbox_rec *ob;
            size_t n;
            if (mk_inc_outbox_pending(s, 1, &ob, &n, &d)) _exit(6);
            if (n) {
                uint64_t seq = ob[0].seq;
                if (mk_inc_outbox_delivered(s, seq, &d)) _exit(7);
                side(fd, 'D', seq);
            }
            mk_inc_outbox_free(ob, n);
        }
    }
}

/* Expected state, accumulated over rounds. */
static uint8_t fired[MAX_IDS];   /* incident id acknowledged FIRING */
static uint8_t notified[MAX_IDS]; /* seq acknowledged written */
static uint8_t delivered[MAX_IDS];

static int check(const char *dir, int round)
{
    mk_inc_store *s = open_store(dir);
    if (!s) return 1;
    int bad = 0;
    mk_incident *l;
    size_t n;
    if (mk_inc_list(s, NULL, &l, &n, NULL)) return 1;
    static uint8_t seen[MAX_IDS];
    memset(seen, 0, sizeof seen);
    int open_per_series[N_SERIES + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        if (l[i].id >= MAX_IDS) { fprintf(stderr, "id %" PRIu64 " out of range\n", l[i].id); bad = 1; continue; }
        if (seen[l[i].id]) { fprintf(stderr, "round %d: incident %" PRIu64 " twice\n", round, l[i].id); bad = 1; }
        seen[l[i].id] = 1;
        if (l[i].state == MK_INC_PENDING || l[i].state == MK_INC_FIRING) {
            uint64_t sid = l[i].series_id;
            if (sid >= 1 && sid <= N_SERIES) open_per_series[sid]++;
            mk_inc_state ms = mk_inc_machine_state(s, "crash", sid);
            if (ms != l[i].state) {
                fprintf(stderr, "round %d: incident %" PRIu64 " is %s but its machine is %s\n", round, l[i].id,
                        mk_inc_state_name(l[i].state), mk_inc_state_name(ms));
                bad = 1;
            }
        }
    }
    for (int sid = 1; sid <= N_SERIES; sid++)
        if (open_per_series[sid] > 1) { fprintf(stderr, "round %d: series %d has %d open incidents\n", round, sid, open_per_series[sid]); bad = 1; }
    for (uint64_t id = 1; id < MAX_IDS; id++)
        if (fired[id] && !seen[id]) { fprintf(stderr, "round %d: acknowledged incident %" PRIu64 " lost\n", round, id); bad = 1; }
    mk_incidents_free(l, n);

    mk_outbox_rec *ob;
    if (mk_inc_outbox_pending(s, 0, &ob, &n, NULL)) return 1;
    static uint8_t pending[MAX_IDS];
    memset(pending, 0, sizeof pending);
    int n_extra = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t q = ob[i].seq;
        if (q >= MAX_IDS) { bad = 1; continue; }
        pending[q] = 1;
        if (delivered[q]) { fprintf(stderr, "round %d: delivered record %" PRIu64 " is pending again\n", round, q); bad = 1; }
        if (!notified[q]) { n_extra++; notified[q] = 1; } /* in flight at the kill: expected from now on */
        for (size_t j = 0; j < i; j++)
            if (ob[j].incident_id == ob[i].incident_id && ob[j].event == ob[i].event && ob[j].event_ms == ob[i].event_ms) {
                fprintf(stderr, "round %d: records %" PRIu64 " and %" PRIu64 " duplicate each other\n", round, ob[j].seq, q);
                bad = 1;
            }
    }
    if (n_extra > 1) { fprintf(stderr, "round %d: %d unacknowledged records pending\n", round, n_extra); bad = 1; }
    int n_gone = 0;
    for (uint64_t q = 1; q < MAX_IDS; q++)
        if (notified[q] && !delivered[q] && !pending[q]) {
            /* Only the delivery in flight at the kill (its D line not yet
             * written) may be gone without an acknowledgement. */
            delivered[q] = 2;
            n_gone++;
        }
    if (n_gone > 1) { fprintf(stderr, "round %d: %d acknowledged records lost from the outbox\n", round, n_gone); bad = 1; }
    mk_inc_outbox_free(ob, n);
    mk_diag d = {0};
    if (mk_inc_store_close(s, &d)) { fprintf(stderr, "close: %s\n", d.msg); bad = 1; }
    return bad;
}

/* Reads the side file of a round into the expectations. The line in
 * flight may be cut short: ignored. */
static int read_side(const char *path, int *n_lines)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[64];
    *n_lines = 0;
    while (fgets(line, sizeof line, f)) {
        char k;
        uint64_t v;
        if (!strchr(line, '\n') || sscanf(line, "%c %" SCNu64, &k, &v) != 2 || v >= MAX_IDS) continue;
        if (k == 'F') fired[v] = 1;
        if (k == 'N') notified[v] = 1;
        if (k == 'D') delivered[v] = 1;
        (*n_lines)++;
    }
    fclose(f);
    return 0;
}

int main(void)
{
    const char *env_rounds = getenv("MK_CRASH_ROUNDS");
    int rounds = env_rounds ? atoi(env_rounds) : 25;
    uint64_t seed = 0x1c1de47;
    printf("test_incident_crash: seed %" PRIu64 ", %d rounds\n", seed, rounds);
    mk_rng rng = {seed};
    char *dir = mk_test_dir("incident-crash");
    if (!dir) return 1;
    char side_path[4200];
    snprintf(side_path, sizeof side_path, "%s/side.txt", dir);
    char inc_dir[4200];
    snprintf(inc_dir, sizeof inc_dir, "%s/incidents", dir);
    int failed = 0;
    uint64_t total_lines = 0;
    int64_t t_start = mk_test_mono_ms();
    for (int round = 0; round < rounds && !failed; round++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) child(inc_dir, side_path, round);
        struct timespec ts = {0, (long)(5 + mk_rng_below(&rng, 200)) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        if (!WIFSIGNALED(st)) { fprintf(stderr, "round %d: child exited with %d\n", round, WEXITSTATUS(st)); failed = 1; break; }
        int n_lines = 0;
        read_side(side_path, &n_lines);
        total_lines += (uint64_t)n_lines;
        if (check(inc_dir, round)) failed = 1;
    }
    uint64_t n_fired = 0, n_delivered = 0;
    for (uint64_t i = 0; i < MAX_IDS; i++) { n_fired += fired[i]; n_delivered += delivered[i] != 0; }
    printf("test_incident_crash: %s after %d rounds, %" PRIu64 " acknowledged events (%" PRIu64
           " incidents fired, %" PRIu64 " records delivered), %" PRId64 " ms\n",
           failed ? "FAILED" : "ok", rounds, total_lines, n_fired, n_delivered, mk_test_mono_ms() - t_start);
    if (!failed) mk_test_rmrf(dir);
    free(dir);
    return failed;
}
