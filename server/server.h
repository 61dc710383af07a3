/*
 * server/server.h — Meerkat's HTTP server on libmicrohttpd: InfluxDB 1.x
 * /write, /query and /ping, /api/v2/write, heartbeats (Kener, Uptime Kuma,
 * Healthchecks.io), /metrics, /healthz, /ready and /api/admin/flush.
 *
 * One thread per connection (libmicrohttpd's internal threads): a request's
 * handler runs on its connection's thread and may block in the engine;
 * clients on other connections are not held up. The server borrows the
 * database and the configuration; both must outlive it.
 */
#ifndef MK_SERVER_H
#define MK_SERVER_H

#include "config.h"
#include "meerkat/db.h"
#include "meerkat/error.h"

typedef struct mk_server mk_server;

/*
 * Binds cfg->listen (port 0 picks a free port: see mk_server_port) and starts
 * serving db. On success *out is the running server; stop it with
 * mk_server_stop. On failure *out is NULL and diag says why.
 */
mk_err mk_server_start(mk_db *db, const mk_config *cfg, mk_server **out, mk_diag *diag);

/* The TCP port actually bound. */
unsigned mk_server_port(const mk_server *s);

/*
 * Graceful stop: stops accepting connections, waits up to wait_ms for the
 * requests being served to finish, then closes every connection and frees
 * the server. Accepts NULL. The database is left open (the caller flushes
 * and closes it).
 */
void mk_server_stop(mk_server *s, int64_t wait_ms);

#endif
