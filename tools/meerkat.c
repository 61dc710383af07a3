/*
 * tools/meerkat.c — the `meerkat` command: dispatches to one sub-command.
 *
 *   meerkat import   bulk-load line protocol into a data directory
 *   meerkat inspect  blocks, series, chunks, codecs, bytes per sample
 *   meerkat verify   check every checksum; exit status says whether all is well
 *   meerkat dump     print a series' samples as line protocol
 *   meerkat query    run InfluxQL over a data directory (or an interactive shell)
 *   meerkat serve    the HTTP server: ingest, queries, heartbeats, alerts
 *   meerkat score    anomaly score of every sample of matching series
 *   meerkat nab      run the default detector over NAB-layout CSV files
 *
 * Exit status of every sub-command: 0 success, 1 the command ran but found
 * problems (rejected lines, damage), 2 usage error, 3 fatal error.
 */
#include <stdio.h>
#include <string.h>

#include "meerkat/meerkat.h"
#include "tools/cli.h"

int mk_cli_compact(int argc, char **argv);   /* tools/cli_compact.c */
int mk_cli_retention(int argc, char **argv); /* tools/cli_retention.c */

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"import", mk_cli_import, "load InfluxDB line protocol files into a data directory"},
    {"inspect", mk_cli_inspect, "show blocks, series, chunks, codecs and bytes per sample"},
    {"verify", mk_cli_verify, "check every checksum and chunk; exit 0 only if all is well"},
    {"compact", mk_cli_compact, "merge blocks (and seal the WAL) until compaction is complete"},
    {"retention", mk_cli_retention, "drop whole blocks past a retention policy (--dry-run prints)"},
    {"dump", mk_cli_dump, "print the samples of matching series as line protocol"},
    {"query", mk_cli_query, "run InfluxQL over a data directory, or an interactive shell"},
    {"serve", mk_cli_serve, "run the HTTP server (InfluxDB-compatible /write and /query)"},
    {"config", mk_cli_config, "check a `meerkat serve` configuration file (config check FILE)"},
    {"score", mk_cli_score, "print the anomaly score of every sample of matching series"},
    {"nab", mk_cli_nab, "score NAB-layout CSV files with the default detector"},
    {"detect", mk_cli_detect, "backfill alert rules over stored data and print the incidents"},
    {"notify", mk_cli_notify, "send a test notification through a channel (notify test --config FILE CHANNEL)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: meerkat COMMAND [OPTIONS]\n\n"
               "Meerkat %s: a time-series database for service-health metrics.\n\ncommands:\n",
            mk_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`meerkat COMMAND --help` describes each command.\n"
               "  --version  print the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("meerkat %s\n", mk_version());
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "meerkat: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
