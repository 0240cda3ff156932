/* Running a node: threads, signals, graceful shutdown. Main thread only. */
#ifndef RT_NODE_SERVER_H
#define RT_NODE_SERVER_H

#include "node/config.h"

/* Starts workers and the engine loop (on the calling thread) and runs until SIGTERM/SIGINT
 * and a graceful shutdown. cfg is borrowed and must stay unchanged until return.
 * Returns the process exit status (0 after a clean shutdown, 1 on start-up failure or
 * when shutdown.timeout was reached). */
int node_server_run(const node_config_t *cfg);

#endif
