// Three rotor nodes on one Redis (SERVER.md §3): publications, presence and join/leave
// cross nodes; the node registry (`info`) follows nodes coming and going; cross-node
// server API commands travel the control channel (§3.10); `channels` is a survey.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { CentClient } from 'cent.js';

import { RawClient, connectedClient, subscribed } from './lib/clients.mjs';
import { PREFIX, useCluster, waitNodes } from './lib/redis.mjs';
import { sleep, waitFor } from './lib/rotor.mjs';

// Short presence timings so a killed node's entries vanish within the test (§3.8).
const PRESENCE_TTL_MS = 3000;
const PRESENCE = {
    redisOpts: { presence_ttl: '3s' },
    config: { client: { presence_update_interval: '1s' } },
};

const cent = (rotor) => new CentClient({ url: rotor.url('/api'), apiKey: rotor.apiKey });
const clientId = (c) => c.connectedCtx.client;

async function presenceIds(rotor, channel) {
    const r = await rotor.apiResult('presence', { channel });
    return Object.keys(r.presence).sort();
}

describe('three nodes on one Redis', { timeout: 60000 }, () => {
    const h = useCluster(3, PRESENCE);

    it('API publish on B reaches clients on A and C with the exact data', async () => {
        const [A, B, C] = h.c.nodes;
        const ca = await connectedClient(A, 'fan-a');
        const cc = await connectedClient(C, 'fan-c');
        const plain = 'pub:fanout';
        const hist = 'chat:fanout';
        const subs = [await subscribed(ca, plain), await subscribed(cc, plain)];
        const hsubs = [await subscribed(ca, hist), await subscribed(cc, hist)];

        // One Redis subscription per channel per node with subscribers (§3.9), none on B.
        const numsub = await h.c.redis[0].lines('PUBSUB', 'NUMSUB', `${PREFIX}.client.${plain}`);
        assert.deepEqual(numsub, [`${PREFIX}.client.${plain}`, '2']);

        const data = { text: 'héllo ✓ "quoted"', n: 1, nested: { a: [1, 2.5, { b: null }], t: true } };
        assert.deepEqual(await cent(B).publish({ channel: plain, data }), {});
        for (const s of subs) assert.deepEqual((await s.rec.wait('publication')).data, data);

        const r = await cent(B).publish({ channel: hist, data, tags: { k: 'v' } });
        assert.equal(r.offset, 1);
        assert.ok(typeof r.epoch === 'string' && r.epoch.length > 0, JSON.stringify(r));
        for (const s of hsubs) {
            const p = await s.rec.wait('publication');
            assert.deepEqual(p.data, data);
            assert.equal(p.offset, 1);
            assert.deepEqual(p.tags, { k: 'v' });
        }
        // Exactly once per subscriber.
        await sleep(300);
        for (const s of [...subs, ...hsubs]) assert.equal(s.rec.count('publication'), 1, s.channel);
    });

    it('raw JSON data crosses Redis byte for byte', async () => {
        const [A, B] = h.c.nodes;
        const raw = await RawClient.open(A);
        await raw.connect(A.makeToken({ sub: 'raw' }));
        const sub = await raw.command({ subscribe: { channel: 'pub:bytes' } });
        assert.ok(sub.subscribe, JSON.stringify(sub));
        const data = '{"b" : [1,2.50,"\\u00e9", {}],  "z":-0}';
        const res = await B.apiRaw('publish', `{"channel":"pub:bytes","data":${data}}`);
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.json(), { result: {} });
        const frame = await raw.waitFrame((f) => f.text.includes('"pub:bytes"') && f.text.includes('"pub"'));
        assert.ok(frame.text.includes(`"data":${data}`), `frame: ${frame.text}`);
    });

    it('client-side publish on A reaches C with the publisher info', async () => {
        const [A, , C] = h.c.nodes;
        const ch = 'chat:clientpub';
        const ca = await connectedClient(A, 'cp-a', { claims: { info: { role: 'writer' } } });
        const cc = await connectedClient(C, 'cp-c');
        const sa = await subscribed(ca, ch);
        const sc = await subscribed(cc, ch);
        await sa.publish({ hello: 'from A' });
        const p = await sc.rec.wait('publication');
        assert.deepEqual(p.data, { hello: 'from A' });
        assert.equal(p.offset, 1);
        assert.equal(p.info.user, 'cp-a');
        assert.equal(p.info.client, clientId(ca));
        assert.deepEqual(p.info.connInfo, { role: 'writer' });
        // The publisher gets its own publication through Redis too.
        assert.deepEqual((await sa.rec.wait('publication')).data, { hello: 'from A' });
    });

    it('presence and presence_stats agree on every node', async () => {
        const ch = 'chat:presence';
        const [A, B, C] = h.c.nodes;
        const clients = [
            await connectedClient(A, 'pr-1', { claims: { info: { node: 'A' } } }),
            await connectedClient(A, 'pr-1'),
            await connectedClient(B, 'pr-2'),
            await connectedClient(C, 'pr-3'),
        ];
        const subs = [];
        for (const c of clients) subs.push(await subscribed(c, ch));
        const want = clients.map(clientId).sort();
        for (const [i, node] of h.c.nodes.entries()) {
            const r = await node.apiResult('presence', { channel: ch });
            assert.deepEqual(Object.keys(r.presence).sort(), want, `presence on node ${i}`);
            for (const c of clients) {
                const e = r.presence[clientId(c)];
                assert.equal(e.client, clientId(c));
                assert.equal(e.user, c === clients[0] || c === clients[1] ? 'pr-1' : c === clients[2] ? 'pr-2' : 'pr-3');
            }
            assert.deepEqual(r.presence[clientId(clients[0])].conn_info, { node: 'A' });
            assert.deepEqual(await node.apiResult('presence_stats', { channel: ch }),
                { num_clients: 4, num_users: 3 }, `presence_stats on node ${i}`);
        }
        // Client-side presence from C sees the same set.
        const pc = await subs[3].presence();
        assert.deepEqual(Object.keys(pc.clients).sort(), want);
        // An unsubscribe on B is seen everywhere.
        subs[2].unsubscribe();
        const left = want.filter((id) => id !== clientId(clients[2]));
        for (const node of [A, C]) {
            await waitFor(async () => JSON.stringify(await presenceIds(node, ch)) === JSON.stringify(left),
                3000, `presence without the B client on port ${node.port}`);
        }
    });

    it('join and leave of a client on A are pushed to a subscriber on C', async () => {
        const [A, B, C] = h.c.nodes;
        const ch = 'chat:joinleave';
        const cc = await connectedClient(C, 'jl-c');
        const sc = await subscribed(cc, ch);
        const ca = await connectedClient(A, 'jl-a', { claims: { info: { from: 'A' } } });
        const sa = await subscribed(ca, ch);
        const j = await sc.rec.wait('join', (x) => x.info.client === clientId(ca));
        assert.equal(j.info.user, 'jl-a');
        assert.deepEqual(j.info.connInfo, { from: 'A' });
        sa.unsubscribe();
        const l = await sc.rec.wait('leave', (x) => x.info.client === clientId(ca));
        assert.equal(l.info.user, 'jl-a');

        // A disconnect leaves as well.
        const cb = await connectedClient(B, 'jl-b');
        await subscribed(cb, ch);
        await sc.rec.wait('join', (x) => x.info.client === clientId(cb));
        cb.disconnect();
        await sc.rec.wait('leave', (x) => x.info.client === clientId(cb));
    });

    // Last in this block: it kills node C.
    it('info lists three nodes; a SIGKILLed node drops out and its presence expires', async (t) => {
        const [A, B, C] = h.c.nodes;
        const nameOf = (r) => `_${r.port}`; // default node name is <hostname>_<port> (§6.2)
        for (const node of h.c.nodes) {
            const nodes = await waitNodes(node, 3, 5000);
            assert.equal(new Set(nodes.map((n) => n.uid)).size, 3, JSON.stringify(nodes));
            for (const r of h.c.nodes) {
                assert.ok(nodes.some((n) => n.name.endsWith(nameOf(r))), `${nameOf(r)} in ${JSON.stringify(nodes)}`);
            }
            for (const n of nodes) {
                for (const k of ['num_clients', 'num_users', 'num_channels', 'num_subs']) {
                    assert.equal(typeof n[k], 'number', `${k} in ${JSON.stringify(n)}`);
                }
            }
        }

        const ch = 'chat:ttl';
        const clients = [await connectedClient(A, 'ttl-a'), await connectedClient(B, 'ttl-b'),
            await connectedClient(C, 'ttl-c')];
        for (const c of clients) await subscribed(c, ch);
        const ids = clients.map(clientId);
        // Counters of the node registry follow the nodes' clients (announced every 3 s).
        await waitFor(async () => {
            const nodes = (await A.apiResult('info')).nodes;
            const nc = nodes.find((n) => n.name.endsWith(nameOf(C)));
            return nc && nc.num_clients >= 1 && nc.num_channels >= 1;
        }, 5000, 'node C counters in info on A');

        // Refreshes keep live entries beyond the TTL.
        await sleep(PRESENCE_TTL_MS + 1500);
        assert.deepEqual(await presenceIds(A, ch), [...ids].sort(), 'entries refreshed past presence_ttl');

        await h.c.kill(2);
        const killedAt = Date.now();
        // Gone within presence_ttl (plus one update interval of slack); the others stay.
        await waitFor(async () => !(await presenceIds(A, ch)).includes(ids[2]), PRESENCE_TTL_MS + 2000,
            'presence entry of the killed node to expire');
        t.diagnostic(`presence entry gone ${Date.now() - killedAt} ms after the kill`);
        assert.deepEqual(await presenceIds(B, ch), [ids[0], ids[1]].sort());
        assert.deepEqual(await B.apiResult('presence_stats', { channel: ch }), { num_clients: 2, num_users: 2 });

        // Registry: not heard for 7 s, cleaned every 9 s (§3.10) => at most ~16 s after the kill.
        for (const node of [A, B]) {
            const left = Math.max(1000, 18000 - (Date.now() - killedAt));
            const nodes = await waitNodes(node, 2, left);
            assert.ok(!nodes.some((n) => n.name.endsWith(nameOf(C))), JSON.stringify(nodes));
            t.diagnostic(`info on port ${node.port} lists 2 nodes ${Date.now() - killedAt} ms after the kill`);
        }
        // The survivors still serve each other.
        const s = await subscribed(await connectedClient(A, 'ttl-a2'), 'pub:after-kill');
        await B.apiResult('publish', { channel: 'pub:after-kill', data: { ok: 1 } });
        assert.deepEqual((await s.rec.wait('publication')).data, { ok: 1 });
    });
});

describe('cross-node server API', { timeout: 60000 }, () => {
    const h = useCluster(3);

    it('disconnect on A closes the user\'s connections on C (3503 unless a code is given)', async () => {
        const [A, B, C] = h.c.nodes;
        const onC = await connectedClient(C, 'd-user');
        const onA = await connectedClient(A, 'd-user');
        const other = await connectedClient(C, 'd-other');
        assert.deepEqual(await A.apiResult('disconnect', { user: 'd-user' }), {});
        for (const c of [onC, onA]) {
            const d = await c.rec.wait('disconnected');
            assert.equal(d.code, 3503);
            assert.equal(d.reason, 'force disconnect');
        }
        await sleep(300);
        assert.equal(other.state, 'connected');
        assert.equal(other.rec.count('disconnected'), 0);

        const custom = await connectedClient(C, 'd-user2');
        await B.apiResult('disconnect', { user: 'd-user2', disconnect: { code: 4507, reason: 'custom bye' } });
        const d = await custom.rec.wait('disconnected');
        assert.equal(d.code, 4507);
        assert.equal(d.reason, 'custom bye');

        // whitelist and client filters apply on the remote node too.
        const k1 = await connectedClient(C, 'd-user3');
        const k2 = await connectedClient(C, 'd-user3');
        const k3 = await connectedClient(C, 'd-user3');
        await A.apiResult('disconnect', { user: 'd-user3', whitelist: [clientId(k1), clientId(k3)] });
        assert.equal((await k2.rec.wait('disconnected')).code, 3503);
        await B.apiResult('disconnect', { user: 'd-user3', client: clientId(k3) });
        assert.equal((await k3.rec.wait('disconnected')).code, 3503);
        await sleep(300);
        assert.equal(k1.state, 'connected');
    });

    it('unsubscribe on A ends subscriptions on C with 2000; empty channel means all', async () => {
        const [A, B, C] = h.c.nodes;
        const c = await connectedClient(C, 'us-user');
        const s1 = await subscribed(c, 'pub:us1');
        const s2 = await subscribed(c, 'pub:us2');
        const s3 = await subscribed(c, 'chat:us3');
        assert.deepEqual(await A.apiResult('unsubscribe', { user: 'us-user', channel: 'pub:us1' }), {});
        const u = await s1.rec.wait('unsubscribed');
        assert.equal(u.code, 2000);
        assert.equal(u.reason, 'server unsubscribe');
        await sleep(200);
        assert.equal(s2.state, 'subscribed');
        assert.equal(s3.state, 'subscribed');

        await B.apiResult('unsubscribe', { user: 'us-user', channel: '' });
        for (const s of [s2, s3]) assert.equal((await s.rec.wait('unsubscribed')).code, 2000);
        assert.equal(c.state, 'connected');
        // Nothing is delivered any more, and presence forgot it.
        await A.apiResult('publish', { channel: 'pub:us2', data: { late: 1 } });
        await sleep(300);
        assert.equal(s2.rec.count('publication'), 0);
        assert.deepEqual(await presenceIds(A, 'chat:us3'), []);
    });

    it('server-side subscribe on A subscribes the user\'s connection on C', async () => {
        const [A, B, C] = h.c.nodes;
        const c = await connectedClient(C, 'ss-user');
        assert.deepEqual(await A.apiResult('subscribe', { user: 'ss-user', channel: 'chat:ss' }), {});
        const ctx = await c.rec.wait('subscribed', (x) => x.channel === 'chat:ss');
        assert.equal(ctx.channel, 'chat:ss');
        await B.apiResult('publish', { channel: 'chat:ss', data: { via: 'B' } });
        const p = await c.rec.wait('publication', (x) => x.channel === 'chat:ss');
        assert.deepEqual(p.data, { via: 'B' });
        assert.deepEqual(await presenceIds(B, 'chat:ss'), [clientId(c)]);
        // And the server-side unsubscribe of it.
        await B.apiResult('unsubscribe', { user: 'ss-user', channel: 'chat:ss' });
        await c.rec.wait('unsubscribed', (x) => x.channel === 'chat:ss');
    });

    it('channels on any node lists channels with subscribers on every node', async () => {
        const [A, B, C] = h.c.nodes;
        for (const node of h.c.nodes) await waitNodes(node, 3, 5000);
        const a = await connectedClient(A, 'chs-a');
        await subscribed(a, 'pub:chs-1');
        await subscribed(a, 'pub:chs-2');
        await subscribed(await connectedClient(B, 'chs-b'), 'pub:chs-1');
        const c1 = await connectedClient(C, 'chs-c1');
        const s3 = await subscribed(c1, 'pub:chs-3');
        await subscribed(await connectedClient(C, 'chs-c2'), 'pub:chs-1');
        const want = {
            'pub:chs-1': { num_clients: 3 },
            'pub:chs-2': { num_clients: 1 },
            'pub:chs-3': { num_clients: 1 },
        };
        for (const [i, node] of h.c.nodes.entries()) {
            const r = await node.apiResult('channels', { pattern: 'pub:chs-*' });
            assert.deepEqual(r.channels, want, `channels on node ${i}`);
            const all = await node.apiResult('channels', {});
            for (const ch of Object.keys(want)) assert.deepEqual(all.channels[ch], want[ch], `${ch} on node ${i}`);
        }
        // The last subscriber on C leaves: the survey from A no longer lists the channel.
        s3.unsubscribe();
        await waitFor(async () => {
            const r = await A.apiResult('channels', { pattern: 'pub:chs-*' });
            return !('pub:chs-3' in r.channels) && r.channels['pub:chs-1']?.num_clients === 3;
        }, 3000, 'pub:chs-3 gone from channels on A');
    });
});
