/*
 * tools/cli_import.c — `meerkat import`: bulk-load line protocol.
 *
 * The database is opened without a WAL (an offline load has nothing to
 * recover: a failed import is simply re-run) and every sample is sealed
 * into blocks before the command exits, so no WAL is left to replay.
 * Input is fed to mk_db_write_lp in pieces cut at line ends; line numbers in
 * error reports count from the start of each file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli.h"

#define PIECE_BYTES (8u << 20)
#define MAX_SHOWN_ERRORS 10

typedef struct import_state {
    const char *file;
    uint64_t line_base; /* lines before the current piece */
    uint64_t n_errors;
} import_state;

static void on_error(void *ctx, uint64_t line, uint32_t column, const char *reason)
{
    import_state *st = ctx;
    if (st->n_errors++ < MAX_SHOWN_ERRORS)
        fprintf(stderr, "%s:%" PRIu64 ":%u: %s\n", st->file, st->line_base + line, column, reason);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t c = 0;
    const char *end = p + n;
    while ((p = memchr(p, '\n', (size_t)(end - p)))) { c++; p++; }
    return c;
}

/* Feeds buf[0..len) piece by piece. Returns an mk_err of the db. */
static mk_err feed(mk_db *db, const char *buf, size_t len, mk_precision prec, import_state *st,
                   mk_write_stats *tot, mk_diag *diag)
{
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (n > PIECE_BYTES) {
            n = PIECE_BYTES;
            const char *nl = memchr(buf + off + n, '\n', len - off - n);
            n = nl ? (size_t)(nl - (buf + off)) + 1 : len - off;
        }
        mk_write_stats ws;
        mk_err rc = mk_db_write_lp(db, buf + off, n, prec, now_ms(), &ws, on_error, st, diag);
        tot->n_lines += ws.n_lines;
        tot->n_samples_accepted += ws.n_samples_accepted;
        tot->n_samples_rejected += ws.n_samples_rejected;
        tot->n_errors += ws.n_errors;
        if (rc) return rc;
        st->line_base += count_lines(buf + off, n);
        off += n;
    }
    return MK_OK;
}

/* Reads a stream (standard input, a pipe, a FIFO) in pieces cut at line
 * ends. */
static mk_err import_stream(mk_db *db, int fd, mk_precision prec, import_state *st, mk_write_stats *tot,
                            mk_diag *diag)
{
    size_t cap = PIECE_BYTES + 65536, len = 0;
    char *buf = malloc(cap);
    mk_err rc = MK_OK;
    if (!buf) return MK_ENOMEM;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { fprintf(stderr, "meerkat import: reading %s: %s\n", st->file, strerror(errno)); rc = MK_EIO; break; }
        len += (size_t)r;
        if (r == 0 || len == cap) {
            /* hand over whole lines; keep the partial last line */
            size_t cut = len;
            if (r != 0) {
                while (cut > 0 && buf[cut - 1] != '\n') cut--;
                if (cut == 0) { /* one line longer than the buffer: grow */
                    char *p = realloc(buf, cap * 2);
                    if (!p) { rc = MK_ENOMEM; break; }
                    buf = p;
                    cap *= 2;
                    continue;
                }
            }
            rc = feed(db, buf, cut, prec, st, tot, diag);
            if (rc) break;
            memmove(buf, buf + cut, len - cut);
            len -= cut;
            if (r == 0) break;
        }
    }
    free(buf);
    return rc;
}

static mk_err import_file(mk_db *db, const char *path, mk_precision prec, int n_threads,
                          import_state *st, mk_write_stats *tot, mk_diag *diag)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "meerkat import: %s: %s\n", path, strerror(errno));
        return MK_EIO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) { close(fd); return MK_EIO; }
    mk_err rc = MK_OK;
    if (!S_ISREG(sb.st_mode)) { /* a pipe, FIFO or <(zcat ...): no size, no mmap */
        rc = import_stream(db, fd, prec, st, tot, diag);
    } else if (sb.st_size > 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "meerkat import: %s: cannot map: %s\n", path, strerror(errno));
            close(fd);
            return MK_EIO;
        }
        madvise(p, (size_t)sb.st_size, MADV_SEQUENTIAL);
        mk_write_stats ws;
        rc = mk_db_write_lp_parallel(db, p, (size_t)sb.st_size, prec, now_ms(), n_threads, &ws, on_error, st, diag);
        tot->n_lines += ws.n_lines;
        tot->n_samples_accepted += ws.n_samples_accepted;
        tot->n_samples_rejected += ws.n_samples_rejected;
        tot->n_errors += ws.n_errors;
        munmap(p, (size_t)sb.st_size);
    }
    close(fd);
    return rc;
}

static void help(FILE *f)
{
    fprintf(f,
            "usage: meerkat import --data DIR [--precision s|ms|us|ns] [FILE|-]...\n\n"
            "Loads InfluxDB line protocol from each FILE (or standard input for '-' or\n"
            "no FILE) into the data directory DIR, created if missing. Lines without a\n"
            "timestamp get the current time. Bad lines and string fields are reported\n"
            "(the first %d, as FILE:LINE:COLUMN: reason) and skipped; every valid line\n"
            "is kept. When the command exits, everything accepted is sealed into\n"
            "blocks: there is no WAL left to replay.\n\n"
            "  --data DIR         data directory (required)\n"
            "  --precision P      timestamp unit of the input: s, ms, us or ns (default ns)\n"
            "  --block-span-ms N  time span of a block (default 7200000, 2 h)\n"
            "  --threads N        parser threads for files (default: the number of CPUs, at most 8)\n"
            "  --help             this text\n\n"
            "Exit status: 0 all lines loaded, 1 some lines or fields rejected,\n"
            "2 usage error, 3 the load failed (I/O error, ...).\n",
            MAX_SHOWN_ERRORS);
}

int mk_cli_import(int argc, char **argv)
{
    const char *dir = NULL;
    mk_precision prec = MK_PRECISION_NS;
    int64_t span = 0;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = n_cpu > 1 ? (int)(n_cpu > 8 ? 8 : n_cpu) : 1;
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"threads", required_argument, 0, 'j'},
                                         {"precision", required_argument, 0, 'p'},
                                         {"block-span-ms", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:p:j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'p':
            if (mk_cli_parse_precision(optarg, &prec)) {
                fprintf(stderr, "meerkat import: --precision must be s, ms, us or ns, not '%s'\n", optarg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'b': span = strtoll(optarg, NULL, 10); break;
        case 'j':
            n_threads = atoi(optarg);
            if (n_threads < 1 || n_threads > 64) {
                fprintf(stderr, "meerkat import: --threads must be 1..64\n");
                return MK_EXIT_USAGE;
            }
            break;
        case 'h': help(stdout); return MK_EXIT_OK;
        default: help(stderr); return MK_EXIT_USAGE;
        }
    }
    if (!dir) {
        fprintf(stderr, "meerkat import: --data DIR is required\n");
        help(stderr);
        return MK_EXIT_USAGE;
    }
    mk_options o;
    mk_options_init(&o);
    o.has_wal = 0;
    o.fsync = MK_FSYNC_OFF;
    o.log = mk_cli_log;
    if (span > 0) o.block_span_ms = span;
    mk_db *db = NULL;
    mk_diag diag = {0};
    mk_err rc = mk_db_open(dir, &o, &db, &diag);
    if (rc) {
        fprintf(stderr, "meerkat import: cannot open %s: %s\n", dir, diag.msg);
        return MK_EXIT_FATAL;
    }
    diag = (mk_diag){0}; /* mk_db_open may leave a note (index.mki missing) even on success */
    double t0 = now_s();
    mk_write_stats tot = {0};
    import_state st = {0};
    if (optind >= argc) {
        st.file = "<stdin>";
        rc = import_stream(db, 0, prec, &st, &tot, &diag);
    }
    for (int i = optind; i < argc && !rc; i++) {
        st.file = argv[i];
        st.line_base = 0;
        if (strcmp(argv[i], "-") == 0) {
            st.file = "<stdin>";
            rc = import_stream(db, 0, prec, &st, &tot, &diag);
        } else {
            rc = import_file(db, argv[i], prec, n_threads, &st, &tot, &diag);
        }
    }
    if (rc && diag.msg[0]) fprintf(stderr, "meerkat import: %s\n", diag.msg);
    mk_diag cd = {0};
    mk_err crc = mk_db_close(db, &cd);
    if (crc) fprintf(stderr, "meerkat import: sealing the data failed: %s\n", cd.msg);
    double dt = now_s() - t0;
    if (st.n_errors > MAX_SHOWN_ERRORS)
        fprintf(stderr, "... and %" PRIu64 " more errors\n", st.n_errors - MAX_SHOWN_ERRORS);
    printf("lines: %" PRIu64 "\nsamples accepted: %" PRIu64 "\nsamples rejected: %" PRIu64
           "\nerrors: %" PRIu64 "\nseconds: %.3f\nrate: %.0f samples/s\n",
           tot.n_lines, tot.n_samples_accepted, tot.n_samples_rejected, tot.n_errors, dt,
           dt > 0 ? tot.n_samples_accepted / dt : 0.0);
    if (rc || crc) return MK_EXIT_FATAL;
    return tot.n_errors ? MK_EXIT_PROBLEMS : MK_EXIT_OK;
}
