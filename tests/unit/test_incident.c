/*
 * tests/unit/test_incident.c — the incident state machine, the incident log
 * and the notification outbox (detect/incident.c, detect/ilog.c).
 *
 * The reference is hand-worked: each test feeds a scripted list of
 * observations and checks the states, incident times and outbox records a
 * reader of the diagram in incident.c expects. The log is damaged with plain
 * POSIX calls, never through the code under test.
 */
#include "testutil.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "ilog.h"
#include "incident.h"
#include "util.h"

#define MIN 60000

static int n_warnings;
static char last_warning[1024];
static void count_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (level == 1) {
        n_warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", msg);
    }
}

/* The OS without fsync, for the tests that open and close the store
 * thousands of times (what they check is replay, not durability; the crash
 * test covers that). */
static mk_env g_fast_env;
static int is_fast;
static int no_fsync(mk_env *env, int fd)
{
    (void)env;
    (void)fd;
    return 0;
}

static mk_inc_store *open_store(const char *dir)
{
    mk_inc_store_opts o = {0};
    o.log = count_log;
    mk_inc_store *s = NULL;
    mk_diag d = {0};
    g_fast_env = *mk_env_default();
    g_fast_env.fsync = no_fsync;
    mk_err err = mk_inc_store_open(is_fast ? &g_fast_env : NULL, dir, &o, &s, &d);
    if (err) fprintf(stderr, "open: %s\n", d.msg);
    assert_int_equal(err, MK_OK);
    return s;
}

static void close_store(mk_inc_store *s)
{
    mk_diag d = {0};
    assert_int_equal(mk_inc_store_close(s, &d), MK_OK);
}

static char *logdir(const char *name)
{
    char *d = mk_test_dir(name);
    assert_non_null(d);
    return d;
}

/* Observation kinds. */
enum { BAD, CLEAR, BAND };

static mk_inc_step_result step_sev(mk_inc_store *s, const mk_inc_policy *p, int kind, double v, int64_t now, mk_severity sev)
{
    mk_inc_obs o = {kind == BAD, kind == CLEAR, sev, v, 100, kind == BAD ? "value above 100" : "fine"};
    mk_label labels[] = {{"service", "api"}, {"env", "prod"}};
    mk_label ann[] = {{"summary", "api is slow"}};
    mk_inc_step_result r;
    mk_diag d = {0};
    mk_err err = mk_inc_step(s, "latency", 42, p, &o, labels, 2, ann, 1, now, &r, &d);
    if (err) fprintf(stderr, "step: %s\n", d.msg);
    assert_int_equal(err, MK_OK);
    return r;
}

static mk_inc_step_result step(mk_inc_store *s, const mk_inc_policy *p, int kind, double v, int64_t now)
{
    return step_sev(s, p, kind, v, now, MK_SEV_WARNING);
}

static size_t outbox_count(mk_inc_store *s, mk_outbox_rec **out)
{
    mk_outbox_rec *r;
    size_t n;
    assert_int_equal(mk_inc_outbox_pending(s, 0, &r, &n, NULL), MK_OK);
    if (out) *out = r;
    else mk_inc_outbox_free(r, n);
    return n;
}

static mk_inc_policy policy(uint32_t failures, uint32_t successes)
{
    mk_inc_policy p = {0};
    p.failures = failures;
    p.successes = successes;
    return p;
}

/* OK -> PENDING -> FIRING -> RESOLVED -> OK with failures 3, successes 2. */
static void test_full_cycle(void **state)
{
    (void)state;
    char *dir = logdir("inc-cycle");
    mk_inc_store *s = open_store(dir);
    mk_inc_policy p = policy(3, 2);
    mk_inc_step_result r = step(s, &p, BAD, 150, 0);
    assert_int_equal(r.from, MK_INC_OK);
    assert_int_equal(r.to, MK_INC_PENDING);
    uint64_t id = r.incident_id;
    assert_int_equal(id, 1);
    r = step(s, &p, BAD, 300, 1 * MIN);
    assert_int_equal(r.to, MK_INC_PENDING);
    assert_int_equal(outbox_count(s, NULL), 0);
    r = step(s, &p, BAD, 200, 2 * MIN);
    assert_int_equal(r.to, MK_INC_FIRING);
    assert_int_equal(r.n_notified, 1);
    r = step(s, &p, CLEAR, 50, 3 * MIN);
    assert_int_equal(r.to, MK_INC_FIRING);
    r = step(s, &p, CLEAR, 40, 4 * MIN);
    assert_int_equal(r.to, MK_INC_RESOLVED);
    assert_int_equal(r.incident_id, id);
    r = step(s, &p, CLEAR, 40, 5 * MIN);
    assert_int_equal(r.from, MK_INC_RESOLVED);
    assert_int_equal(r.to, MK_INC_OK);

    mk_incident inc;
    assert_int_equal(mk_inc_get(s, id, &inc, NULL), MK_OK);
    assert_int_equal(inc.state, MK_INC_RESOLVED);
    assert_int_equal(inc.start_ms, 0);
    assert_int_equal(inc.fired_ms, 2 * MIN);
    assert_int_equal(inc.end_ms, 4 * MIN);
    assert_true(inc.peak == 300);
    assert_string_equal(inc.reason, "value above 100");
    assert_int_equal(inc.n_labels, 2);
    assert_string_equal(inc.labels[0].key, "service");
    assert_string_equal(inc.annotations[0].value, "api is slow");
    mk_incident_clear(&inc);

    mk_outbox_rec *ob;
    assert_int_equal(outbox_count(s, &ob), 2);
    assert_int_equal(ob[0].event, MK_EV_FIRING);
    assert_int_equal(ob[0].incident_id, id);
    assert_int_equal(ob[0].event_ms, 2 * MIN);
    assert_int_equal(ob[1].event, MK_EV_RESOLVED);
    assert_int_equal(ob[1].end_ms, 4 * MIN);
    assert_true(ob[1].seq > ob[0].seq);
    assert_string_equal(ob[1].rule, "latency");
    mk_inc_outbox_free(ob, 2);
    close_store(s);
    mk_test_rmrf(dir);
    free(dir);
}

/* PENDING -> OK: the incident is cancelled and not listed; nothing notified. */
static void test_pending_cancel(void **state)
{
    (void)state;
    char *dir = logdir("inc-cancel");
    mk_inc_store *s = open_store(dir);
    mk_inc_policy p = policy(3, 1);
    step(s, &p, BAD, 150, 0);
    mk_inc_step_result r = step(s, &p, CLEAR, 10, MIN);
    assert_int_equal(r.from, MK_INC_PENDING);
    assert_int_equal(r.to, MK_INC_OK);
    mk_incident *l;
    size_t n;
    assert_int_equal(mk_inc_list(s, NULL, &l, &n, NULL), MK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(outbox_count(s, NULL), 0);
    /* The band also cancels: consecutive failures mean consecutive. */
    step(s, &p, BAD, 150, 2 * MIN);
    r = step(s, &p, BAND, 95, 3 * MIN);
    assert_int_equal(r.to, MK_INC_OK);
    close_store(s);
    /* Survives a restart as cancelled. */
    s = open_store(dir);
    assert_int_equal(mk_inc_list(s, NULL, &l, &n, NULL), MK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(mk_inc_machine_state(s, "latency", 42), MK_INC_OK);
    close_store(s);
    mk_test_rmrf(dir);
    free(dir);
}

/* `for`: failing for 5 minutes before FIRING, whatever the count. */
static void test_for_duration(void **state)
{
    (void)state;
    mk_inc_store *s = open_store(NULL);
    mk_inc_policy p = policy(1, 1);
    p.for_ms = 5 * MIN;
    for (int i = 0; i < 5; i++) assert_int_equal(step(s, &p, BAD, 150, i * MIN).to, MK_INC_PENDING);
    assert_int_equal(step(s, &p, BAD, 150, 5 * MIN).to, MK_INC_FIRING);
    close_store(s);
}

/* Hysteresis: the band between fire and clear keeps FIRING and resets the
 * count of healthy evaluations. */
static void test_hysteresis(void **state)
{
    (void)state;
    mk_inc_store *s = open_store(NULL);
    mk_inc_policy p = policy(1, 2);
    assert_int_equal(step(s, &p, BAD, 1100, 0).to, MK_INC_FIRING);
    assert_int_equal(step(s, &p, BAND, 950, 1 * MIN).to, MK_INC_FIRING);
    assert_int_equal(step(s, &p, CLEAR, 850, 2 * MIN).to, MK_INC_FIRING);
    assert_int_equal(step(s, &p, BAND, 950, 3 * MIN).to, MK_INC_FIRING); /* resets n_ok */
    assert_int_equal(step(s, &p, CLEAR, 850, 4 * MIN).to, MK_INC_FIRING);
    assert_int_equal(step(s, &p, CLEAR, 850, 5 * MIN).to, MK_INC_RESOLVED);
    assert_int_equal(outbox_count(s, NULL), 2);
    close_store(s);
}

/* Deduplication: a re-fire of an open incident makes no new one. */
static void test_dedup(void **state)
{
    (void)state;
    mk_inc_store *s = open_store(NULL);
    mk_inc_policy p = policy(1, 1);
    for (int i = 0; i < 50; i++) step(s, &p, BAD, 100 + i, i * MIN);
    mk_incident *l;
    size_t n;
    assert_int_equal(mk_inc_list(s, NULL, &l, &n, NULL), MK_OK);
    assert_int_equal(n, 1);
    assert_true(l[0].peak == 149);
    assert_true(l[0].value == 149);
    mk_incidents_free(l, n);
    assert_int_equal(outbox_count(s, NULL), 1);
    close_store(s);
}

/* Repeat interval: FIRING re-notifies every 10 minutes. */
static void test_repeat(void **state)
{
    (void)state;
    mk_inc_store *s = open_store(NULL);
    mk_inc_policy p = policy(1, 1);
    p.repeat_ms = 10 * MIN;
    for (int i = 0; i <= 25; i++) step(s, &p, BAD, 200, i * MIN);
    mk_outbox_rec *ob;
    size_t n = outbox_count(s, &ob);
    assert_int_equal(n, 3);
    assert_int_equal(ob[0].event, MK_EV_FIRING);
    assert_int_equal(ob[1].event, MK_EV_REPEAT);
    assert_int_equal(ob[1].event_ms, 10 * MIN);
    assert_int_equal(ob[2].event, MK_EV_REPEAT);
    assert_int_equal(ob[2].event_ms, 20 * MIN);
    assert_int_equal(ob[0].incident_id, ob[2].incident_id);
    mk_inc_outbox_free(ob, n);
    close_store(s);
}

/* Cooldown: after a resolve, a new failure waits in PENDING until 10
 * minutes have passed since the resolve. */
static void test_cooldown(void **state)
{
    (void)state;
    mk_inc_store *s = open_store(NULL);
    mk_inc_policy p = policy(1, 1);
    p.cooldown_ms = 10 * MIN;
    assert_int_equal(step(s, &p, BAD, 200, 0).to, MK_INC_FIRING);
    assert_int_equal(step(s, &p, CLEAR, 20, 1 * MIN).to, MK_INC_RESOLVED);
    for (int i = 2; i < 11; i++) assert_int_equal(step(s, &p, BAD, 200, i * MIN).to, MK_INC_PENDING);
    mk_inc_step_result r = step(s, &p, BAD, 200, 11 * MIN);
    assert_int_equal(r.to, MK_INC_FIRING);
    assert_int_equal(r.incident_id, 2);
    assert_int_equal(outbox_count(s, NULL), 3);
    close_store(s);
}

/* Escalation: severity rising while FIRING notifies ESCALATED. */
static void test_escalation(void **state)
{
    (void)state;
    mk_inc_store *s = open_store(NULL);
    mk_inc_policy p = policy(1, 1);
    step_sev(s, &p, BAD, 1, 0, MK_SEV_WARNING);
    step_sev(s, &p, BAD, 1, MIN, MK_SEV_WARNING);
    mk_inc_step_result r = step_sev(s, &p, BAD, 1, 2 * MIN, MK_SEV_CRITICAL);
    assert_int_equal(r.n_notified, 1);
    step_sev(s, &p, BAD, 1, 3 * MIN, MK_SEV_CRITICAL);
    mk_outbox_rec *ob;
    size_t n = outbox_count(s, &ob);
    assert_int_equal(n, 2);
    assert_int_equal(ob[1].event, MK_EV_ESCALATED);
    assert_int_equal(ob[1].severity, MK_SEV_CRITICAL);
    mk_inc_outbox_free(ob, n);
    close_store(s);
}

/* Flapping (window 10, high 50 %, low 25 %): alternating outcomes fire and
 * resolve until the history is full, then one FLAPPING notification holds
 * the incident open; steady health resolves it once the changes age out. */
static void test_flapping(void **state)
{
    (void)state;
    mk_inc_store *s = open_store(NULL);
    mk_inc_policy p = policy(1, 1);
    p.flap_window = 10;
    p.flap_high_pct = 50;
    p.flap_low_pct = 25;
    int64_t t = 0;
    /* 10 alternating outcomes: bad, clear, ... : 5 fire + 5 resolve notifications;
     * the 10th fills the history: 9 changes of 9 = 100 % -> flapping. */
    for (int i = 0; i < 9; i++, t += MIN) step(s, &p, i % 2 ? CLEAR : BAD, 200, t);
    assert_int_equal(outbox_count(s, NULL), 9);
    mk_inc_step_result r = step(s, &p, CLEAR, 20, t); /* 10th: would resolve; flapping starts instead */
    t += MIN;
    assert_int_equal(r.to, MK_INC_FIRING);
    mk_outbox_rec *ob;
    size_t n = outbox_count(s, &ob);
    assert_int_equal(n, 10);
    assert_int_equal(ob[9].event, MK_EV_FLAPPING);
    uint64_t flap_id = ob[9].incident_id;
    mk_inc_outbox_free(ob, n);
    /* More alternation: held open, nothing new. */
    for (int i = 0; i < 10; i++, t += MIN) assert_int_equal(step(s, &p, i % 2 ? CLEAR : BAD, 200, t).to, MK_INC_FIRING);
    assert_int_equal(outbox_count(s, NULL), 10);
    /* Steady clear: the flap percentage falls; the incident resolves only
     * once it is below 25 %. History after k clears (newest first): k
     * clears then alternating. With the last alternation ending in CLEAR,
     * changes in the window are 10 - 1 - k... resolve must come within 10. */
    int resolved_at = -1;
    for (int k = 1; k <= 12 && resolved_at < 0; k++, t += MIN)
        if (step(s, &p, CLEAR, 20, t).to == MK_INC_RESOLVED) resolved_at = k;
    assert_true(resolved_at > 1 && resolved_at <= 10);
    n = outbox_count(s, &ob);
    assert_int_equal(n, 11);
    assert_int_equal(ob[10].event, MK_EV_RESOLVED);
    assert_int_equal(ob[10].incident_id, flap_id);
    mk_inc_outbox_free(ob, n);
    close_store(s);
}

/* The Nagios percentage, worked by hand for one case: window 5, outcomes
 * oldest..newest = bad, bad, clear, clear, bad -> changes at transitions 2
 * and 4 with weights 0.8 + 0.4*(j-1)/3: j=2 -> 0.9333, j=4 -> 1.2; sum 2.1333
 * over 4 = 53.3 % >= 50 -> flapping starts on the fifth outcome; with 60 %
 * it does not. */
static void test_flap_percentage(void **state)
{
    (void)state;
    int kinds[] = {BAD, BAD, CLEAR, CLEAR, BAD};
    for (int variant = 0; variant < 2; variant++) {
        mk_inc_store *s = open_store(NULL);
        mk_inc_policy p = policy(100, 1); /* never fires by count */
        p.flap_window = 5;
        p.flap_high_pct = variant == 0 ? 50 : 60;
        p.flap_low_pct = 10;
        mk_inc_step_result r = {0};
        for (int i = 0; i < 5; i++) r = step(s, &p, kinds[i], 200, i * MIN);
        assert_int_equal(r.to, variant == 0 ? MK_INC_FIRING : MK_INC_PENDING);
        close_store(s);
    }
}

/* Drives a machine (failures 3, successes 2, cooldown 5 min) into `target`
 * and returns the time of the last step. */
static int64_t drive_to(mk_inc_store *s, const mk_inc_policy *p, mk_inc_state target)
{
    int64_t t = 0;
    step(s, p, CLEAR, 10, t); /* OK */
    if (target == MK_INC_OK) return t;
    step(s, p, BAD, 200, t += MIN);
    step(s, p, BAD, 250, t += MIN); /* PENDING, n_fail 2 */
    if (target == MK_INC_PENDING) return t;
    step(s, p, BAD, 220, t += MIN); /* FIRING */
    if (target == MK_INC_FIRING) return t;
    step(s, p, CLEAR, 10, t += MIN);
    step(s, p, CLEAR, 10, t += MIN); /* RESOLVED */
    return t;
}

/* A clean restart (close + reopen) in each state continues exactly. */
static void test_restart_each_state(void **state)
{
    (void)state;
    mk_inc_policy p = policy(3, 2);
    p.cooldown_ms = 5 * MIN;
    for (int target = MK_INC_OK; target <= MK_INC_RESOLVED; target++) {
        char *dir = logdir("inc-restart");
        mk_inc_store *s = open_store(dir);
        int64_t t = drive_to(s, &p, (mk_inc_state)target);
        assert_int_equal(mk_inc_machine_state(s, "latency", 42), target);
        size_t n_ob = outbox_count(s, NULL);
        close_store(s);
        s = open_store(dir);
        assert_int_equal(mk_inc_machine_state(s, "latency", 42), target);
        assert_int_equal(outbox_count(s, NULL), n_ob);
        mk_inc_step_result r;
        switch (target) {
        case MK_INC_OK:
            assert_int_equal(step(s, &p, BAD, 200, t + MIN).to, MK_INC_PENDING);
            break;
        case MK_INC_PENDING: /* n_fail 2 survived: one more fires */
            r = step(s, &p, BAD, 200, t + MIN);
            assert_int_equal(r.to, MK_INC_FIRING);
            assert_int_equal(r.incident_id, 1);
            break;
        case MK_INC_FIRING:
            step(s, &p, CLEAR, 10, t + MIN);
            r = step(s, &p, CLEAR, 10, t + 2 * MIN);
            assert_int_equal(r.to, MK_INC_RESOLVED);
            assert_int_equal(r.incident_id, 1);
            break;
        case MK_INC_RESOLVED: /* cooldown and id counter survived */
            step(s, &p, BAD, 200, t + MIN);
            step(s, &p, BAD, 200, t + 2 * MIN);
            assert_int_equal(step(s, &p, BAD, 200, t + 3 * MIN).to, MK_INC_PENDING); /* 3 min after resolve */
            r = step(s, &p, BAD, 200, t + 5 * MIN);
            assert_int_equal(r.to, MK_INC_FIRING);
            assert_int_equal(r.incident_id, 2);
            break;
        }
        close_store(s);
        mk_test_rmrf(dir);
        free(dir);
    }
}

static void copy_file(const char *from, const char *to, off_t len)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[4096];
    size_t n;
    off_t done = 0;
    while ((len < 0 || done < len) && (n = fread(buf, 1, sizeof buf, a)) > 0) {
        if (len >= 0 && done + (off_t)n > len) n = (size_t)(len - done);
        assert_int_equal(fwrite(buf, 1, n, b), n);
        done += (off_t)n;
    }
    fclose(a);
    fclose(b);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* A crash (no close): the log as it is on disk. Transitions and outbox
 * records are all there; a PENDING machine restarts its count from its
 * last logged transition (documented in incident.c). */
static void test_crash_image(void **state)
{
    (void)state;
    char *dir = logdir("inc-crash"), *dir2 = logdir("inc-crash2");
    char path[4200], path2[4200];
    snprintf(path, sizeof path, "%s/incidents.log", dir);
    snprintf(path2, sizeof path2, "%s/incidents.log", dir2);
    mk_inc_store *s = open_store(dir);
    mk_inc_policy p = policy(3, 1);
    step(s, &p, BAD, 200, 0);
    step(s, &p, BAD, 200, MIN);
    step(s, &p, BAD, 200, 2 * MIN); /* FIRING */
    copy_file(path, path2, -1);
    mk_inc_store *c = open_store(dir2);
    assert_int_equal(mk_inc_machine_state(c, "latency", 42), MK_INC_FIRING);
    assert_int_equal(outbox_count(c, NULL), 1);
    close_store(c);
    step(s, &p, CLEAR, 10, 3 * MIN); /* RESOLVED */
    step(s, &p, BAD, 200, 4 * MIN);
    step(s, &p, BAD, 200, 5 * MIN); /* PENDING n_fail 2, logged with n_fail 1 */
    copy_file(path, path2, -1);
    c = open_store(dir2);
    assert_int_equal(mk_inc_machine_state(c, "latency", 42), MK_INC_PENDING);
    assert_int_equal(outbox_count(c, NULL), 2);
    assert_int_equal(step(c, &p, BAD, 200, 6 * MIN).to, MK_INC_PENDING);
    assert_int_equal(step(c, &p, BAD, 200, 7 * MIN).to, MK_INC_FIRING);
    close_store(c);
    close_store(s);
    mk_test_rmrf(dir);
    mk_test_rmrf(dir2);
    free(dir);
    free(dir2);
}

/* Outbox: attempts and delivery marks are durable; delivered records leave. */
static void test_outbox(void **state)
{
    (void)state;
    char *dir = logdir("inc-outbox"), *dir2 = logdir("inc-outbox2");
    char path[4200], path2[4200];
    snprintf(path, sizeof path, "%s/incidents.log", dir);
    snprintf(path2, sizeof path2, "%s/incidents.log", dir2);
    mk_inc_store *s = open_store(dir);
    mk_inc_policy p = policy(1, 1);
    step(s, &p, BAD, 200, 0);
    step(s, &p, CLEAR, 10, MIN);
    step(s, &p, BAD, 200, 2 * MIN);
    mk_outbox_rec *ob;
    assert_int_equal(outbox_count(s, &ob), 3);
    uint64_t seq0 = ob[0].seq, seq1 = ob[1].seq, seq2 = ob[2].seq;
    mk_inc_outbox_free(ob, 3);
    assert_int_equal(mk_inc_outbox_attempt(s, seq1, 12345, NULL), MK_OK);
    assert_int_equal(mk_inc_outbox_attempt(s, seq1, 22345, NULL), MK_OK);
    assert_int_equal(mk_inc_outbox_delivered(s, seq0, NULL), MK_OK);
    mk_diag d = {0};
    assert_int_equal(mk_inc_outbox_delivered(s, seq0, &d), MK_ENOTFOUND);
    assert_int_equal(mk_inc_outbox_attempt(s, 999, 1, NULL), MK_ENOTFOUND);
    copy_file(path, path2, -1); /* crash image */
    mk_inc_store *c = open_store(dir2);
    assert_int_equal(outbox_count(c, &ob), 2);
    assert_int_equal(ob[0].seq, seq1);
    assert_int_equal(ob[0].attempts, 2);
    assert_int_equal(ob[0].last_attempt_ms, 22345);
    assert_int_equal(ob[1].seq, seq2);
    assert_int_equal(ob[1].attempts, 0);
    mk_inc_outbox_free(ob, 2);
    close_store(c);
    /* After a compaction (close) too, and sequence numbers are not reused. */
    assert_int_equal(mk_inc_outbox_delivered(s, seq1, NULL), MK_OK);
    assert_int_equal(mk_inc_outbox_delivered(s, seq2, NULL), MK_OK);
    close_store(s);
    s = open_store(dir);
    assert_int_equal(outbox_count(s, NULL), 0);
    step(s, &p, CLEAR, 10, 3 * MIN);
    assert_int_equal(outbox_count(s, &ob), 1);
    assert_true(ob[0].seq > seq2);
    mk_inc_outbox_free(ob, 1);
    close_store(s);
    mk_test_rmrf(dir);
    mk_test_rmrf(dir2);
    free(dir);
    free(dir2);
}

/* Torn tail: cutting the log at any byte gives exactly the state of the
 * last whole record before the cut, with a warning when bytes were dropped. */
static void test_torn_tail(void **state)
{
    (void)state;
    char *dir = logdir("inc-torn"), *dir2 = logdir("inc-torn2");
    char path[4200], path2[4200];
    snprintf(path, sizeof path, "%s/incidents.log", dir);
    snprintf(path2, sizeof path2, "%s/incidents.log", dir2);
    is_fast = 1;
    mk_inc_store *s = open_store(dir);
    mk_inc_policy p = policy(1, 1);
    /* Reference: after each record, the file size and the outbox count. */
    off_t sizes[8];
    size_t counts[8];
    int kinds[] = {BAD, CLEAR, BAD, CLEAR, BAD, CLEAR};
    sizes[0] = file_size(path);
    counts[0] = 0;
    for (int i = 0; i < 6; i++) {
        step(s, &p, kinds[i], 200, i * MIN);
        sizes[i + 1] = file_size(path);
        counts[i + 1] = (size_t)i + 1;
    }
    close_store(s); /* the compaction rewrites; cut the pre-close copy instead */
    /* Rebuild the uncompacted file: replay the same steps into dir2 first. */
    mk_test_rmrf(dir);
    mkdir(dir, 0755);
    s = open_store(dir);
    for (int i = 0; i < 6; i++) step(s, &p, kinds[i], 200, i * MIN);
    for (off_t cut = sizes[0]; cut <= sizes[6]; cut++) {
        /* Every record boundary and its neighbours, and every 11th byte
         * between (each cut costs a file copy, an open and a compaction). */
        int is_near = 0;
        for (int k = 0; k <= 6; k++) is_near |= cut >= sizes[k] - 1 && cut <= sizes[k] + 1;
        if (!is_near && cut % 11) continue;
        copy_file(path, path2, cut);
        n_warnings = 0;
        mk_inc_store *c = open_store(dir2);
        int k = 0;
        while (k < 6 && sizes[k + 1] <= cut) k++;
        assert_int_equal(outbox_count(c, NULL), counts[k]);
        assert_int_equal(n_warnings, cut == sizes[k] ? 0 : 1);
        assert_int_equal(file_size(path2), sizes[k]); /* truncated */
        close_store(c);
    }
    close_store(s);
    is_fast = 0;
    mk_test_rmrf(dir);
    mk_test_rmrf(dir2);
    free(dir);
    free(dir2);
}

/* A flipped bit in the middle record: that record and all after it are
 * dropped with a warning; a foreign file and a newer version are refused. */
static void test_corrupt_and_foreign(void **state)
{
    (void)state;
    char *dir = logdir("inc-corrupt");
    char path[4200];
    snprintf(path, sizeof path, "%s/incidents.log", dir);
    mk_inc_store *s = open_store(dir);
    mk_inc_policy p = policy(1, 1);
    step(s, &p, BAD, 200, 0);
    off_t mid = file_size(path);
    step(s, &p, CLEAR, 10, MIN);
    step(s, &p, BAD, 200, 2 * MIN);
    /* Flip a byte inside the second record (memory-only state goes away: free). */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, mid + 20), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, mid + 20), 1);
    close(fd);
    /* Reopen from the damaged file in a copy dir (s still has the old state). */
    char *dir2 = logdir("inc-corrupt2");
    char path2[4200];
    snprintf(path2, sizeof path2, "%s/incidents.log", dir2);
    copy_file(path, path2, -1);
    n_warnings = 0;
    mk_inc_store *c = open_store(dir2);
    assert_int_equal(n_warnings, 1);
    assert_non_null(strstr(last_warning, "checksum mismatch"));
    assert_int_equal(outbox_count(c, NULL), 1);
    assert_int_equal(mk_inc_machine_state(c, "latency", 42), MK_INC_FIRING);
    close_store(c);
    close_store(s);

    /* Not ours. */
    FILE *f = fopen(path2, "wb");
    fputs("this is not an incident log at all", f);
    fclose(f);
    mk_inc_store *x = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_inc_store_open(NULL, dir2, NULL, &x, &d), MK_ENOTOURS);
    assert_null(x);
    /* Too new: a valid header with version 99. */
    uint8_t h[24];
    mk_put_u32(h, MK_ILOG_MAGIC);
    mk_put_u16(h + 4, 99);
    mk_put_u16(h + 6, 0);
    mk_put_u64(h + 8, 1);
    mk_put_u64(h + 16, mk_hash64(h, 16));
    f = fopen(path2, "wb");
    fwrite(h, 1, 24, f);
    fclose(f);
    assert_int_equal(mk_inc_store_open(NULL, dir2, NULL, &x, &d), MK_ETOONEW);
    mk_test_rmrf(dir);
    mk_test_rmrf(dir2);
    free(dir);
    free(dir2);
}

/* Compaction keeps the log small and the state equal; old resolved
 * incidents beyond max_resolved are forgotten, open ones never. */
static void test_compaction(void **state)
{
    (void)state;
    char *dir = logdir("inc-compact");
    char path[4200];
    snprintf(path, sizeof path, "%s/incidents.log", dir);
    mk_inc_store_opts o = {0};
    o.compact_bytes = 8192;
    o.max_resolved = 20;
    o.log = count_log;
    mk_inc_store *s = NULL;
    mk_env fast = *mk_env_default();
    fast.fsync = no_fsync;
    assert_int_equal(mk_inc_store_open(&fast, dir, &o, &s, NULL), MK_OK);
    mk_inc_policy p = policy(1, 1);
    off_t max_size = 0;
    for (int i = 0; i < 400; i++) {
        step(s, &p, i % 2 ? CLEAR : BAD, 200, i * MIN);
        off_t sz = file_size(path);
        if (sz > max_size) max_size = sz;
        /* deliver everything but the last 3 records */
        mk_outbox_rec *ob;
        size_t n = outbox_count(s, &ob);
        if (n > 3) mk_inc_outbox_delivered(s, ob[0].seq, NULL);
        mk_inc_outbox_free(ob, n);
    }
    assert_true(max_size < 3 * 8192);
    mk_inc_step_result r = step(s, &p, BAD, 300, 400 * MIN); /* open one */
    assert_int_equal(r.to, MK_INC_FIRING);
    size_t n_before = outbox_count(s, NULL);
    close_store(s);
    assert_int_equal(mk_inc_store_open(NULL, dir, &o, &s, NULL), MK_OK);
    mk_incident *l;
    size_t n;
    assert_int_equal(mk_inc_list(s, NULL, &l, &n, NULL), MK_OK);
    assert_int_equal(n, 21); /* 20 resolved + the open one */
    assert_int_equal(l[0].state, MK_INC_FIRING);
    assert_int_equal(l[0].id, r.incident_id);
    mk_incidents_free(l, n);
    assert_int_equal(outbox_count(s, NULL), n_before);
    close_store(s);
    mk_test_rmrf(dir);
    free(dir);
}

/* Listing by state, rule, labels and time. */
static void test_list_filter(void **state)
{
    (void)state;
    mk_inc_store *s = open_store(NULL);
    mk_inc_policy p = policy(1, 1);
    mk_label la[] = {{"service", "api"}}, lb[] = {{"service", "web"}};
    mk_inc_obs bad = {1, 0, MK_SEV_WARNING, 5, 1, "x"}, ok = {0, 1, MK_SEV_WARNING, 0, 1, "y"};
    assert_int_equal(mk_inc_step(s, "r1", 1, &p, &bad, la, 1, NULL, 0, 0, NULL, NULL), MK_OK);
    assert_int_equal(mk_inc_step(s, "r1", 1, &p, &ok, la, 1, NULL, 0, 10 * MIN, NULL, NULL), MK_OK);
    assert_int_equal(mk_inc_step(s, "r2", 2, &p, &bad, lb, 1, NULL, 0, 20 * MIN, NULL, NULL), MK_OK);
    mk_incident *l;
    size_t n;
    mk_inc_filter f = {0};
    f.state_mask = 1u << MK_INC_FIRING;
    assert_int_equal(mk_inc_list(s, &f, &l, &n, NULL), MK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(l[0].rule, "r2");
    mk_incidents_free(l, n);
    memset(&f, 0, sizeof f);
    f.match = la;
    f.n_match = 1;
    assert_int_equal(mk_inc_list(s, &f, &l, &n, NULL), MK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(l[0].rule, "r1");
    mk_incidents_free(l, n);
    memset(&f, 0, sizeof f);
    f.from_ms = 15 * MIN; /* r1 ended at 10 min */
    assert_int_equal(mk_inc_list(s, &f, &l, &n, NULL), MK_OK);
    assert_int_equal(n, 1);
    mk_incidents_free(l, n);
    memset(&f, 0, sizeof f);
    f.rule = "r1";
    assert_int_equal(mk_inc_list(s, &f, &l, &n, NULL), MK_OK);
    assert_int_equal(n, 1);
    mk_incidents_free(l, n);
    close_store(s);
}

/* fsyncs of the incident log, counted by test_batch's environment. */
static int n_fsyncs;
static int count_fsync(mk_env *env, int fd)
{
    n_fsyncs++;
    return mk_env_default()->fsync(env, fd);
}

/* A batch: 200 series fire in one evaluation. Nothing is fsynced until the
 * end and then once; the outbox hands out no record before that fsync; a
 * copy of the log taken without closing (a killed process) holds all 200
 * incidents and their records. */
static void test_batch(void **state)
{
    (void)state;
    char *dir = logdir("inc-batch");
    mk_env env = *mk_env_default();
    env.fsync = count_fsync;
    mk_inc_store_opts o = {0};
    o.log = count_log;
    mk_inc_store *s = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_inc_store_open(&env, dir, &o, &s, &d), MK_OK);
    mk_inc_policy p = policy(1, 1);
    mk_inc_obs ob = {1, 0, MK_SEV_CRITICAL, 150, 100, "value above 100"};
    mk_label labels[] = {{"service", "api"}};
    n_fsyncs = 0;
    mk_inc_store_batch_begin(s);
    for (uint64_t id = 1; id <= 200; id++) {
        mk_inc_step_result r;
        assert_int_equal(mk_inc_step(s, "storm", id, &p, &ob, labels, 1, NULL, 0, MIN, &r, &d), MK_OK);
        assert_int_equal(r.to, MK_INC_FIRING);
        assert_int_equal(r.n_notified, 1);
    }
    assert_int_equal(n_fsyncs, 0);
    assert_int_equal(outbox_count(s, NULL), 0); /* not durable yet: not handed out */
    assert_int_equal(mk_inc_store_batch_end(s, &d), MK_OK);
    assert_int_equal(n_fsyncs, 1);
    assert_int_equal(outbox_count(s, NULL), 200);
    /* outside a batch every change is fsynced at once again */
    mk_inc_obs clear = {0, 1, MK_SEV_CRITICAL, 50, 100, "fine"};
    mk_inc_step_result r;
    assert_int_equal(mk_inc_step(s, "storm", 1, &p, &clear, labels, 1, NULL, 0, 2 * MIN, &r, &d), MK_OK);
    assert_int_equal(r.to, MK_INC_RESOLVED);
    assert_int_equal(n_fsyncs, 2);
    assert_int_equal(outbox_count(s, NULL), 201);
    char copy[4200], from[4300], to[4300];
    snprintf(copy, sizeof copy, "%s-copy", dir);
    mk_test_rmrf(copy);
    assert_int_equal(mkdir(copy, 0755), 0);
    snprintf(from, sizeof from, "%s/incidents.log", dir);
    snprintf(to, sizeof to, "%s/incidents.log", copy);
    copy_file(from, to, file_size(from));
    mk_inc_store *s2 = NULL;
    assert_int_equal(mk_inc_store_open(NULL, copy, &o, &s2, &d), MK_OK);
    assert_int_equal(outbox_count(s2, NULL), 201);
    size_t n_open = 0;
    mk_inc_store_stats(s2, &n_open, NULL, NULL);
    assert_int_equal(n_open, 199);
    close_store(s2);
    close_store(s);
    mk_test_rmrf(copy);
    mk_test_rmrf(dir);
    free(dir);
}

/* An fsync failure: the step fails, nothing changes in memory, and the
 * next evaluation makes the transition. */
static void test_io_error_rolls_back(void **state)
{
    (void)state;
    char *dir = logdir("inc-ioerr");
    mk_faultenv fe;
    mk_faultenv_init(&fe);
    mk_inc_store *s = NULL;
    assert_int_equal(mk_inc_store_open(&fe.env, dir, NULL, &s, NULL), MK_OK);
    mk_inc_policy p = policy(1, 1);
    mk_inc_obs bad = {1, 0, MK_SEV_WARNING, 5, 1, "x"};
    mk_faultenv_arm(&fe, MK_FAULT_FSYNC, 1, 5 /* EIO */);
    mk_diag d = {0};
    assert_int_equal(mk_inc_step(s, "r", 1, &p, &bad, NULL, 0, NULL, 0, 0, NULL, &d), MK_EIO);
    assert_int_equal(mk_inc_machine_state(s, "r", 1), MK_INC_OK);
    assert_int_equal(outbox_count(s, NULL), 0);
    mk_inc_step_result r;
    assert_int_equal(mk_inc_step(s, "r", 1, &p, &bad, NULL, 0, NULL, 0, MIN, &r, &d), MK_OK);
    assert_int_equal(r.to, MK_INC_FIRING);
    assert_int_equal(r.incident_id, 1);
    assert_int_equal(outbox_count(s, NULL), 1);
    close_store(s);
    s = NULL;
    assert_int_equal(mk_inc_store_open(NULL, dir, NULL, &s, NULL), MK_OK);
    assert_int_equal(outbox_count(s, NULL), 1);
    close_store(s);
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_cycle),        cmocka_unit_test(test_pending_cancel),
        cmocka_unit_test(test_for_duration),      cmocka_unit_test(test_hysteresis),
        cmocka_unit_test(test_dedup),             cmocka_unit_test(test_repeat),
        cmocka_unit_test(test_cooldown),          cmocka_unit_test(test_escalation),
        cmocka_unit_test(test_flapping),          cmocka_unit_test(test_flap_percentage),
        cmocka_unit_test(test_restart_each_state), cmocka_unit_test(test_crash_image),
        cmocka_unit_test(test_outbox),            cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_corrupt_and_foreign), cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_list_filter),       cmocka_unit_test(test_io_error_rolls_back), cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
