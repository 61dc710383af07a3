/*
 * tools/cli_query.c — `meerkat query`: run InfluxQL over a data directory.
 *
 *   meerkat query --data DIR [--format table|csv|json] [--epoch UNIT|rfc3339]
 *                 [--pretty] [--db NAME] ["QUERY"]
 *
 * The directory is opened read-only, which takes no lock (engine/db.c takes
 * the LOCK file only for read-write opens), so this works beside a running
 * `meerkat serve`; it sees what was sealed into blocks and what the WAL
 * held when it opened.
 *
 * The query comes from the arguments (joined with spaces), else from
 * standard input: all of it when stdin is not a terminal, or line by line
 * in an interactive shell (libedit) when it is. Output goes to stdout
 * through mk_qresult_write; times are integers in --epoch (default ns,
 * like the influx CLI) or RFC 3339 with --epoch rfc3339.
 *
 * Exit status (one-shot mode): 0 every statement succeeded; 1 a statement
 * failed (its error is in the output and on stderr); 2 usage; 3 the
 * directory cannot be opened or the query does not parse
 * ("meerkat query: error at 1:27: ...").
 *
 * Shell: a statement runs when a line ends with ';' or when an empty line
 * follows text; otherwise the next line continues it (prompt "     -> ").
 * Commands on a line of their own: \q, quit, exit (or Ctrl-D) leave;
 * \format json|csv|table, \epoch UNIT|rfc3339, \pretty, use NAME (or
 * \db NAME), \h. History: ~/.meerkat_history, the last HISTORY_MAX entries.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <editline/readline.h>

#include "engine/util.h"
#include "meerkat/query.h"
#include "tools/cli.h"

#define HISTORY_MAX 1000

typedef struct qcfg {
    mk_qfmt format;
    const char *epoch; /* NULL = RFC 3339 */
    int is_pretty;
    char db[256];
} qcfg;

static void help(FILE *f)
{
    fprintf(f, "usage: meerkat query --data DIR [OPTIONS] [\"QUERY\"]\n\n"
               "Runs InfluxQL over a data directory (opened read-only, so a running\n"
               "server may keep using it) and prints the answer. Without QUERY the\n"
               "query is read from standard input, or, on a terminal, an interactive\n"
               "shell starts (\\h there lists its commands).\n\n"
               "  --data DIR       the data directory\n"
               "  --format FMT     table (default: aligned columns, like the influx CLI),\n"
               "                   csv (InfluxDB's CSV) or json (InfluxDB's /query JSON)\n"
               "  --epoch UNIT     times as integers in ns (default), u, ms, s, m or h;\n"
               "                   rfc3339 prints RFC 3339 instead\n"
               "  --pretty         indented JSON\n"
               "  --db NAME        the database the query runs against (db= of /query)\n\n"
               "exit status: 0 all statements succeeded, 1 a statement failed,\n"
               "2 usage error, 3 cannot open the directory or the query does not parse\n");
}

static void shell_help(void)
{
    printf("Statements run when a line ends with ';' or after an empty line.\n"
           "  \\format json|csv|table   output format\n"
           "  \\epoch ns|u|ms|s|m|h|rfc3339\n"
           "                           how times are printed\n"
           "  \\pretty                  indented JSON on or off\n"
           "  use NAME, \\db NAME       the database queries run against\n"
           "  \\h                       this help\n"
           "  \\q, quit, exit, Ctrl-D   leave\n"
           "History is kept in ~/.meerkat_history.\n");
}

static int parse_format(const char *s, mk_qfmt *f)
{
    if (!strcmp(s, "table") || !strcmp(s, "column")) *f = MK_QFMT_TABLE;
    else if (!strcmp(s, "csv")) *f = MK_QFMT_CSV;
    else if (!strcmp(s, "json")) *f = MK_QFMT_JSON;
    else return -1;
    return 0;
}

/* The epoch string mk_qout_opts wants (static), or NULL for RFC 3339. */
static int parse_epoch(const char *s, const char **epoch)
{
    static const char *const units[] = {"ns", "u", "us", "ms", "s", "m", "h"};
    if (!strcmp(s, "rfc3339")) {
        *epoch = NULL;
        return 0;
    }
    if (!strcmp(s, "n")) s = "ns";
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(s, units[i])) {
            *epoch = units[i];
            return 0;
        }
    return -1;
}

static mk_err to_stdout(void *ctx, const char *p, size_t n)
{
    (void)ctx;
    return fwrite(p, 1, n, stdout) == n ? MK_OK : MK_EIO;
}

/* Runs text and prints the answer. Returns the exit status one-shot mode
 * uses: MK_EXIT_OK, MK_EXIT_PROBLEMS (a statement failed) or
 * MK_EXIT_FATAL (no answer: parse error, output failure, ...). */
static int run_query(mk_db *db, const qcfg *cfg, const char *text, size_t len, int is_shell)
{
    mk_query_opts qo = {.db = cfg->db[0] ? cfg->db : NULL};
    mk_qresult *r = NULL;
    mk_diag d = {0};
    mk_err rc = mk_query_exec(db, text, len, &qo, &r, &d);
    if (rc) {
        if (is_shell) printf("ERR: %s\n", d.msg);
        else fprintf(stderr, "meerkat query: %s\n", d.msg);
        return MK_EXIT_FATAL;
    }
    int status = MK_EXIT_OK;
    mk_qout_opts oo = {.format = cfg->format, .epoch = cfg->epoch, .is_pretty = cfg->is_pretty};
    rc = mk_qresult_write(r, &oo, to_stdout, NULL, &d);
    if (fflush(stdout) != 0 && rc == MK_OK) rc = mk_diag_set(&d, MK_EIO, "writing to stdout: %s", strerror(errno));
    if (rc) {
        fprintf(stderr, "meerkat query: %s\n", d.msg);
        status = MK_EXIT_FATAL;
    }
    for (uint32_t i = 0; i < mk_qresult_n_stmts(r); i++) {
        const mk_qstmt *st = mk_qresult_stmt(r, i);
        if (!st->error) continue;
        if (!is_shell) fprintf(stderr, "meerkat query: statement %u: %s\n", (unsigned)st->statement_id, st->error);
        if (status == MK_EXIT_OK) status = MK_EXIT_PROBLEMS;
    }
    mk_qresult_free(r);
    return status;
}

/* ---- the shell -------------------------------------------------------- */

static char *history_path(void)
{
    const char *home = getenv("HOME");
    if (!home || !*home) return NULL;
    size_t n = strlen(home) + sizeof "/.meerkat_history";
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/.meerkat_history", home);
    return p;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

/* A shell command on its own line; returns 1 when handled, -1 to leave. */
static int shell_command(qcfg *cfg, char *line)
{
    char *arg = strpbrk(line, " \t");
    if (arg) {
        *arg++ = 0;
        arg = trim(arg);
        if (*arg && arg[strlen(arg) - 1] == ';') arg[strlen(arg) - 1] = 0;
    }
    if (!strcmp(line, "\\q") || !strcmp(line, "quit") || !strcmp(line, "exit") ||
        !strcmp(line, "quit;") || !strcmp(line, "exit;"))
        return -1;
    if (!strcmp(line, "\\h") || !strcmp(line, "help") || !strcmp(line, "\\?")) {
        shell_help();
        return 1;
    }
    if (!strcmp(line, "\\format")) {
        if (!arg || parse_format(arg, &cfg->format)) printf("ERR: \\format takes json, csv or table\n");
        return 1;
    }
    if (!strcmp(line, "\\epoch")) {
        if (!arg || parse_epoch(arg, &cfg->epoch)) printf("ERR: \\epoch takes ns, u, ms, s, m, h or rfc3339\n");
        return 1;
    }
    if (!strcmp(line, "\\pretty")) {
        cfg->is_pretty = !cfg->is_pretty;
        printf("pretty JSON %s\n", cfg->is_pretty ? "on" : "off");
        return 1;
    }
    if (!strcmp(line, "\\db") || !strcasecmp(line, "use")) {
        if (!arg || !*arg || strlen(arg) >= sizeof cfg->db) printf("ERR: %s takes a database name\n", line);
        else {
            snprintf(cfg->db, sizeof cfg->db, "%s", arg);
            printf("Using database %s\n", cfg->db);
        }
        return 1;
    }
    if (line[0] == '\\') {
        printf("ERR: unknown command %s (\\h lists them)\n", line);
        return 1;
    }
    if (arg) arg[-1] = ' '; /* not a command: put the line back together */
    return 0;
}

static int shell(mk_db *db, qcfg *cfg)
{
    char *hist = history_path();
    using_history();
    stifle_history(HISTORY_MAX);
    if (hist) read_history(hist);
    printf("Meerkat %s shell. \\h for help, \\q to leave.\n", mk_version());
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        char *line = readline(len ? "     -> " : "meerkat> ");
        if (!line) { /* Ctrl-D */
            printf("\n");
            break;
        }
        char *t = trim(line);
        if (len == 0) {
            if (!*t) {
                free(line);
                continue;
            }
            char cmd[1024];
            snprintf(cmd, sizeof cmd, "%s", t);
            int c = shell_command(cfg, cmd);
            if (c) {
                add_history(t);
                free(line);
                if (c < 0) break;
                continue;
            }
        }
        int is_blank = !*t;
        size_t n = strlen(t);
        if (len + n + 2 > cap) {
            size_t nc = (len + n + 2) * 2;
            char *p = realloc(buf, nc);
            if (!p) {
                free(line);
                fprintf(stderr, "meerkat query: out of memory\n");
                break;
            }
            buf = p;
            cap = nc;
        }
        if (len && !is_blank) buf[len++] = ' ';
        memcpy(buf + len, t, n);
        len += n;
        buf[len] = 0;
        int is_done = is_blank || (n && t[n - 1] == ';');
        free(line);
        if (!is_done) continue;
        add_history(buf);
        run_query(db, cfg, buf, len, 1);
        len = 0;
    }
    if (hist) {
        write_history(hist);
        history_truncate_file(hist, HISTORY_MAX);
    }
    free(hist);
    free(buf);
    return MK_EXIT_OK;
}

/* ---- the command ------------------------------------------------------ */

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    while (p) {
        if (n + 1 >= cap) {
            char *q = realloc(p, cap * 2);
            if (!q) break;
            p = q;
            cap *= 2;
        }
        size_t k = fread(p + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) {
            if (ferror(f)) break;
            p[n] = 0;
            *len = n;
            return p;
        }
    }
    free(p);
    return NULL;
}

int mk_cli_query(int argc, char **argv)
{
    const char *dir = NULL;
    qcfg cfg = {.format = MK_QFMT_TABLE, .epoch = "ns"};
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"format", required_argument, 0, 'f'},
                                         {"epoch", required_argument, 0, 'e'},
                                         {"precision", required_argument, 0, 'e'},
                                         {"pretty", no_argument, 0, 'p'},
                                         {"db", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:f:e:pb:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'f':
            if (parse_format(optarg, &cfg.format)) {
                fprintf(stderr, "meerkat query: --format: '%s' is not table, csv or json\n", optarg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'e':
            if (parse_epoch(optarg, &cfg.epoch)) {
                fprintf(stderr, "meerkat query: --epoch: '%s' is not ns, u, ms, s, m, h or rfc3339\n", optarg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'p': cfg.is_pretty = 1; break;
        case 'b':
            if (strlen(optarg) >= sizeof cfg.db) {
                fprintf(stderr, "meerkat query: --db: name too long\n");
                return MK_EXIT_USAGE;
            }
            snprintf(cfg.db, sizeof cfg.db, "%s", optarg);
            break;
        case 'h': help(stdout); return MK_EXIT_OK;
        default: help(stderr); return MK_EXIT_USAGE;
        }
    }
    if (!dir) {
        fprintf(stderr, "meerkat query: --data DIR is required\n");
        help(stderr);
        return MK_EXIT_USAGE;
    }

    /* the query text: the arguments, else stdin (unless it is a terminal) */
    char *text = NULL;
    size_t len = 0;
    int is_shell = 0;
    if (optind < argc) {
        for (int i = optind; i < argc; i++) len += strlen(argv[i]) + 1;
        if (!(text = malloc(len + 1))) {
            fprintf(stderr, "meerkat query: out of memory\n");
            return MK_EXIT_FATAL;
        }
        len = 0;
        for (int i = optind; i < argc; i++) {
            size_t n = strlen(argv[i]);
            if (i > optind) text[len++] = ' ';
            memcpy(text + len, argv[i], n);
            len += n;
        }
        text[len] = 0;
    } else if (isatty(STDIN_FILENO)) {
        is_shell = 1;
    } else if (!(text = read_all(stdin, &len))) {
        fprintf(stderr, "meerkat query: reading the query from stdin: %s\n", strerror(errno));
        return MK_EXIT_FATAL;
    }

    mk_db *db = mk_cli_open_read_only("query", dir);
    if (!db) {
        free(text);
        return MK_EXIT_FATAL;
    }
    int status = is_shell ? shell(db, &cfg) : run_query(db, &cfg, text, len, 0);
    mk_db_close(db, NULL);
    free(text);
    return status;
}
