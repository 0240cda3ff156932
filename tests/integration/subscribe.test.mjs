// Client-side subscriptions: permissions, tokens, limits, data fidelity, join/leave
// (PROTOCOL.md §1.2, §3.2, §3.3, §7.2, §7.3, §9).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RawClient, connectedClient, newSub, subscribed } from './lib/clients.mjs';
import { nowSec, sleep } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';

const CHANNEL_LIMIT = 4;

describe('subscribe', { timeout: 60000 }, () => {
    const rotor = useRotor({ config: { client: { channel_limit: CHANNEL_LIMIT } } });

    it('subscribes to a public channel and receives API publications', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = await subscribed(c, 'pub:s1');
        assert.equal(s.subscribedCtx.channel, 'pub:s1');
        assert.equal(s.subscribedCtx.recoverable, false);
        assert.equal(s.subscribedCtx.wasRecovering, false);
        await rotor.apiResult('publish', { channel: 'pub:s1', data: { text: 'hi' } });
        const p = await s.rec.wait('publication');
        assert.deepEqual(p.data, { text: 'hi' });
        assert.equal(p.channel, 'pub:s1');
        assert.equal(p.info, undefined, 'API publications carry no client info');
        assert.equal(p.offset, undefined, 'no history: no offset');
    });

    it('publication data reaches the socket byte for byte (raw WebSocket)', async () => {
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'bytes' }));
        const r = await raw.command({ subscribe: { channel: 'pub:raw' } });
        assert.deepEqual(r.subscribe, {}, JSON.stringify(r));
        // Raw fetch body: JSON.stringify would normalise 1.10 and the big integer.
        const data = '{"n":1.10,"big":1180591620717411303424}';
        const res = await rotor.apiRaw('publish', `{"channel":"pub:raw","data":${data}}`);
        assert.equal(res.status, 200);
        assert.deepEqual(res.json(), { result: {} });
        const f = await raw.waitFrame((x) => x.text.includes('"pub"'));
        assert.ok(f.text.includes(`"data":${data}`), `frame: ${f.text}`);
        const push = (await raw.waitPush((p) => p.pub)).pub;
        assert.equal(push.info, undefined);
    });

    it('whitespace inside data is kept, raw newlines are dropped (§1.2)', async () => {
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'bytes' }));
        await raw.command({ subscribe: { channel: 'pub:ws' } });
        await rotor.apiRaw('publish', '{"channel":"pub:ws","data":{ "a" : [1,  2] ,\n "s":"x\\ny"}}');
        const f = await raw.waitFrame((x) => x.text.includes('"pub"'));
        assert.ok(f.text.includes('"data":{ "a" : [1,  2] , "s":"x\\ny"}'), `frame: ${f.text}`);
        assert.ok(!f.text.includes('\r'));
    });

    it('unknown namespace: error 102, subscription unsubscribed, connection stays', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = newSub(c, 'nope:x');
        s.subscribe();
        const u = await s.rec.wait('unsubscribed');
        assert.equal(u.code, 102);
        assert.equal(s.state, 'unsubscribed');
        assert.equal(c.state, 'connected');
    });

    it('channel name longer than 255 bytes: error 107', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = newSub(c, `pub:${'a'.repeat(260)}`);
        s.subscribe();
        assert.equal((await s.rec.wait('unsubscribed')).code, 107);
    });

    it('non-ASCII channel name: error 107', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = newSub(c, 'pub:caf\u00e9');
        s.subscribe();
        assert.equal((await s.rec.wait('unsubscribed')).code, 107);
    });

    it('no permission to subscribe: error 103', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = newSub(c, 'priv:closed');
        s.subscribe();
        assert.equal((await s.rec.wait('unsubscribed')).code, 103);
    });

    it('private $ channel without token: error 103', async () => {
        const c = await connectedClient(rotor, 'u1');
        // pub allows client subscribe, but the private prefix always needs a token (§2.1).
        const s = newSub(c, '$pub:secret');
        s.subscribe();
        assert.equal((await s.rec.wait('unsubscribed')).code, 103);
    });

    it('private $ channel with subscription token from getToken: subscribed', async () => {
        const c = await connectedClient(rotor, 'u1');
        const ch = '$priv:room';
        const asked = [];
        const s = newSub(c, ch, {
            getToken: async (ctx) => {
                asked.push(ctx.channel);
                return rotor.makeSubToken('u1', ctx.channel, { info: { role: 'admin' } });
            },
        });
        s.subscribe();
        await s.rec.wait('subscribed');
        assert.deepEqual(asked, [ch]);
        await rotor.apiResult('publish', { channel: ch, data: { secret: true } });
        assert.deepEqual((await s.rec.wait('publication')).data, { secret: true });
        // Subscription token info becomes chan_info (§7.2).
        const p = await rotor.apiResult('presence', { channel: ch });
        assert.deepEqual(p.presence[c.connectedCtx.client].chan_info, { role: 'admin' });
    });

    it('subscription token with a bad signature: error 103, connection stays', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = newSub(c, '$priv:badsig', {
            token: rotor.makeSubToken('u1', '$priv:badsig', {}, { secret: 'wrong' }),
        });
        s.subscribe();
        assert.equal((await s.rec.wait('unsubscribed')).code, 103);
        assert.equal(c.state, 'connected');
    });

    it('expired subscription token: 109, getToken called, subscribed', async () => {
        const c = await connectedClient(rotor, 'u1');
        let calls = 0;
        const s = newSub(c, '$priv:exp', {
            token: rotor.makeSubToken('u1', '$priv:exp', { exp: nowSec() - 5 }),
            minResubscribeDelay: 50,
            maxResubscribeDelay: 200,
            getToken: async (ctx) => {
                calls++;
                return rotor.makeSubToken('u1', ctx.channel);
            },
        });
        s.subscribe();
        await s.rec.wait('subscribed');
        assert.equal(calls, 1);
        assert.equal((await s.rec.wait('error')).error.code, 109);
    });

    it('subscription token for another channel: disconnect 3500', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = newSub(c, '$priv:mine', {
            getToken: async () => rotor.makeSubToken('u1', '$priv:other'),
        });
        s.subscribe();
        const d = await c.rec.wait('disconnected');
        assert.equal(d.code, 3500);
    });

    it('subscription token of another user: disconnect 3500', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = newSub(c, '$priv:stolen', {
            getToken: async (ctx) => rotor.makeSubToken('someone-else', ctx.channel),
        });
        s.subscribe();
        assert.equal((await c.rec.wait('disconnected')).code, 3500);
    });

    it('user-limited channel: listed users subscribe, others get 103', async () => {
        const ch = 'user:#u1,u2';
        const a = await connectedClient(rotor, 'u2');
        await subscribed(a, ch);
        const b = await connectedClient(rotor, 'u3');
        const s = newSub(b, ch);
        s.subscribe();
        assert.equal((await s.rec.wait('unsubscribed')).code, 103);
    });

    it(`channel_limit (${CHANNEL_LIMIT}): next subscribe gets 106`, async () => {
        const c = await connectedClient(rotor, 'u1');
        for (let i = 0; i < CHANNEL_LIMIT; i++) await subscribed(c, `pub:limit-${i}`);
        const s = newSub(c, 'pub:limit-over');
        s.subscribe();
        assert.equal((await s.rec.wait('unsubscribed')).code, 106);
        assert.equal(c.state, 'connected');
    });

    it('second subscribe to the same channel: error 105 (raw)', async () => {
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'u1' }));
        const r1 = await raw.command({ subscribe: { channel: 'pub:twice' } });
        assert.ok(r1.subscribe, JSON.stringify(r1));
        const r2 = await raw.command({ subscribe: { channel: 'pub:twice' } });
        assert.equal(r2.error?.code, 105, JSON.stringify(r2));
        assert.ok(raw.isOpen());
    });

    it('empty channel in subscribe: disconnect 3501 (raw)', async () => {
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'u1' }));
        raw.send({ id: 5, subscribe: { channel: '' } });
        assert.equal((await raw.waitClose()).code, 3501);
    });

    it('after unsubscribe no more publications arrive (raw)', async () => {
        const ch = 'pub:unsub';
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'u1' }));
        await raw.command({ subscribe: { channel: ch } });
        await rotor.apiResult('publish', { channel: ch, data: { n: 1 } });
        await raw.waitPush((p) => p.channel === ch && p.pub);
        const r = await raw.command({ unsubscribe: { channel: ch } });
        assert.deepEqual(r.unsubscribe, {}, JSON.stringify(r));
        // A second subscriber proves the next publication was delivered.
        const witness = await connectedClient(rotor, 'u2');
        const ws = await subscribed(witness, ch);
        await rotor.apiResult('publish', { channel: ch, data: { n: 2 } });
        await ws.rec.wait('publication', (p) => p.data.n === 2);
        await sleep(200);
        assert.equal(raw.pushes(ch).length, 1, raw.describe());
        // Client-initiated unsubscribe gets no unsubscribe push (§3.3).
        assert.ok(!raw.pushes(ch).some((p) => p.unsubscribe));
        // Unsubscribing a channel we are not subscribed to is a success.
        const again = await raw.command({ unsubscribe: { channel: 'pub:never' } });
        assert.deepEqual(again.unsubscribe, {});
    });

    it('SDK unsubscribe/subscribe cycle resumes delivery', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = await subscribed(c, 'pub:cycle');
        s.unsubscribe();
        await s.rec.wait('unsubscribed');
        s.subscribe();
        await s.rec.wait('subscribed', () => true, 4000, 2);
        await rotor.apiResult('publish', { channel: 'pub:cycle', data: { back: true } });
        assert.deepEqual((await s.rec.wait('publication')).data, { back: true });
    });

    it('join and leave pushes with join_leave + force_push_join_leave', async () => {
        const ch = 'chat:jl';
        const a = await connectedClient(rotor, 'alice');
        const sa = await subscribed(a, ch);
        const b = await connectedClient(rotor, 'bob', { claims: { info: { nick: 'b' } } });
        const sb = await subscribed(b, ch);
        const bid = b.connectedCtx.client;
        const join = await sa.rec.wait('join', (j) => j.info.client === bid);
        assert.equal(join.info.user, 'bob');
        assert.equal(join.channel, ch);
        assert.deepEqual(join.info.connInfo, { nick: 'b' });
        sb.unsubscribe();
        const leave = await sa.rec.wait('leave', (l) => l.info.client === bid);
        assert.equal(leave.info.user, 'bob');

        // A disconnecting subscriber leaves too.
        const c = await connectedClient(rotor, 'carol');
        await subscribed(c, ch);
        const cid = c.connectedCtx.client;
        await sa.rec.wait('join', (j) => j.info.client === cid);
        c.disconnect();
        const l2 = await sa.rec.wait('leave', (l) => l.info.client === cid);
        assert.equal(l2.info.user, 'carol');
    });

    it('no join/leave pushes where the namespace does not enable them', async () => {
        const a = await connectedClient(rotor, 'alice');
        const sa = await subscribed(a, 'nopub:quiet', { joinLeave: true });
        const b = await connectedClient(rotor, 'bob');
        await subscribed(b, 'nopub:quiet');
        await sleep(200);
        assert.equal(sa.rec.count('join'), 0);
    });
});
