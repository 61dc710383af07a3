/*
 * notify/tmpl.h — the body templates of template channels: text with
 * {{name}} placeholders (spaces inside the braces allowed), each replaced by
 * a value escaped for where it lands (a JSON string's inside, a URL/form
 * component, or as is). Names are words of letters, digits, '_', '-' and '.'
 * ("labels.service"). There is no logic in templates: no loops, no
 * conditionals; "text" gives a ready summary of every alert of a message.
 * A "{{" with no "}}" after it, or an empty or malformed name, is an error
 * naming its line and column.
 */
#ifndef MK_NOTIFY_TMPL_H
#define MK_NOTIFY_TMPL_H

#include <stddef.h>

#include "notify.h"

/* Looks up name[0..n): the value (borrowed until the render returns), or
 * NULL when the name is unknown (rendered as an error). */
typedef const char *(*mk_notify_tmpl_lookup)(void *ctx, const char *name, size_t n);

/*
 * Renders tmpl[0..n) into out (appended; the caller frees). lookup NULL =
 * only check the syntax (every name counts as known). On an error returns
 * -1 with "LINE:COL: why" in err (err_cap bytes); out then holds garbage.
 * Returns -2 when out of memory.
 */
int mk_notify_tmpl_render(const char *tmpl, size_t n, mk_notify_escape esc, mk_notify_tmpl_lookup lookup,
                          void *ctx, mk_buf *out, char *err, size_t err_cap);

/* Appends s[0..n) escaped as esc. 0, or -2 when out of memory. */
int mk_notify_escape_append(mk_buf *out, const char *s, size_t n, mk_notify_escape esc);

#endif
