// Client publish, presence, presence_stats, history, rpc and send (PROTOCOL.md §3.4–§3.9,
// SERVER.md §2.3).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RawClient, connectedClient, subscribed } from './lib/clients.mjs';
import { waitFor } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';

async function rejectsWithCode(promise, code) {
    await assert.rejects(promise, (e) => {
        assert.equal(e.code, code, `expected error ${code}, got ${JSON.stringify(e)}`);
        return true;
    });
}

describe('publish and channel queries', { timeout: 60000 }, () => {
    const rotor = useRotor();

    it('client publish where allowed: subscribers get it with publisher info', async () => {
        const ch = 'chat:p1';
        const alice = await connectedClient(rotor, 'alice', { claims: { info: { name: 'Alice' } } });
        const sa = await subscribed(alice, ch);
        const bob = await connectedClient(rotor, 'bob');
        const sb = await subscribed(bob, ch);
        const res = await sa.publish({ text: 'hi' });
        assert.deepEqual(res, {});
        const p = await sb.rec.wait('publication');
        assert.deepEqual(p.data, { text: 'hi' });
        assert.equal(p.info.user, 'alice');
        assert.equal(p.info.client, alice.connectedCtx.client);
        assert.deepEqual(p.info.connInfo, { name: 'Alice' });
        assert.equal(p.offset, 1, 'chat keeps history: first offset is 1');
        // The publisher receives its own publication too (§3.4).
        const own = await sa.rec.wait('publication');
        assert.equal(own.info.client, alice.connectedCtx.client);
    });

    it('client publish on a channel without publish permission: 103', async () => {
        const c = await connectedClient(rotor, 'alice');
        await subscribed(c, 'nopub:p2');
        await rejectsWithCode(c.publish('nopub:p2', { x: 1 }), 103);
        assert.equal(c.state, 'connected');
    });

    it('allow_publish_for_subscriber needs a subscription: 103 otherwise', async () => {
        const c = await connectedClient(rotor, 'alice');
        await rejectsWithCode(c.publish('chat:not-subscribed', { x: 1 }), 103);
    });

    it('client publish to an unknown namespace: 102', async () => {
        const c = await connectedClient(rotor, 'alice');
        await rejectsWithCode(c.publish('nope:x', { x: 1 }), 102);
    });

    it('allow_publish_for_client: publish without subscribing', async () => {
        const watcher = await connectedClient(rotor, 'w');
        const sw = await subscribed(watcher, 'bare:p3');
        const c = await connectedClient(rotor, 'alice');
        await c.publish('bare:p3', [1, 'two', null]);
        const p = await sw.rec.wait('publication');
        assert.deepEqual(p.data, [1, 'two', null]);
        assert.equal(p.info.user, 'alice');
    });

    it('presence and presence_stats: 3 clients of 2 users', async () => {
        const ch = 'chat:presence';
        const a1 = await connectedClient(rotor, 'alice');
        const a2 = await connectedClient(rotor, 'alice');
        const b1 = await connectedClient(rotor, 'bob');
        const s1 = await subscribed(a1, ch);
        await subscribed(a2, ch);
        await subscribed(b1, ch);
        assert.deepEqual(await s1.presenceStats(), { numClients: 3, numUsers: 2 });
        const p = await s1.presence();
        const ids = [a1, a2, b1].map((c) => c.connectedCtx.client).sort();
        assert.deepEqual(Object.keys(p.clients).sort(), ids);
        assert.equal(p.clients[b1.connectedCtx.client].user, 'bob');
        assert.equal(p.clients[a2.connectedCtx.client].client, a2.connectedCtx.client);
        // Client-level calls behave the same as subscription-level ones.
        assert.deepEqual(await b1.presenceStats(ch), { numClients: 3, numUsers: 2 });
        const api = await rotor.apiResult('presence_stats', { channel: ch });
        assert.deepEqual(api, { num_clients: 3, num_users: 2 });
        // Leaving removes the entry.
        b1.disconnect();
        await b1.rec.wait('disconnected');
        await waitFor(async () => {
            const st = await rotor.apiResult('presence_stats', { channel: ch });
            return st.num_clients === 2 && st.num_users === 1;
        }, 3000, 'presence entry removed after disconnect');
    });

    it('presence where the namespace has it off: 108', async () => {
        const c = await connectedClient(rotor, 'alice');
        await rejectsWithCode(c.presence('bare:np'), 108);
        await rejectsWithCode(c.presenceStats('bare:np'), 108);
    });

    it('presence without permission: 103', async () => {
        const c = await connectedClient(rotor, 'alice');
        await subscribed(c, 'nopub:np');
        await rejectsWithCode(c.presence('nopub:np'), 103);
    });

    it('history: limit, since and reverse', async () => {
        const ch = 'hist:h1';
        let epoch = '';
        for (let n = 1; n <= 5; n++) {
            const r = await rotor.apiResult('publish', { channel: ch, data: { n } });
            assert.equal(r.offset, n);
            epoch = r.epoch;
        }
        assert.ok(epoch.length > 0);
        const c = await connectedClient(rotor, 'reader');
        const offs = (h) => h.publications.map((p) => p.offset);
        const ns = (h) => h.publications.map((p) => p.data.n);

        const pos = await c.history(ch);
        assert.deepEqual(pos, { publications: [], epoch, offset: 5 }, 'no limit: position only');

        const first2 = await c.history(ch, { limit: 2 });
        assert.deepEqual(offs(first2), [1, 2]);
        assert.deepEqual(ns(first2), [1, 2]);
        assert.equal(first2.offset, 5);
        assert.equal(first2.epoch, epoch);

        assert.deepEqual(offs(await c.history(ch, { limit: 2, reverse: true })), [5, 4]);
        assert.deepEqual(offs(await c.history(ch, { limit: -1 })), [1, 2, 3, 4, 5]);
        assert.deepEqual(offs(await c.history(ch, { limit: 10, since: { offset: 2, epoch } })), [3, 4, 5]);
        assert.deepEqual(offs(await c.history(ch, { limit: 10, since: { offset: 3, epoch }, reverse: true })), [2, 1]);
        assert.deepEqual(offs(await c.history(ch, { limit: 10, since: { offset: 5, epoch } })), []);
        await rejectsWithCode(c.history(ch, { limit: 10, since: { offset: 2, epoch: 'not-the-epoch' } }), 112);
    });

    it('history of a fresh channel: empty list, offset 0, an epoch', async () => {
        const c = await connectedClient(rotor, 'reader');
        const h = await c.history('hist:fresh', { limit: 10 });
        assert.deepEqual(h.publications, []);
        assert.equal(h.offset, 0);
        assert.ok(h.epoch.length > 0);
    });

    it('history where the namespace keeps none: 108', async () => {
        const c = await connectedClient(rotor, 'reader');
        await rejectsWithCode(c.history('bare:nh', { limit: 10 }), 108);
    });

    it('history without permission: 103', async () => {
        const c = await connectedClient(rotor, 'reader');
        // chat allows history only to subscribers.
        await rejectsWithCode(c.history('chat:not-subscribed', { limit: 1 }), 103);
    });

    it('rpc without a handler: 108', async () => {
        const c = await connectedClient(rotor, 'alice');
        await rejectsWithCode(c.rpc('getProfile', { id: 1 }), 108);
        assert.equal(c.state, 'connected');
    });

    it('send without an async message handler: disconnect 3508 (§3.9)', async () => {
        const c = await connectedClient(rotor, 'alice');
        await c.send({ typing: true });
        const d = await c.rec.wait('disconnected');
        assert.equal(d.code, 3508);
    });

    it('publish reply and push order on one connection (raw)', async () => {
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'raw' }));
        await raw.command({ subscribe: { channel: 'chat:order' } });
        const r = await raw.command({ publish: { channel: 'chat:order', data: { k: 'v' } } });
        assert.deepEqual(r, { id: r.id, publish: {} });
        const push = await raw.waitPush((p) => p.channel === 'chat:order' && p.pub);
        assert.deepEqual(push.pub.data, { k: 'v' });
        assert.equal(push.pub.info.user, 'raw');
        assert.equal(push.pub.offset, 1);
    });
});
