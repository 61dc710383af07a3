/* tools/cli_query.c — placeholder until `meerkat query` lands. */
#include <stdio.h>
#include "tools/cli.h"
int mk_cli_query(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "meerkat query: not implemented yet\n"); return MK_EXIT_FATAL; }
