// Redis dies and comes back while clients are subscribed (SERVER.md §3.12, §5.2, §7.9):
// nodes stay up, /ready says 503 (JSON) during the outage and 200 after, publishing fails
// honestly (API error 100, not a false success), subscriptions resume, and a positioned
// subscriber that lost state is told (unsubscribe 2500) or recovers exactly.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { CentClient, CentException } from 'cent.js';

import { connectedClient, subscribed } from './lib/clients.mjs';
import { PREFIX, ready, useCluster, waitReady } from './lib/redis.mjs';
import { NAMESPACES, sleep, waitFor } from './lib/rotor.mjs';

const REC = {
    name: 'rec', history_size: 100, history_ttl: '300s', force_recovery: true,
    allow_subscribe_for_client: true, allow_history_for_client: true,
};
const CONFIG = { config: { channel: { namespaces: [...NAMESPACES, REC] } } };
// /ready must notice a dead Redis within a few seconds (sockets close at once on a kill).
const READY_DOWN_MS = 5000;
// hiredis reconnect backoff is at most 5 s (rds.h), plus resubscribing.
const READY_UP_MS = 10000;

async function expectApiError100(node, method, body) {
    const res = await node.apiRaw(method, body);
    assert.equal(res.status, 200, `${method} during the outage: HTTP ${res.status} ${res.text}`);
    const reply = res.json();
    assert.equal(reply.result, undefined, `${method} during the outage must not succeed: ${res.text}`);
    assert.equal(reply.error?.code, 100, `${method}: ${res.text}`);
    assert.equal(reply.error?.message, 'internal server error');
}

async function expectReadyDown(node) {
    const r = await waitReady(node, 503, READY_DOWN_MS);
    assert.match(r.contentType ?? '', /application\/json/);
    assert.ok(r.body && typeof r.body === 'object', `/ready body is JSON: ${r.text}`);
}

describe('Redis killed and restarted, data lost', { timeout: 60000 }, () => {
    const h = useCluster(2, CONFIG);

    it('nodes stay up, /ready 503 then 200, publish fails with 100, subscriptions resume', async () => {
        const [A, B] = h.c.nodes;
        const redis = h.c.redis[0];
        for (const n of [A, B]) assert.equal((await ready(n)).status, 200);
        const ca = await connectedClient(A, 'o-a');
        const cb = await connectedClient(B, 'o-b');
        const plainA = await subscribed(ca, 'pub:outage');
        const plainB = await subscribed(cb, 'pub:outage');
        const pos = await subscribed(ca, 'rec:outage');
        const { epoch } = pos.subscribedCtx.streamPosition;
        for (let n = 1; n <= 2; n++) await B.apiResult('publish', { channel: 'rec:outage', data: { n } });
        await pos.rec.wait('publication', () => true, 4000, 2);

        await redis.kill();
        for (const n of [A, B]) await expectReadyDown(n);
        for (const n of [A, B]) {
            assert.equal(n.exited, null, 'node stays up without Redis');
            assert.equal((await n.request('/health')).status, 200, '/health is liveness only');
            await expectApiError100(n, 'publish', { channel: 'pub:outage', data: { lost: 1 } });
            await expectApiError100(n, 'publish', { channel: 'rec:outage', data: { lost: 2 } });
            await expectApiError100(n, 'history', { channel: 'rec:outage', limit: 10 });
            await expectApiError100(n, 'presence', { channel: 'chat:outage' });
        }
        await assert.rejects(new CentClient({ url: A.url('/api'), apiKey: A.apiKey })
            .publish({ channel: 'pub:outage', data: {} }), CentException);

        await redis.restart();
        for (const n of [A, B]) {
            const r = await waitReady(n, 200, READY_UP_MS);
            assert.match(r.contentType ?? '', /application\/json/);
        }
        // Live delivery resumes on both nodes, for subscriptions made before the outage.
        assert.deepEqual(await B.apiResult('publish', { channel: 'pub:outage', data: { back: 1 } }), {});
        for (const s of [plainA, plainB]) {
            assert.deepEqual((await s.rec.wait('publication', (p) => p.data.back === 1)).data, { back: 1 });
        }
        for (const s of [plainA, plainB]) assert.equal(s.rec.count('publication', (p) => p.data.lost), 0);
        // Nothing is sent to clients for the outage itself (§3.12): no reconnects.
        for (const c of [ca, cb]) {
            assert.equal(c.state, 'connected');
            assert.equal(c.rec.count('disconnected'), 0);
        }

        // Redis lost the stream: the positioned subscriber is told (2500, at once after the
        // PUB/SUB reconnect or at the next publication) and resubscribes: recovered false.
        const p1 = await B.apiResult('publish', { channel: 'rec:outage', data: { n: 3 } });
        assert.notEqual(p1.epoch, epoch, 'a Redis without the data starts a new epoch');
        const told = await pos.rec.wait('subscribing', (x) => x.code === 2500, 5000);
        assert.equal(told.reason, 'insufficient state');
        const re = await pos.rec.wait('subscribed', () => true, 5000, 2);
        assert.equal(re.wasRecovering, true);
        assert.equal(re.recovered, false);
        assert.equal(re.streamPosition.epoch, p1.epoch);
        const p2 = await A.apiResult('publish', { channel: 'rec:outage', data: { n: 4 } });
        const got = await pos.rec.wait('publication', (p) => p.data.n === 4);
        assert.equal(got.offset, p2.offset);
        assert.equal(pos.rec.count('publication', (p) => p.data.lost), 0);
    });
});

describe('Redis killed and restarted, data kept (AOF)', { timeout: 60000 }, () => {
    const h = useCluster(2, { ...CONFIG, persist: true });

    it('a positioned subscriber ends with exactly the stream: recovered, in order, once', async () => {
        const [A, B] = h.c.nodes;
        const redis = h.c.redis[0];
        const ch = 'rec:aof';
        const c = await connectedClient(A, 'aof');
        const s = await subscribed(c, ch);
        const { epoch } = s.subscribedCtx.streamPosition;
        for (let n = 1; n <= 3; n++) await B.apiResult('publish', { channel: ch, data: { n } });
        await s.rec.wait('publication', () => true, 4000, 3);

        await redis.kill();
        await expectReadyDown(A);
        await expectApiError100(B, 'publish', { channel: ch, data: { n: -1 } });
        await redis.restart();

        // Publish through B as soon as its command connection is back, racing A's PUB/SUB
        // resubscribe: whatever A missed must come back through the position check.
        const accepted = [];
        let n = 4;
        const deadline = Date.now() + READY_UP_MS;
        while (accepted.length < 8 && Date.now() < deadline) {
            const reply = await B.api('publish', { channel: ch, data: { n } });
            if (reply.result) {
                assert.equal(reply.result.epoch, epoch, 'the AOF kept the stream and its epoch');
                accepted.push({ n, offset: reply.result.offset });
                n++;
            } else {
                assert.equal(reply.error?.code, 100, JSON.stringify(reply));
                await sleep(50);
            }
        }
        assert.equal(accepted.length, 8, 'publishing works again after the restart');
        await waitReady(A, 200, READY_UP_MS);
        const last = accepted[accepted.length - 1].offset;
        await waitFor(() => s.rec.all('publication').some((p) => p.offset === last), 8000,
            `publication ${last} on A (live or recovered)`);
        await sleep(300);
        const hist = await A.apiResult('history', { channel: ch, limit: -1 });
        assert.equal(hist.epoch, epoch);
        const got = s.rec.all('publication');
        assert.deepEqual(got.map((p) => p.offset), hist.publications.map((p) => p.offset),
            'exactly the stream, in order, no duplicates');
        assert.deepEqual(got.map((p) => p.data), hist.publications.map((p) => p.data));
        for (const a of accepted) {
            assert.deepEqual(got.find((p) => p.offset === a.offset)?.data, { n: a.n }, `offset ${a.offset}`);
        }
        // Any resubscribe on the way recovered (same epoch, gap still in history).
        for (const ctx of s.rec.all('subscribed').slice(1)) assert.equal(ctx.recovered, true, JSON.stringify(ctx));
        assert.equal(c.rec.count('disconnected'), 0);
    });

    it('PUB/SUB connections dropped: publications missed meanwhile come back (position check)', async (t) => {
        const [A, B] = h.c.nodes;
        const redis = h.c.redis[0];
        const ch = 'rec:pskill';
        const c = await connectedClient(A, 'pskill');
        const s = await subscribed(c, ch);
        const { epoch } = s.subscribedCtx.streamPosition;
        await B.apiResult('publish', { channel: ch, data: { n: 1 } });
        await s.rec.wait('publication');

        const mon = await redis.monitor();
        try {
            // Redis stays up and keeps the stream; only the nodes' PUB/SUB connections go.
            // Publishing right away lands before A has resubscribed (it backs off first),
            // so A never sees these on PUB/SUB.
            await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
            for (let n = 2; n <= 4; n++) {
                const r = await B.apiResult('publish', { channel: ch, data: { n } });
                assert.deepEqual(r, { offset: n, epoch });
            }
            const resub = await mon.wait((x) => x.args[0] === 'SUBSCRIBE' && x.args.includes(`${PREFIX}.client.${ch}`),
                READY_UP_MS, `A resubscribing ${PREFIX}.client.${ch}`);
            const pub4 = mon.commands((x) => x.addr !== 'lua' && x.args.includes(`${PREFIX}.stream.${ch}`)).at(-1);
            // Only meaningful when the last publish ran before the resubscribe (the usual case).
            if (pub4 && pub4.ts < resub.ts) {
                t.diagnostic('publications 2..4 ran before the resubscribe: gap path exercised');
                const told = await s.rec.wait('subscribing', (x) => x.code === 2500, 8000);
                assert.equal(told.reason, 'insufficient state');
                const re = await s.rec.wait('subscribed', () => true, 5000, 2);
                assert.equal(re.recovered, true);
                assert.equal(re.hasRecoveredPublications, true);
            } else {
                t.diagnostic('A resubscribed before the publications: delivered live');
            }
        } finally {
            await mon.stop();
        }
        await waitFor(() => s.rec.count('publication') >= 4, 8000, 'publications 2..4 on A');
        await sleep(200);
        assert.deepEqual(s.rec.all('publication').map((p) => [p.offset, p.data.n]), [[1, 1], [2, 2], [3, 3], [4, 4]]);
        await B.apiResult('publish', { channel: ch, data: { n: 5 } });
        assert.equal((await s.rec.wait('publication', (p) => p.data.n === 5)).offset, 5);
        assert.equal(c.rec.count('disconnected'), 0);
    });
});
