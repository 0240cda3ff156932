// Client half of the docker-compose test (run.sh starts the cluster, then this).
//
// Through nginx on 127.0.0.1:$LB_PORT: CLIENTS centrifuge-js clients connect and subscribe;
// the `info` API (through nginx) must list the three nodes and every client; a
// publication made through the API of each node directly ($NODE_PORTS: the override
// file publishes them on loopback) and one through nginx's /api must reach every client,
// whichever node holds it (Redis fan-out). Exits 0 on success, 1 with a reason otherwise.
//
// Env: LB_PORT, NODE_PORTS (space-separated), TOKEN_SECRET, API_KEY; GEN_TOKEN (made by
// `rotor gentoken` in a node) for the first client.
import { createRequire } from 'node:module';
import { signJwt, nowSec, waitFor } from '../integration/lib/rotor.mjs';

// centrifuge and ws are installed once for the whole suite in tests/integration.
const require = createRequire(new URL('../integration/package.json', import.meta.url));
const { Centrifuge } = require('centrifuge');
const WebSocket = require('ws');

const CLIENTS = 6;
const CHANNEL = 'docker-news';
const lbPort = Number(process.env.LB_PORT);
const nodePorts = (process.env.NODE_PORTS || '').split(/\s+/).filter(Boolean).map(Number);
const secret = process.env.TOKEN_SECRET;
const apiKey = process.env.API_KEY;

async function api(port, method, params) {
    const res = await fetch(`http://127.0.0.1:${port}/api/${method}`, {
        method: 'POST',
        headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json' },
        body: JSON.stringify(params),
        signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${method} on port ${port}: HTTP ${res.status} ${text}`);
    const body = JSON.parse(text);
    if (body.error) throw new Error(`${method} on port ${port}: ${JSON.stringify(body.error)}`);
    return body.result;
}

function connectClient(i) {
    const token = i === 0 && process.env.GEN_TOKEN ? process.env.GEN_TOKEN
        : signJwt({ sub: `docker-user-${i}`, exp: nowSec() + 600 }, secret);
    const client = new Centrifuge(`ws://127.0.0.1:${lbPort}/connection/websocket`, {
        websocket: WebSocket,
        token,
    });
    const received = [];
    const sub = client.newSubscription(CHANNEL);
    sub.on('publication', (ctx) => received.push(ctx.data));
    const subscribed = new Promise((resolve, reject) => {
        sub.once('subscribed', resolve);
        sub.once('error', (ctx) => reject(new Error(`client ${i} subscription: ${ctx.error.message}`)));
        client.once('disconnected', (ctx) =>
            reject(new Error(`client ${i} disconnected: ${ctx.code} ${ctx.reason}`)));
    });
    sub.subscribe();
    client.connect();
    return { client, received, subscribed };
}

async function main() {
    if (!lbPort || nodePorts.length !== 3 || !secret || !apiKey) {
        throw new Error('LB_PORT, NODE_PORTS (3), TOKEN_SECRET and API_KEY are required');
    }
    const clients = Array.from({ length: CLIENTS }, (_, i) => connectClient(i));
    try {
        await Promise.race([
            Promise.all(clients.map((c) => c.subscribed)),
            new Promise((_, reject) =>
                setTimeout(() => reject(new Error('clients not subscribed within 15 s')), 15000)),
        ]);
        console.log(`${CLIENTS} clients connected through nginx and subscribed to ${CHANNEL}`);

        // The node registry is refreshed by each node's periodic info message.
        const info = await waitFor(async () => {
            const r = await api(lbPort, 'info', {});
            const total = r.nodes.reduce((n, node) => n + node.num_clients, 0);
            return r.nodes.length === 3 && total === CLIENTS ? r : null;
        }, 20000, 'info: 3 nodes holding every client');
        const spread = info.nodes.map((n) => `${n.name}=${n.num_clients}`).sort().join(' ');
        console.log(`info through nginx: ${spread}`);

        const expected = [];
        for (const [i, port] of nodePorts.entries()) {
            const data = { via: `node-${i + 1}` };
            await api(port, 'publish', { channel: CHANNEL, data });
            expected.push(data);
        }
        const viaLb = { via: 'nginx' };
        await api(lbPort, 'publish', { channel: CHANNEL, data: viaLb });
        expected.push(viaLb);

        await waitFor(() => clients.every((c) => c.received.length >= expected.length), 10000,
                      `every client receiving ${expected.length} publications`);
        for (const [i, c] of clients.entries()) {
            const got = JSON.stringify(c.received);
            if (got !== JSON.stringify(expected)) {
                throw new Error(`client ${i} received ${got}, expected ${JSON.stringify(expected)}`);
            }
        }
        console.log(`every client received the ${expected.length} publications in order ` +
                    '(one through each node\'s API, one through nginx /api)');
    } finally {
        for (const c of clients) c.client.disconnect();
    }
}

main().then(() => process.exit(0), (err) => {
    console.error(`docker client check FAILED: ${err.message}`);
    process.exit(1);
});
