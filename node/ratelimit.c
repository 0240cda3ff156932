#include "node/ratelimit.h"

#include "node/node_internal.h"

void node_ratelimit_init(node_ratelimit_t *rl, double rate_per_s, double now_s)
{
    rl->rate_per_s = rate_per_s > 0 ? rate_per_s : 0;
    rl->burst = rl->rate_per_s > 1 ? rl->rate_per_s : 1;
    rl->tokens = rl->burst;
    rl->last_s = now_s;
}

bool node_ratelimit_take(node_ratelimit_t *rl, double now_s)
{
    if (rl->rate_per_s <= 0)
        return true;
    if (now_s > rl->last_s) {
        rl->tokens += (now_s - rl->last_s) * rl->rate_per_s;
        if (rl->tokens > rl->burst)
            rl->tokens = rl->burst;
        rl->last_s = now_s;
    }
    if (rl->tokens < 1)
        return false;
    rl->tokens -= 1;
    return true;
}

bool node_connection_rate_limited(node_worker_t *w)
{
    /* ev_now: the loop's cached time is exact enough for a per-second rate and free. */
    return !node_ratelimit_take(&w->conn_rate, ev_now(w->loop));
}
