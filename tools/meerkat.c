/* tools/meerkat.c — the `meerkat` command (placeholder until the CLI lands). */
#include <stdio.h>
#include <string.h>

#include "meerkat/meerkat.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("meerkat %s\n", mk_version());
        return 0;
    }
    fprintf(stderr, "usage: meerkat --version\n");
    return 2;
}
