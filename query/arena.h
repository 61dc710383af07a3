/*
 * query/arena.h — bump allocator for one parse.
 *
 * Every AST node and string of a query comes from one arena, so a query is
 * freed with one call and a parse that fails half-way leaks nothing.
 * Memory is zeroed and 16-byte aligned. Not thread-safe (one per parse).
 */
#ifndef MK_QUERY_ARENA_H
#define MK_QUERY_ARENA_H

#include <stddef.h>

#include "meerkat/error.h"

typedef struct mk_arena mk_arena;

mk_err mk_arena_new(mk_arena **out);

/* NULL when out of memory (or n absurdly large). */
void *mk_arena_alloc(mk_arena *a, size_t n);

/* Copies n bytes and adds a NUL; NULL when out of memory. */
char *mk_arena_strndup(mk_arena *a, const char *s, size_t n);

/* Frees every block; NULL is fine. */
void mk_arena_free(mk_arena *a);

#endif
