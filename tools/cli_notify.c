/*
 * tools/cli_notify.c — `meerkat notify test --config FILE CHANNEL`: sends one
 * test message (rule "meerkat-test", labels service/instance) through a
 * channel of a `meerkat serve` config, now, without a server or outbox,
 * and prints what the channel answered: the HTTP status (or command exit
 * status, SMTP reply) and the error, if any. Exit 0 when the channel took
 * the message, 1 when it refused it, 2 on a usage or config error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify.h"
#include "tools/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: meerkat notify test --config FILE CHANNEL\n\n"
               "Sends a test notification through CHANNEL (a name under channels: in FILE)\n"
               "and prints the status code and error. Exit 0 when it was accepted.\n"
               "`meerkat notify list --config FILE` lists the channels.\n");
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb || cap > (64u << 20)) {
                free(nb ? nb : buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (!got) break;
    }
    fclose(f);
    buf[len] = 0;
    *n = len;
    return buf;
}

int mk_cli_notify(int argc, char **argv)
{
    const char *cfg_path = NULL, *verb = NULL, *channel = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return MK_EXIT_OK;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            cfg_path = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            cfg_path = argv[i] + 9;
        } else if (!verb) {
            verb = argv[i];
        } else if (!channel) {
            channel = argv[i];
        } else {
            usage(stderr);
            return MK_EXIT_USAGE;
        }
    }
    int is_list = verb && !strcmp(verb, "list");
    if (!verb || !cfg_path || (!is_list && (strcmp(verb, "test") || !channel))) {
        usage(stderr);
        return MK_EXIT_USAGE;
    }
    size_t n = 0;
    char *text = slurp(cfg_path, &n);
    if (!text) {
        fprintf(stderr, "meerkat notify: cannot read %s\n", cfg_path);
        return MK_EXIT_USAGE;
    }
    mk_notify_config c;
    char *errs = NULL;
    int bad = mk_notify_config_parse_text(&c, text, n, &errs);
    free(text);
    if (bad) {
        fprintf(stderr, "%s", errs ? errs : "invalid configuration\n");
        /* every line is "LINE:COL: ..."; the file name in front would be
         * nicer, but the lines are already complete */
        free(errs);
        mk_notify_config_free(&c);
        return MK_EXIT_USAGE;
    }
    free(errs);
    int rc = MK_EXIT_OK;
    if (is_list) {
        for (size_t i = 0; i < c.n_channels; i++)
            printf("%s\t%s\n", c.channels[i].name, mk_notify_kind_name(c.channels[i].kind));
    } else {
        long ch = mk_notify_config_channel(&c, channel);
        if (ch < 0) {
            fprintf(stderr, "meerkat notify: no channel named '%s' in %s\n", channel, cfg_path);
            rc = MK_EXIT_USAGE;
        } else {
            int status = 0;
            char err[512];
            int sent = mk_notify_test(&c, (size_t)ch, &status, err, sizeof err);
            printf("channel %s (%s): %s, status %d%s%s\n", channel, mk_notify_kind_name(c.channels[ch].kind),
                   sent == 0 ? "sent" : "FAILED", status, err[0] ? ": " : "", err);
            rc = sent == 0 ? MK_EXIT_OK : MK_EXIT_PROBLEMS;
        }
    }
    mk_notify_config_free(&c);
    return rc;
}
