/*
 * notify/send.h — one message to one channel: the payloads (Alertmanager
 * webhook v4, Kener alert, Alertmanager /api/v2/alerts, template, e-mail)
 * and the transports (libcurl HTTP and SMTP, fork+execve for commands).
 * Pure functions of a message view; no state, no locks: called by the
 * notifier's workers outside its mutex.
 */
#ifndef MK_NOTIFY_SEND_H
#define MK_NOTIFY_SEND_H

#include <jansson.h>

#include "notify.h"

typedef struct mk_notify_alert_view {
    const mk_outbox_rec *rec;  /* borrowed */
    char fp_hex[17];           /* fingerprint, 16 hex digits */
    int is_new;                /* a change this message reports (not a repeat of an active alert) */
} mk_notify_alert_view;

typedef struct mk_notify_msg_view {
    const mk_notify_channel *ch;       /* borrowed */
    const char *group_key;             /* borrowed */
    const mk_label *group_labels;      /* borrowed */
    size_t n_group_labels;
    const mk_notify_alert_view *alerts;
    size_t n_alerts;
    int64_t now_ms;
    int is_test;                       /* `meerkat notify test` */
} mk_notify_msg_view;

typedef struct mk_notify_result {
    int status;                        /* HTTP status, exit status, SMTP reply; -1 none */
    char err[256];                     /* "" on success */
    char output[512];                  /* command output / response body head, printable */
} mk_notify_result;

/* 1 when the alert reports a resolve. */
int mk_notify_is_resolved(const mk_outbox_rec *r);

/* RFC 3339 UTC with milliseconds into out (>= 32 bytes); ms <= 0 gives
 * Alertmanager's zero time "0001-01-01T00:00:00Z". */
void mk_notify_time(int64_t ms, char *out, size_t cap);

/* Payloads (new references; NULL on OOM). */
json_t *mk_notify_payload_webhook(const mk_notify_msg_view *m);
json_t *mk_notify_payload_kener(const mk_notify_msg_view *m, size_t i);
json_t *mk_notify_payload_am_alerts(const mk_notify_msg_view *m);

/* Renders template t for m with escaping esc into out; -1 with err set on a
 * template error. Placeholders: see README "Notifications". */
int mk_notify_render(const mk_notify_msg_view *m, const char *t, mk_notify_escape esc, mk_buf *out, char *err,
                     size_t err_cap);

/* The whole e-mail (headers and a multipart/alternative plain + HTML body). */
int mk_notify_email_message(const mk_notify_msg_view *m, mk_buf *out, char *err, size_t err_cap);

/* Sends m through m->ch (blocking, bounded by the channel's timeout).
 * Returns 0 when the channel accepted it. */
int mk_notify_send(const mk_notify_msg_view *m, mk_notify_result *res);

#endif
