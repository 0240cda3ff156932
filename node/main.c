/* rotor: a real-time messaging server speaking the Centrifugo protocol. */
#include <stdbool.h>

#include "node/cli.h"
#include "node/config.h"
#include "node/server.h"

int main(int argc, char **argv)
{
    bool serve = false;
    node_config_t cfg;
    int rc = node_cli_main(argc, argv, &serve, &cfg);
    if (!serve)
        return rc;
    rc = node_server_run(&cfg);
    node_config_cleanup(&cfg);
    return rc;
}
