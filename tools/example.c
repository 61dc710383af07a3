/* tools/example.c — placeholder. */
#include <stdio.h>
#include "meerkat/meerkat.h"
int main(void) { printf("%s\n", mk_version()); return 0; }
