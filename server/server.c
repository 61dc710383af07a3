/* server/server.c — placeholder until the HTTP server lands. */
int mk_server_placeholder(void);
int mk_server_placeholder(void) { return 0; }
