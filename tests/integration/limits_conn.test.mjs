// client.connection_limit (SERVER.md §2: max connections per node, checked before the
// upgrade -> HTTP 503). Tries to break it: a node at the limit must refuse the next
// connection on every /connection/* endpoint with 503 and a JSON body, the clients already
// there keep working, a slot freed by a leaving client is given to the next one, and with
// two workers the node as a whole holds exactly the limit (never more, and no refusal
// while it has room) however the kernel spreads the connections between the workers'
// SO_REUSEPORT listeners.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RawClient, WebSocket, freshRequest } from './lib/clients.mjs';
import { waitFor } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';

const LIMIT = 5;
const CH = 'pub:connlimit';

/** Opens a WebSocket on a fresh TCP connection. Resolves {raw} (a RawClient, connected and
 * subscribed to CH) or {status, body, type} when the upgrade was refused. */
function tryOpen(rotor, user, p = '/connection/websocket') {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(rotor.wsUrl(p));
        const raw = new RawClient(ws, { autoPong: true });
        ws.once('open', async () => {
            rotor.clients.add(raw);
            try {
                if (p === '/connection/websocket') {
                    const r = await raw.connect(rotor.makeToken({ sub: user }));
                    assert.ok(r.connect, `connect of ${user}: ${JSON.stringify(r)}`);
                    const s = await raw.command({ subscribe: { channel: CH } });
                    assert.ok(s.subscribe, `subscribe of ${user}: ${JSON.stringify(s)}`);
                }
                resolve({ raw });
            } catch (e) {
                reject(e);
            }
        });
        ws.once('unexpected-response', (req, res) => {
            let body = '';
            res.on('data', (d) => { body += d; });
            res.on('end', () => resolve({ status: res.statusCode, body, type: res.headers['content-type'] }));
        });
        ws.once('error', reject);
    });
}


function assertRefused(r, what) {
    assert.equal(r.status, 503, `${what}: ${JSON.stringify(r)}`);
    assert.match(r.type ?? '', /application\/json/, what);
    assert.deepEqual(JSON.parse(r.body), { error: 'connection limit reached' }, what);
}

/** Closes the oldest held client and waits until a new one is admitted in its place
 * (refused with the limit's answer until the server has freed the slot). */
async function reuseFreedSlot(rotor, held) {
    held.shift().close();
    let next = null;
    await waitFor(async () => {
        const r = await tryOpen(rotor, 'next');
        if (r.raw) next = r.raw;
        else assertRefused(r, 'before the slot is freed');
        return next !== null;
    }, 10000, 'a connection admitted after one left');
    held.push(next);
}

/** Node-wide number of clients as the server API reports it (a survey of every worker). */
async function numClients(rotor) {
    const info = await rotor.apiResult('info', {});
    return info.nodes.reduce((n, x) => n + x.num_clients, 0);
}

/** Every client in `clients` receives one publication on CH. */
async function allReceive(rotor, clients, tag) {
    await rotor.apiResult('publish', { channel: CH, data: { tag } });
    for (const c of clients) {
        const push = await c.waitPush((p) => p.channel === CH && p.pub?.data?.tag === tag);
        assert.deepEqual(push.pub.data, { tag });
    }
}

describe('client.connection_limit, one worker', () => {
    const rotor = useRotor({
        config: {
            workers: 1,
            client: { connection_limit: LIMIT },
            http_stream: { enabled: true },
            sse: { enabled: true },
            uni_websocket: { enabled: true },
            uni_sse: { enabled: true },
            uni_http_stream: { enabled: true },
        },
    });

    it(`the ${LIMIT + 1}th connection gets 503 on every endpoint, the others keep working, a freed slot is reused`, async () => {
        const held = [];
        for (let i = 0; i < LIMIT; i++) {
            const r = await tryOpen(rotor, `u${i}`);
            assert.ok(r.raw, `connection ${i + 1} of ${LIMIT} refused: ${JSON.stringify(r)}`);
            held.push(r.raw);
        }
        assert.equal(await numClients(rotor), LIMIT);

        assertRefused(await tryOpen(rotor, 'over'), 'websocket');
        assertRefused(await tryOpen(rotor, 'over', '/connection/uni_websocket'), 'uni_websocket');
        const frame = JSON.stringify({ id: 1, connect: { token: rotor.makeToken({ sub: 'over' }) } });
        const uni = JSON.stringify({ token: rotor.makeToken({ sub: 'over' }) });
        assertRefused(await freshRequest(rotor.port, '/connection/http_stream', { method: 'POST', body: frame }), 'http_stream');
        assertRefused(await freshRequest(rotor.port, `/connection/sse?cf_connect=${encodeURIComponent(frame)}`), 'sse');
        assertRefused(await freshRequest(rotor.port, `/connection/uni_sse?cf_connect=${encodeURIComponent(uni)}`), 'uni_sse');
        assertRefused(await freshRequest(rotor.port, '/connection/uni_http_stream', { method: 'POST', body: uni }), 'uni_http_stream');
        // The API and probes are not connections.
        assert.equal((await rotor.request('/health')).status, 200);
        assert.equal(await numClients(rotor), LIMIT);

        // The clients at the limit are untouched.
        await allReceive(rotor, held, 'at-limit');
        for (const c of held) assert.ok(c.isOpen());

        // One leaves: its slot goes to the next client (once the server has freed it).
        await reuseFreedSlot(rotor, held);
        assertRefused(await tryOpen(rotor, 'over-again'), 'at the limit again');
        await allReceive(rotor, held, 'after-swap');
    });
});

describe('client.connection_limit, two workers: node-wide', () => {
    const rotor = useRotor({ config: { workers: 2, client: { connection_limit: LIMIT } } });

    it(`never more than ${LIMIT} connections on the node, whichever worker each lands on`, async (t) => {
        // Each attempt is a fresh TCP connection, so the kernel hashes it to a worker at
        // random. Keep trying well past the limit: per-worker accounting (a share that
        // rounds up, or none at all) lets a (LIMIT+1)th in once both workers have been hit
        // often enough; 40 attempts make that near certain.
        const held = [];
        const refused = [];
        for (let i = 0; i < 40; i++) {
            const r = await tryOpen(rotor, `w${i}`);
            if (r.raw) held.push(r.raw);
            else refused.push({ ...r, index: i });
        }
        t.diagnostic(`admitted ${held.length}, refused ${refused.length} of 40`);
        for (const r of refused) assertRefused(r, 'over the node-wide limit');
        assert.ok(held.length <= LIMIT, `the node admitted ${held.length} connections with connection_limit ${LIMIT}`);
        // The count is node-wide: the first LIMIT attempts are all admitted.
        assert.deepEqual(refused.map((r) => r.index), [...Array(40 - LIMIT).keys()].map((i) => i + LIMIT),
            'refusals start only once the node is full');
        assert.equal(held.length, LIMIT, `only ${held.length} admitted of a limit of ${LIMIT}`);
        assert.equal(await numClients(rotor), LIMIT);
        await allReceive(rotor, held, 'two-workers');

        // A freed slot is given out again, on whichever worker the next connection lands.
        await reuseFreedSlot(rotor, held);
        for (let i = 0; i < 10; i++) assertRefused(await tryOpen(rotor, `again${i}`), 'full again');
        assert.equal(await numClients(rotor), LIMIT);
        await allReceive(rotor, held, 'two-workers-after');
    });
});
