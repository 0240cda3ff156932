// Recovery across nodes and node restarts (PROTOCOL.md §8, SERVER.md §3.5-3.7, §3.12):
// stream positions live in Redis, so a client that comes back on another node — or on a
// restarted one — gets exactly what it missed, or is told honestly that it cannot.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { connectedClient, subscribed } from './lib/clients.mjs';
import { PREFIX, useCluster } from './lib/redis.mjs';
import { NAMESPACES, sleep } from './lib/rotor.mjs';

const REC = {
    name: 'rec', history_size: 100, history_ttl: '300s', force_recovery: true,
    allow_subscribe_for_client: true, allow_history_for_client: true,
};
const CONFIG = { config: { channel: { namespaces: [...NAMESPACES, REC] } } };
// Quick reconnects: a client of a killed node retries its URL until the node is back.
const FAST = { opts: { minReconnectDelay: 100, maxReconnectDelay: 300 } };

const offsets = (s) => s.rec.all('publication').map((p) => p.offset);
const ns = (s) => s.rec.all('publication').map((p) => p.data.n);
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

describe('recovery across nodes and restarts', { timeout: 60000 }, () => {
    const h = useCluster(2, CONFIG);
    const publish = (node, channel, n) => node.apiResult('publish', { channel, data: { n } });

    it('missed publications are recovered on another node, then after restarting both', async () => {
        const ch = 'rec:restart';
        let [A, B] = h.c.nodes;
        const c1 = await connectedClient(A, 'r1', FAST);
        const s1 = await subscribed(c1, ch);
        const { epoch } = s1.subscribedCtx.streamPosition;
        assert.equal(s1.subscribedCtx.recoverable, true);
        for (let n = 1; n <= 2; n++) await publish(A, ch, n);
        await s1.rec.wait('publication', () => true, 4000, 2);

        await h.c.kill(0);
        for (let n = 3; n <= 7; n++) assert.equal((await publish(B, ch, n)).offset, n);

        // A fresh client on B from the last position c1 saw.
        const c2 = await connectedClient(B, 'r2', FAST);
        const s2 = await subscribed(c2, ch, { since: { offset: 2, epoch } });
        const ctx = s2.subscribedCtx;
        assert.equal(ctx.wasRecovering, true);
        assert.equal(ctx.recovered, true);
        assert.equal(ctx.hasRecoveredPublications, true);
        assert.equal(ctx.streamPosition.epoch, epoch);
        await s2.rec.wait('publication', () => true, 4000, 5);
        await sleep(200);
        assert.deepEqual(offsets(s2), [3, 4, 5, 6, 7]);
        assert.deepEqual(ns(s2), [3, 4, 5, 6, 7]);

        // A comes back on its port: c1 reconnects by itself and recovers 3..7.
        A = await h.c.restart(0);
        const again = await s1.rec.wait('subscribed', () => true, 10000, 2);
        assert.equal(again.wasRecovering, true);
        assert.equal(again.recovered, true);
        assert.equal(again.streamPosition.epoch, epoch);
        await s1.rec.wait('publication', () => true, 4000, 7);

        // Now B dies; publications through the restarted A; B restarts and c2 recovers them.
        await h.c.kill(1);
        for (let n = 8; n <= 10; n++) assert.equal((await publish(A, ch, n)).offset, n);
        await s1.rec.wait('publication', () => true, 4000, 10);
        B = await h.c.restart(1);
        const back = await s2.rec.wait('subscribed', () => true, 10000, 2);
        assert.equal(back.recovered, true);
        assert.equal(back.hasRecoveredPublications, true);
        await s2.rec.wait('publication', () => true, 4000, 8);
        await sleep(300);
        assert.deepEqual(offsets(s1), range(1, 10));
        assert.deepEqual(ns(s1), range(1, 10));
        assert.deepEqual(offsets(s2), range(3, 10));

        // Both restarted nodes deliver live to both clients.
        await publish(B, ch, 11);
        for (const s of [s1, s2]) assert.equal((await s.rec.wait('publication', (p) => p.data.n === 11)).offset, 11);
    });

    it('gap beyond history_size: recovered false, no publications, current top', async () => {
        const ch = 'rec:gap';
        const [A, B] = h.c.nodes;
        const c1 = await connectedClient(A, 'g1');
        const s1 = await subscribed(c1, ch);
        const { epoch } = s1.subscribedCtx.streamPosition;
        await publish(A, ch, 1);
        await s1.rec.wait('publication');
        c1.disconnect();
        // 105 more in one batch: the window keeps offsets 7..106 only.
        const commands = range(2, 106).map((n) => ({ publish: { channel: ch, data: { n } } }));
        const batch = await B.api('batch', { commands }); // {replies} without a result wrapper (§1.5)
        assert.equal(batch.replies.length, 105);
        assert.equal(batch.replies[104].publish.offset, 106, JSON.stringify(batch.replies[104]));

        const hist = await A.apiResult('history', { channel: ch, limit: -1 });
        assert.equal(hist.offset, 106);
        assert.equal(hist.epoch, epoch);
        assert.deepEqual(hist.publications.map((p) => p.offset), range(7, 106));

        const c2 = await connectedClient(B, 'g2');
        const s2 = await subscribed(c2, ch, { since: { offset: 1, epoch } });
        assert.equal(s2.subscribedCtx.wasRecovering, true);
        assert.equal(s2.subscribedCtx.recovered, false);
        assert.equal(s2.subscribedCtx.hasRecoveredPublications, false);
        assert.deepEqual(s2.subscribedCtx.streamPosition, { offset: 106, epoch });
        // Still within the window from offset 6 on: recovered (on the other node).
        const c3 = await connectedClient(A, 'g3');
        const s3 = await subscribed(c3, ch, { since: { offset: 6, epoch } });
        assert.equal(s3.subscribedCtx.recovered, true);
        await s3.rec.wait('publication', () => true, 4000, 100);
        await sleep(200);
        assert.equal(s2.rec.count('publication'), 0);
        assert.deepEqual(offsets(s3), range(7, 106));
    });

    it('history_remove keeps the epoch; losing the meta key changes it (recovered false)', async () => {
        const ch = 'rec:epoch';
        const [A, B] = h.c.nodes;
        let epoch;
        for (let n = 1; n <= 3; n++) epoch = (await publish(A, ch, n)).epoch;

        assert.deepEqual(await B.apiResult('history_remove', { channel: ch }), {});
        const top = await A.apiResult('history', { channel: ch, limit: -1 });
        assert.deepEqual(top, { publications: [], epoch, offset: 3 });
        // Nothing to recover, nothing lost: recovered.
        const c1 = await connectedClient(A, 'e1', FAST);
        const s1 = await subscribed(c1, ch, { since: { offset: 3, epoch } });
        assert.equal(s1.subscribedCtx.recovered, true);
        assert.equal(s1.subscribedCtx.hasRecoveredPublications, false);
        const p4 = await publish(B, ch, 4);
        assert.deepEqual(p4, { offset: 4, epoch });
        assert.equal((await s1.rec.wait('publication')).offset, 4);

        // The stream's identity is the meta hash: without it a new epoch begins.
        const metaKey = `${PREFIX}.stream.meta.${ch}`;
        assert.equal(await h.c.redis[0].cli('EXISTS', metaKey), '1', `${metaKey} exists`);
        assert.equal(await h.c.redis[0].cli('DEL', metaKey), '1');
        const c2 = await connectedClient(B, 'e2');
        const s2 = await subscribed(c2, ch, { since: { offset: 4, epoch } });
        const ctx = s2.subscribedCtx;
        assert.equal(ctx.wasRecovering, true);
        assert.equal(ctx.recovered, false);
        assert.notEqual(ctx.streamPosition.epoch, epoch);
        assert.equal(ctx.streamPosition.offset, 0);
        const newEpoch = ctx.streamPosition.epoch;

        // The next publication starts the new epoch at offset 1; the subscriber still on
        // the old epoch (s1) is told (unsubscribe 2500) and resubscribes: recovered false.
        assert.deepEqual(await publish(A, ch, 5), { offset: 1, epoch: newEpoch });
        assert.equal((await s2.rec.wait('publication')).offset, 1);
        const told = await s1.rec.wait('subscribing', (x) => x.code === 2500, 5000);
        assert.equal(told.reason, 'insufficient state');
        const re = await s1.rec.wait('subscribed', () => true, 5000, 2);
        assert.equal(re.wasRecovering, true);
        assert.equal(re.recovered, false);
        assert.equal(re.streamPosition.epoch, newEpoch);
        assert.equal(s1.rec.count('publication'), 1, 'the new-epoch publication is not delivered as a continuation');
        await publish(B, ch, 6);
        const p = await s1.rec.wait('publication', (x) => x.data.n === 6);
        assert.equal(p.offset, 2);
    });
});
