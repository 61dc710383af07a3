/* tools/cli_serve.c — placeholder until `meerkat serve` lands. */
#include <stdio.h>
#include "tools/cli.h"
int mk_cli_serve(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "meerkat serve: not implemented yet\n"); return MK_EXIT_FATAL; }
