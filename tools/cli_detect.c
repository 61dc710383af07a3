/* tools/cli_detect.c — placeholder until `meerkat nab` and `meerkat score` land. */
#include <stdio.h>
#include "tools/cli.h"
int mk_cli_nab(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "meerkat nab: not implemented yet\n"); return MK_EXIT_FATAL; }
int mk_cli_score(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "meerkat score: not implemented yet\n"); return MK_EXIT_FATAL; }
