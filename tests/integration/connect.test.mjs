// Connection establishment and authentication (PROTOCOL.md §3.1, §6.3, §7.1, §7.4, §7.5).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
    RawClient, UUID_RE, connectedClient, newSub, sdkClient, subscribed,
} from './lib/clients.mjs';
import { nowSec, signJwt, waitFor } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';

describe('connect with tokens', { timeout: 60000 }, () => {
    const rotor = useRotor({ config: { client: { expired_close_delay: '1s' } } });

    it('connects with a valid token: connected event, client id is a UUID', async () => {
        const c = sdkClient(rotor, { token: rotor.makeToken({ sub: 'alice' }) });
        c.connect();
        const ctx = await c.rec.wait('connected');
        assert.match(ctx.client, UUID_RE);
        assert.equal(ctx.transport, 'websocket');
        assert.equal(c.state, 'connected');
    });

    it('connect reply carries client, version and expiry (raw frame)', async () => {
        const raw = await RawClient.open(rotor);
        const reply = await raw.connect(rotor.makeToken({ sub: 'alice', exp: nowSec() + 100 }));
        assert.equal(reply.error, undefined, JSON.stringify(reply));
        assert.match(reply.connect.client, UUID_RE);
        assert.equal(typeof reply.connect.version, 'string');
        assert.equal(reply.connect.expires, true);
        assert.ok(reply.connect.ttl > 90 && reply.connect.ttl <= 100, `ttl ${reply.connect.ttl}`);
        // Emulation-only fields must not appear on WebSocket (§3.1 result table).
        assert.equal(reply.connect.session, undefined);
        assert.equal(reply.connect.node, undefined);
    });

    it('two connections get distinct client ids', async () => {
        const a = await connectedClient(rotor, 'alice');
        const b = await connectedClient(rotor, 'alice');
        assert.notEqual(a.connectedCtx.client, b.connectedCtx.client);
    });

    it('wrong signature: disconnected with 3500, no reconnect', async () => {
        const c = sdkClient(rotor, { token: rotor.makeToken({ sub: 'alice' }, { secret: 'wrong' }) });
        c.connect();
        const ctx = await c.rec.wait('disconnected');
        assert.equal(ctx.code, 3500);
        assert.equal(c.state, 'disconnected');
        await c.rec.expectNone('connected', 300);
    });

    it('malformed token, alg none, numeric sub, channel claim: close 3500', async () => {
        const bad = [
            'not-a-jwt',
            'abc.def.ghi',
            signJwt({ sub: 'alice', exp: nowSec() + 60 }, '', { alg: 'none' }),
            rotor.makeToken({ sub: 42 }),
            rotor.makeToken({ sub: 'alice', channel: 'pub:x' }),
        ];
        for (const token of bad) {
            const raw = await RawClient.open(rotor);
            raw.send({ id: 1, connect: { token } });
            const cl = await raw.waitClose();
            assert.equal(cl.code, 3500, `token ${token}: ${JSON.stringify(cl)} ${raw.describe()}`);
        }
    });

    it('expired token: error 109, getToken called, then connected', async () => {
        let calls = 0;
        const c = sdkClient(rotor, {
            token: rotor.makeToken({ sub: 'alice', exp: nowSec() - 10 }),
            getToken: async () => {
                calls++;
                return rotor.makeToken({ sub: 'alice' });
            },
        });
        c.connect();
        await c.rec.wait('connected');
        assert.equal(calls, 1);
        const err = await c.rec.wait('error', (e) => e.type === 'connect');
        assert.equal(err.error.code, 109);
    });

    it('expired token (raw): error reply 109, connection stays open', async () => {
        const raw = await RawClient.open(rotor);
        const reply = await raw.connect(rotor.makeToken({ sub: 'alice', exp: nowSec() - 10 }));
        assert.equal(reply.error?.code, 109, JSON.stringify(reply));
        assert.ok(raw.isOpen());
    });

    it('no token while anonymous connect is disabled: disconnected with 3501', async () => {
        const c = sdkClient(rotor);
        c.connect();
        const ctx = await c.rec.wait('disconnected');
        assert.equal(ctx.code, 3501);
        assert.equal(c.state, 'disconnected');
    });

    it('token with empty sub is an anonymous connection (allowed by default)', async () => {
        const c = await connectedClient(rotor, '');
        const s = await subscribed(c, 'chat:anon-token');
        const p = await s.presence();
        assert.equal(p.clients[c.connectedCtx.client].user, '');
    });

    it('token info is visible in presence (client and API)', async () => {
        const c = await connectedClient(rotor, 'alice', { claims: { info: { name: 'Alice', n: [1, 2] } } });
        const s = await subscribed(c, 'chat:info');
        const me = c.connectedCtx.client;
        const p = await s.presence();
        assert.deepEqual(p.clients[me].connInfo, { name: 'Alice', n: [1, 2] });
        assert.equal(p.clients[me].user, 'alice');
        const api = await rotor.apiResult('presence', { channel: 'chat:info' });
        assert.deepEqual(api.presence[me], {
            user: 'alice', client: me, conn_info: { name: 'Alice', n: [1, 2] },
        });
    });

    it('expire_at overrides exp as connection expiry; 0 means never', async () => {
        const raw = await RawClient.open(rotor);
        const r1 = await raw.connect(rotor.makeToken({ sub: 'a', exp: nowSec() + 3600, expire_at: nowSec() + 100 }));
        assert.equal(r1.connect.expires, true);
        assert.ok(r1.connect.ttl > 90 && r1.connect.ttl <= 100, `ttl ${r1.connect.ttl}`);

        const raw2 = await RawClient.open(rotor);
        const r2 = await raw2.connect(rotor.makeToken({ sub: 'a', exp: nowSec() + 3600, expire_at: 0 }));
        assert.ok(r2.connect, JSON.stringify(r2));
        assert.ok(!r2.connect.expires, 'expire_at 0 must not expire');
        assert.ok(!r2.connect.ttl);
    });

    it('expire_at in the past: error 110, SDK disconnected with 110', async () => {
        const token = rotor.makeToken({ sub: 'a', exp: nowSec() + 3600, expire_at: nowSec() - 5 });
        const raw = await RawClient.open(rotor);
        const r = await raw.connect(token);
        assert.equal(r.error?.code, 110, JSON.stringify(r));

        const c = sdkClient(rotor, { token });
        c.connect();
        const ctx = await c.rec.wait('disconnected');
        assert.equal(ctx.code, 110);
    });

    it('connection refresh: getToken called again on expiry, connection stays', async () => {
        const exp = nowSec() + 2;
        let calls = 0;
        const c = sdkClient(rotor, {
            token: rotor.makeToken({ sub: 'refresher', exp }),
            getToken: async () => {
                calls++;
                return rotor.makeToken({ sub: 'refresher', exp: nowSec() + 3600 });
            },
        });
        c.connect();
        await c.rec.wait('connected');
        await waitFor(() => calls >= 1, 5000, 'getToken for refresh');
        // Past the old expiry plus expired_close_delay (1 s): an unrefreshed connection is
        // closed with 3005 by then (§7.5 step 3).
        await waitFor(() => nowSec() >= exp + 2, 5000, 'old expiry + grace');
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(c.state, 'connected');
        assert.equal(calls, 1);
        assert.equal(c.rec.count('connecting', (x) => x.code !== 0), 0, 'no reconnect');
        assert.equal(c.rec.count('disconnected'), 0);
        assert.equal(c.rec.count('connected'), 1);
    });

    it('refresh command (raw): new ttl; other user token: 3500', async () => {
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'bob', exp: nowSec() + 60 }));
        const r = await raw.command({ refresh: { token: rotor.makeToken({ sub: 'bob', exp: nowSec() + 500 }) } });
        assert.equal(r.refresh?.expires, true, JSON.stringify(r));
        assert.ok(r.refresh.ttl > 490 && r.refresh.ttl <= 500, `ttl ${r.refresh.ttl}`);
        raw.send({ id: 99, refresh: { token: rotor.makeToken({ sub: 'mallory' }) } });
        assert.equal((await raw.waitClose()).code, 3500);
    });

    it('connection not refreshed: closed with 3005 after expiry + expired_close_delay', async () => {
        const raw = await RawClient.open(rotor, { autoPong: true });
        const exp = nowSec() + 2;
        const r = await raw.connect(rotor.makeToken({ sub: 'late', exp }));
        assert.equal(r.connect.expires, true);
        const cl = await raw.waitClose(8000);
        assert.equal(cl.code, 3005, JSON.stringify(cl));
        assert.ok(Date.now() / 1000 >= exp, 'closed before expiry');
    });

    it('token channels claim: server-side subscribed event, publications on the client', async () => {
        const ch = 'pub:srv-sub';
        const c = sdkClient(rotor, { token: rotor.makeToken({ sub: 'srv', channels: [ch] }) });
        c.connect();
        const sctx = await c.rec.wait('subscribed', (x) => x.channel === ch);
        assert.equal(sctx.wasRecovering, false);
        const res = await rotor.api('publish', { channel: ch, data: { hello: 'server-side' } });
        assert.deepEqual(res, { result: {} });
        const pub = await c.rec.wait('publication', (x) => x.channel === ch);
        assert.deepEqual(pub.data, { hello: 'server-side' });
        assert.equal(c.getSubscription(ch), null, 'server-side subs are not client-side subs');
    });

    it('token channels claim with unknown namespace: error 102', async () => {
        const raw = await RawClient.open(rotor);
        const r = await raw.connect(rotor.makeToken({ sub: 'srv', channels: ['nope:x'] }));
        assert.equal(r.error?.code, 102, JSON.stringify(r));
    });

    it('token subs claim: server-side subscription with chan_info', async () => {
        const ch = 'chat:srv-subs';
        const c = sdkClient(rotor, {
            token: rotor.makeToken({ sub: 'srv2', subs: { [ch]: { info: { role: 'mod' } } } }),
        });
        c.connect();
        await c.rec.wait('subscribed', (x) => x.channel === ch);
        const api = await rotor.apiResult('presence', { channel: ch });
        const me = (await c.rec.wait('connected')).client;
        assert.deepEqual(api.presence[me].chan_info, { role: 'mod' });
    });
});

describe('connect: anonymous access enabled', { timeout: 30000 }, () => {
    const rotor = useRotor({
        config: {
            client: { allow_anonymous_connect_without_token: true, disallow_anonymous_connection_tokens: true },
        },
    });

    it('connects without a token as user ""', async () => {
        const c = sdkClient(rotor);
        c.connect();
        const ctx = await c.rec.wait('connected');
        assert.match(ctx.client, UUID_RE);
        const s = await subscribed(c, 'chat:anon');
        const p = await s.presence();
        assert.equal(p.clients[ctx.client].user, '');
    });

    it('anonymous client is refused where only authenticated clients may subscribe (103)', async () => {
        const c = sdkClient(rotor);
        c.connect();
        await c.rec.wait('connected');
        const s = newSub(c, 'nopub:anon');
        s.subscribe();
        const u = await s.rec.wait('unsubscribed');
        assert.equal(u.code, 103);
        assert.equal(c.state, 'connected');
    });

    it('token with empty sub while anonymous tokens are disallowed: 3507', async () => {
        const c = sdkClient(rotor, { token: rotor.makeToken({ sub: '' }) });
        c.connect();
        const ctx = await c.rec.wait('disconnected');
        assert.equal(ctx.code, 3507);
    });

    it('a token still authenticates the user', async () => {
        const c = await connectedClient(rotor, 'carol');
        const s = await subscribed(c, 'nopub:carol');
        assert.equal(s.state, 'subscribed');
    });
});

describe('connect: insecure mode', { timeout: 30000 }, () => {
    const rotor = useRotor({ config: { client: { insecure: true } } });

    it('connects without a token and may do everything', async () => {
        const c = sdkClient(rotor);
        c.connect();
        await c.rec.wait('connected');
        // priv has no client permissions at all; insecure allows it (§2.3 rule 8).
        const s = await subscribed(c, 'priv:anything');
        await c.publish('nopub:x', { free: true });
        await s.publish({ mine: 1 });
        const pub = await s.rec.wait('publication');
        assert.deepEqual(pub.data, { mine: 1 });
        const stats = await s.presenceStats();
        assert.deepEqual(stats, { numClients: 1, numUsers: 1 });
        const h = await c.history('hist:insecure', { limit: 10 });
        assert.deepEqual(h.publications, []);
    });
});
