/* query/arena.c — see arena.h. Blocks double from 4 KiB up to 1 MiB; a
 * request larger than a block gets a block of its own. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    struct block *prev;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} block;

struct mk_arena {
    block *head;
    size_t next_cap;
};

mk_err mk_arena_new(mk_arena **out)
{
    mk_arena *a = calloc(1, sizeof *a);
    if (!a) return MK_ENOMEM;
    a->next_cap = 4096;
    *out = a;
    return MK_OK;
}

void *mk_arena_alloc(mk_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0 || n > SIZE_MAX / 2) return NULL;
    block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = a->next_cap;
        if (cap < n) cap = n;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->prev = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
        if (a->next_cap < ((size_t)1 << 20)) a->next_cap *= 2;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *mk_arena_strndup(mk_arena *a, const char *s, size_t n)
{
    char *p = mk_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

void mk_arena_free(mk_arena *a)
{
    if (!a) return;
    block *b = a->head;
    while (b) {
        block *prev = b->prev;
        free(b);
        b = prev;
    }
    free(a);
}
