/*
 * tools/cli.h — the sub-commands of `meerkat` and the few helpers they
 * share. Each mk_cli_<name> gets argv with argv[0] = the sub-command's name
 * and returns the process exit status (see tools/meerkat.c).
 */
#ifndef MK_CLI_H
#define MK_CLI_H

#include <stdint.h>

#include "meerkat/meerkat.h"

int mk_cli_import(int argc, char **argv);
int mk_cli_inspect(int argc, char **argv);
int mk_cli_verify(int argc, char **argv);
int mk_cli_dump(int argc, char **argv);
int mk_cli_query(int argc, char **argv);  /* tools/cli_query.c */
int mk_cli_serve(int argc, char **argv);  /* tools/cli_serve.c */
int mk_cli_config(int argc, char **argv); /* tools/cli_serve.c: `config check FILE` */
int mk_cli_nab(int argc, char **argv);    /* tools/cli_detect.c */
int mk_cli_score(int argc, char **argv);  /* tools/cli_detect.c */
int mk_cli_detect(int argc, char **argv); /* tools/cli_rules.c */
int mk_cli_notify(int argc, char **argv); /* tools/cli_notify.c */

/* Exit statuses. */
enum { MK_EXIT_OK = 0, MK_EXIT_PROBLEMS = 1, MK_EXIT_USAGE = 2, MK_EXIT_FATAL = 3 };

/* Parses a time given as integer milliseconds since the epoch, an integer
 * with a unit suffix (s, ms, us, ns), or RFC 3339 (2026-01-02T03:04:05Z,
 * fractional seconds and +hh:mm offsets allowed). Returns 0 on success. */
int mk_cli_parse_time(const char *s, int64_t *ms);

/* Parses s|ms|us|ns; returns 0 on success. */
int mk_cli_parse_precision(const char *s, mk_precision *p);

/* Log sink printing "meerkat: warning: ..." to stderr. */
void mk_cli_log(void *ctx, int level, const char *msg);

/* Opens dir read-only (beside a running server, no lock taken); on failure
 * prints "meerkat CMD: cannot open DIR: why" and returns NULL. The caller
 * closes the handle with mk_db_close. */
struct mk_db *mk_cli_open_read_only(const char *cmd, const char *dir);

#endif
