/* Command line: flags (-c/--config, -p/--http_server.port, ...) and the sub-commands
 * version, genconfig, checkconfig, defaultenv, gentoken, gensubtoken, checktoken, serve
 * (SERVER.md §2.5). Runs on the main thread before any loop exists. */
#ifndef RT_NODE_CLI_H
#define RT_NODE_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "node/config.h"

/* Parses argv and runs a sub-command, writing its output to out and diagnostics to errf
 * (both borrowed). envp is the environment used for configuration (NULL = environ).
 *
 * Returns the process exit status: 0 on success, 1 on a failed sub-command or invalid
 * configuration, 2 on a usage error. When the command is `serve` (or no sub-command) and
 * the configuration loads, returns 0 with *serve = true and cfg loaded: the caller applies
 * rt_log_set_level(cfg->log_level), starts the node and later calls
 * node_config_cleanup(cfg). In every other case *serve = false
 * and cfg needs no cleanup.
 *
 * Flags (each as "--flag value" or "--flag=value"): -c/--config FILE, -p/--http_server.port,
 * -a/--http_server.address, --http_server.internal_address, --http_server.internal_port,
 * --log.level, --engine.type, --client.insecure, --http_api.insecure,
 * --http_api.external, --prometheus.enabled, --health.enabled, --workers, -h/--help.
 * Boolean flags take an optional value ("--client.insecure" = true). */
int node_cli_run(int argc, char **argv, char *const *envp, FILE *out, FILE *errf, bool *serve,
                 node_config_t *cfg);

/* node_cli_run with stdout, stderr and environ. */
int node_cli_main(int argc, char **argv, bool *serve, node_config_t *cfg);

#endif
