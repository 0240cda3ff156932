// Token expiry and refresh, per-connection and per-user limits, personal channels,
// server-side recovery, binary data, data formats, metrics and the command line
// (PROTOCOL.md §3.1, §3.11, §6, §7.5; SERVER.md §1.5, §2.1, §2.4, §2.5, §5.1, §7).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

import {
    RawClient, UUID_RE, WebSocket, connectedClient, newSub, sdkClient, subscribed,
} from './lib/clients.mjs';
import {
    HMAC_SECRET, NAMESPACES, freePort, merge, nowSec, runRotorCli, sleep, startRotor, waitFor,
} from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';

/** A ws subclass for centrifuge-js that keeps every JSON command the SDK sent (out) and
 * every reply/push it received (in), so a test can see the frames behind SDK events. */
function recordingWebSocket() {
    const log = { out: [], in: [] };
    const parse = (text, into) => {
        for (const line of text.split('\n')) {
            if (line.trim() === '') continue;
            try {
                into.push(JSON.parse(line));
            } catch {
                into.push({ __unparsable: line });
            }
        }
    };
    class RecordingWebSocket extends WebSocket {
        constructor(...args) {
            super(...args);
            this.on('message', (data, isBinary) => {
                if (!isBinary) parse(data.toString(), log.in);
            });
        }

        send(data, ...rest) {
            if (typeof data === 'string') parse(data, log.out);
            return super.send(data, ...rest);
        }
    }
    return { log, RecordingWebSocket };
}

function tempDir() {
    return mkdtempSync(path.join(os.tmpdir(), 'rotor-it-more-'));
}

const JWT_RE = /[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;

describe('expiry and sub_refresh', { timeout: 40000 }, () => {
    // Expiry checks for subscriptions run on the presence tick (PROTOCOL.md §7.5).
    const rotor = useRotor({
        config: {
            client: {
                expired_close_delay: '1s', expired_sub_close_delay: '1s', presence_update_interval: '1s',
            },
        },
    });

    /** Raw client connected as user and subscribed to the private channel ch with a sub
     * token expiring at exp. */
    async function rawSubscribed(user, ch, exp) {
        const raw = await RawClient.open(rotor, { autoPong: true });
        const r = await raw.connect(rotor.makeToken({ sub: user }));
        assert.ok(r.connect, JSON.stringify(r));
        const s = await raw.command({ subscribe: { channel: ch, token: rotor.makeSubToken(user, ch, { exp }) } });
        assert.ok(s.subscribe, JSON.stringify(s));
        return { raw, sub: s.subscribe };
    }

    it('sub_refresh (SDK): getToken called again, subscription stays and keeps receiving', async () => {
        const ch = '$priv:refresh-sdk';
        const user = 'subref';
        const { log, RecordingWebSocket } = recordingWebSocket();
        const c = await connectedClient(rotor, user, { opts: { websocket: RecordingWebSocket } });
        const exp = nowSec() + 3;
        let calls = 0;
        const s = newSub(c, ch, {
            getToken: async (ctx) => {
                assert.equal(ctx.channel, ch);
                calls++;
                return rotor.makeSubToken(user, ch, { exp: calls === 1 ? exp : nowSec() + 3600 });
            },
        });
        s.subscribe();
        await s.rec.wait('subscribed');
        const subReply = log.in.find((m) => m.subscribe);
        assert.equal(subReply?.subscribe?.expires, true, JSON.stringify(subReply));
        assert.ok(subReply.subscribe.ttl > 0 && subReply.subscribe.ttl <= 3, `ttl ${subReply.subscribe.ttl}`);

        await waitFor(() => calls >= 2, 6000, 'getToken called for the refresh');
        const cmd = await waitFor(() => log.out.find((m) => m.sub_refresh), 2000, 'sub_refresh sent');
        assert.equal(cmd.sub_refresh.channel, ch);
        const reply = await waitFor(() => log.in.find((m) => m.id === cmd.id), 2000, 'sub_refresh reply');
        assert.equal(reply.error, undefined, JSON.stringify(reply));
        assert.equal(reply.sub_refresh?.expires, true, JSON.stringify(reply));
        assert.ok(reply.sub_refresh.ttl > 3500 && reply.sub_refresh.ttl <= 3600, `ttl ${reply.sub_refresh.ttl}`);

        // Past old expiry + expired_sub_close_delay (1 s) + one check tick (1 s), plus margin:
        // an unrefreshed subscription would have been unsubscribed with 2501 by now.
        await waitFor(() => Date.now() >= (exp + 2) * 1000 + 700, 8000, 'old expiry + grace + tick');
        assert.equal(s.state, 'subscribed');
        assert.equal(s.rec.count('unsubscribed'), 0);
        assert.equal(s.rec.count('subscribed'), 1, 'no resubscribe');
        assert.equal(calls, 2);
        assert.equal(c.state, 'connected');
        await rotor.apiResult('publish', { channel: ch, data: { after: 'refresh' } });
        const p = await s.rec.wait('publication');
        assert.deepEqual(p.data, { after: 'refresh' });
    });

    it('sub_refresh (raw): 103 not subscribed, 107 empty token, 3500 other channel, 3005 expired', async () => {
        const ch = '$priv:refresh-raw';
        const user = 'subraw';

        // Not subscribed to the channel: error 103, connection stays.
        const raw1 = await RawClient.open(rotor);
        await raw1.connect(rotor.makeToken({ sub: user }));
        const r1 = await raw1.command({ sub_refresh: { channel: ch, token: rotor.makeSubToken(user, ch) } });
        assert.equal(r1.error?.code, 103, JSON.stringify(r1));
        assert.ok(raw1.isOpen());

        // Empty token: error 107, connection stays; a valid token then refreshes.
        const { raw: raw2 } = await rawSubscribed(user, ch, nowSec() + 60);
        const r2 = await raw2.command({ sub_refresh: { channel: ch, token: '' } });
        assert.equal(r2.error?.code, 107, JSON.stringify(r2));
        assert.ok(raw2.isOpen());
        const r2b = await raw2.command({
            sub_refresh: { channel: ch, token: rotor.makeSubToken(user, ch, { exp: nowSec() + 600 }) },
        });
        assert.equal(r2b.sub_refresh?.expires, true, JSON.stringify(r2b));
        assert.ok(r2b.sub_refresh.ttl > 590 && r2b.sub_refresh.ttl <= 600, `ttl ${r2b.sub_refresh.ttl}`);

        // Token issued for another channel: disconnect 3500.
        const { raw: raw3 } = await rawSubscribed(user, ch, nowSec() + 60);
        raw3.send({ id: 50, sub_refresh: { channel: ch, token: rotor.makeSubToken(user, '$priv:other') } });
        const cl3 = await raw3.waitClose();
        assert.equal(cl3.code, 3500, `${JSON.stringify(cl3)} ${raw3.describe()}`);

        // Expired token: disconnect 3005 (§3.11 note).
        const { raw: raw4 } = await rawSubscribed(user, ch, nowSec() + 60);
        raw4.send({ id: 51, sub_refresh: { channel: ch, token: rotor.makeSubToken(user, ch, { exp: nowSec() - 10 }) } });
        const cl4 = await raw4.waitClose();
        assert.equal(cl4.code, 3005, `${JSON.stringify(cl4)} ${raw4.describe()}`);
        assert.equal(cl4.reason, 'connection expired');
    });

    it('subscription not refreshed: unsubscribe push 2501 after exp + expired_sub_close_delay', async () => {
        const ch = '$priv:sub-expiry';
        const exp = nowSec() + 2;
        const { raw, sub } = await rawSubscribed('subexp', ch, exp);
        assert.equal(sub.expires, true);
        assert.ok(sub.ttl > 0 && sub.ttl <= 2, `ttl ${sub.ttl}`);
        const push = await raw.waitPush((p) => p.channel === ch && p.unsubscribe, 8000, 'unsubscribe push');
        const at = raw.frames.find((f) => f.text.includes('"unsubscribe"')).at;
        assert.equal(push.unsubscribe.code, 2501, JSON.stringify(push));
        assert.equal(push.unsubscribe.reason, 'subscription expired');
        assert.ok(at >= (exp + 1) * 1000 - 50, `unsubscribed ${(exp + 1) * 1000 - at} ms before exp + delay`);
        assert.ok(at <= (exp + 1) * 1000 + 2500, `unsubscribed ${at - (exp + 1) * 1000} ms after exp + delay`);
        // Client-side subscription ends, the connection does not.
        assert.ok(raw.isOpen());
        await rotor.apiResult('publish', { channel: ch, data: { late: true } });
        await sleep(300);
        assert.equal(raw.pushes(ch).filter((p) => p.pub).length, 0, 'publication after the unsubscribe');
    });

    it('connection not refreshed: closed with 3005 after exp + expired_close_delay', async () => {
        const raw = await RawClient.open(rotor, { autoPong: true });
        const exp = nowSec() + 2;
        const r = await raw.connect(rotor.makeToken({ sub: 'connexp', exp }));
        assert.equal(r.connect?.expires, true, JSON.stringify(r));
        const cl = await raw.waitClose(8000);
        assert.equal(cl.code, 3005, JSON.stringify(cl));
        assert.equal(cl.reason, 'connection expired');
        assert.ok(cl.at >= (exp + 1) * 1000 - 50, `closed ${(exp + 1) * 1000 - cl.at} ms before exp + delay`);
        assert.ok(cl.at <= (exp + 1) * 1000 + 1500, `closed ${cl.at - (exp + 1) * 1000} ms after exp + delay`);
    });
});

describe('limits', { timeout: 30000 }, () => {
    const CHANNEL_LIMIT = 3;
    // Two workers so connections of one user land on both: the user limit is per node.
    const rotor = useRotor({
        config: { workers: 2, client: { user_connection_limit: 2, channel_limit: CHANNEL_LIMIT } },
    });

    it('user_connection_limit: third connection of a user closed with 3504, others unaffected', async () => {
        const a = await connectedClient(rotor, 'limited');
        const b = await connectedClient(rotor, 'limited');

        const c = sdkClient(rotor, { token: rotor.makeToken({ sub: 'limited' }) });
        c.connect();
        const d = await c.rec.wait('disconnected');
        assert.equal(d.code, 3504, JSON.stringify(d));
        assert.equal(c.state, 'disconnected');
        await c.rec.expectNone('connected', 200);

        // Several raw attempts, so both workers have refused one.
        for (let i = 0; i < 4; i++) {
            const raw = await RawClient.open(rotor);
            raw.send({ id: 1, connect: { token: rotor.makeToken({ sub: 'limited' }) } });
            const cl = await raw.waitClose();
            assert.equal(cl.code, 3504, `attempt ${i}: ${JSON.stringify(cl)} ${raw.describe()}`);
            assert.equal(cl.reason, 'connection limit');
        }

        // Another user has its own budget.
        await connectedClient(rotor, 'unlimited');
        await connectedClient(rotor, 'unlimited');
        assert.equal(a.state, 'connected');
        assert.equal(b.state, 'connected');

        // One of the first two leaves: a new connection of the user is accepted.
        a.disconnect();
        await sleep(300);
        const e = sdkClient(rotor, { token: rotor.makeToken({ sub: 'limited' }) });
        e.connect();
        const ev = await Promise.race([e.rec.wait('connected'), e.rec.wait('disconnected')]);
        assert.equal(e.state, 'connected', `after a disconnect: ${JSON.stringify(ev)}`);
        assert.equal(b.state, 'connected');
    });

    it('channel_limit: channels claim over the limit 3505, client subscribe over it 106', async () => {
        const tooMany = ['pub:cl1', 'pub:cl2', 'pub:cl3', 'pub:cl4'];
        const c = sdkClient(rotor, { token: rotor.makeToken({ sub: 'chlim', channels: tooMany }) });
        c.connect();
        const d = await c.rec.wait('disconnected');
        assert.equal(d.code, 3505, JSON.stringify(d));
        assert.equal(c.state, 'disconnected');

        const raw = await RawClient.open(rotor);
        raw.send({ id: 1, connect: { token: rotor.makeToken({ sub: 'chlim', channels: tooMany }) } });
        const cl = await raw.waitClose();
        assert.equal(cl.code, 3505, `${JSON.stringify(cl)} ${raw.describe()}`);
        assert.equal(cl.reason, 'channel limit');

        // Exactly the limit is fine.
        const ok = sdkClient(rotor, { token: rotor.makeToken({ sub: 'chlim', channels: tooMany.slice(0, 3) }) });
        ok.connect();
        await ok.rec.wait('connected');
        await ok.rec.wait('subscribed', () => true, 4000, 3);

        // Client-side: the subscription beyond the limit gets 106, the connection stays.
        const s = await connectedClient(rotor, 'chlim2');
        for (let i = 1; i <= CHANNEL_LIMIT; i++) await subscribed(s, `pub:own${i}`);
        const over = newSub(s, 'pub:own-over');
        over.subscribe();
        const u = await over.rec.wait('unsubscribed');
        assert.equal(u.code, 106, JSON.stringify(u));
        assert.equal(s.state, 'connected');

        const r = await RawClient.open(rotor);
        await r.connect(rotor.makeToken({ sub: 'chlim3' }));
        for (let i = 1; i <= CHANNEL_LIMIT; i++) {
            const rep = await r.command({ subscribe: { channel: `pub:raw${i}` } });
            assert.ok(rep.subscribe, JSON.stringify(rep));
        }
        const rep = await r.command({ subscribe: { channel: 'pub:raw-over' } });
        assert.deepEqual(rep.error, { code: 106, message: 'limit exceeded' }, JSON.stringify(rep));
        assert.ok(r.isOpen());

        // Server-side subscriptions from the token count against the same limit.
        const m = await RawClient.open(rotor);
        const mc = await m.connect(rotor.makeToken({ sub: 'chlim4', channels: ['pub:m1', 'pub:m2'] }));
        assert.ok(mc.connect, JSON.stringify(mc));
        assert.ok((await m.command({ subscribe: { channel: 'pub:m3' } })).subscribe);
        const mr = await m.command({ subscribe: { channel: 'pub:m4' } });
        assert.equal(mr.error?.code, 106, JSON.stringify(mr));
    });
});

describe('personal channel', { timeout: 20000 }, () => {
    const rotor = useRotor({
        config: (base) => merge(base, {
            client: { subscribe_to_user_personal_channel: { enabled: true, personal_channel_namespace: 'personal' } },
            channel: { namespaces: [...NAMESPACES, { name: 'personal' }] },
        }),
    });

    it('server-side subscribed to personal:#<user>, receives API publications', async () => {
        const c = sdkClient(rotor, { token: rotor.makeToken({ sub: 'pers' }) });
        c.connect();
        const sctx = await c.rec.wait('subscribed', (x) => x.channel === 'personal:#pers');
        assert.equal(sctx.wasRecovering, false);
        assert.equal(c.getSubscription('personal:#pers'), null, 'a server-side subscription');

        await rotor.apiResult('publish', { channel: 'personal:#other', data: { to: 'other' } });
        await rotor.apiResult('publish', { channel: 'personal:#pers', data: { to: 'pers' } });
        const p = await c.rec.wait('publication', (x) => x.channel === 'personal:#pers');
        assert.deepEqual(p.data, { to: 'pers' });
        await sleep(200);
        assert.deepEqual(c.rec.all('publication').map((x) => x.channel), ['personal:#pers']);
    });
});

describe('recovery, binary data, data formats', { timeout: 30000 }, () => {
    const rotor = useRotor({
        config: (base) => merge(base, {
            channel: {
                namespaces: [...NAMESPACES, {
                    name: 'jobj', publication_data_format: 'json_object', allow_subscribe_for_client: true,
                    allow_publish_for_client: true,
                }],
            },
        }),
    });
    const publish = (channel, n) => rotor.apiResult('publish', { channel, data: { n } });

    it('server-side subscription recovers missed publications through connect subs', async () => {
        const ch = 'hist:srv-recover';
        const user = 'srvrec';
        const { log, RecordingWebSocket } = recordingWebSocket();
        const c = sdkClient(rotor, {
            token: rotor.makeToken({ sub: user, channels: [ch] }),
            websocket: RecordingWebSocket,
            minReconnectDelay: 700,
            maxReconnectDelay: 700,
        });
        c.connect();
        const first = await c.rec.wait('subscribed', (x) => x.channel === ch);
        assert.equal(first.recoverable, true);
        assert.equal(first.wasRecovering, false);
        await publish(ch, 1);
        await publish(ch, 2);
        await c.rec.wait('publication', (p) => p.channel === ch, 4000, 2);

        const gone = c.rec.wait('connecting', (x) => x.code === 4001);
        await rotor.apiResult('disconnect', { user, disconnect: { code: 4001, reason: 'x' } });
        assert.equal((await gone).reason, 'x');
        for (let n = 3; n <= 5; n++) await publish(ch, n);

        const again = await c.rec.wait('subscribed', (x) => x.channel === ch, 5000, 2);
        assert.equal(again.wasRecovering, true);
        assert.equal(again.recovered, true);
        assert.equal(again.streamPosition.epoch, first.streamPosition.epoch);
        const connects = log.out.filter((m) => m.connect);
        assert.equal(connects.length, 2);
        assert.deepEqual(connects[1].connect.subs?.[ch],
            { recover: true, offset: 2, epoch: first.streamPosition.epoch }, JSON.stringify(connects[1]));

        await c.rec.wait('publication', (p) => p.channel === ch, 4000, 5);
        await sleep(200);
        const pubs = c.rec.all('publication', (p) => p.channel === ch);
        assert.deepEqual(pubs.map((p) => p.data.n), [1, 2, 3, 4, 5]);
        assert.deepEqual(pubs.map((p) => p.offset), [1, 2, 3, 4, 5]);
    });

    it('b64data publication: JSON subscriber closed with 3506, API history returns b64data', async () => {
        const ch = 'hist:binary';
        const bytes = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x7b]);
        const b64 = bytes.toString('base64');
        const c = await connectedClient(rotor, 'bin');
        await subscribed(c, ch);
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'binraw' }));
        assert.ok((await raw.command({ subscribe: { channel: ch } })).subscribe);

        const res = await rotor.apiResult('publish', { channel: ch, b64data: b64 });
        assert.equal(res.offset, 1, JSON.stringify(res));

        const d = await c.rec.wait('disconnected');
        assert.equal(d.code, 3506, JSON.stringify(d));
        assert.equal(c.state, 'disconnected');
        const cl = await raw.waitClose();
        assert.equal(cl.code, 3506, JSON.stringify(cl));
        assert.equal(cl.reason, 'inappropriate protocol');

        const h = await rotor.api('history', { channel: ch, limit: 10 });
        assert.equal(h.error, undefined, JSON.stringify(h));
        assert.equal(h.result.publications.length, 1, JSON.stringify(h));
        const p = h.result.publications[0];
        assert.equal(p.b64data, b64, JSON.stringify(p));
        assert.equal(p.data, undefined, JSON.stringify(p));
        assert.equal(p.offset, 1);
    });

    it('publication_data_format json_object: arrays refused with 107, objects accepted', async () => {
        const ch = 'jobj:fmt';
        const c = await connectedClient(rotor, 'fmt');
        const s = await subscribed(c, ch);

        assert.equal((await rotor.api('publish', { channel: ch, data: [1] })).error?.code, 107);
        assert.equal((await rotor.api('publish', { channel: ch, data: 'str' })).error?.code, 107);
        assert.deepEqual(await rotor.api('publish', { channel: ch, data: { a: 1 } }), { result: {} });

        await assert.rejects(c.publish(ch, [1]), (e) => e.code === 107);
        await c.publish(ch, { a: 2 });
        await s.rec.wait('publication', (p) => p.data.a === 2);
        await sleep(100);
        assert.deepEqual(s.rec.all('publication').map((p) => p.data), [{ a: 1 }, { a: 2 }]);
        assert.equal(c.state, 'connected');
    });
});

describe('metrics', { timeout: 20000 }, () => {
    const rotor = useRotor();

    /** GET /metrics parsed into {name{labels} -> value}. */
    async function metrics() {
        const res = await rotor.request('/metrics');
        assert.equal(res.status, 200);
        const out = new Map();
        for (const line of res.text.split('\n')) {
            if (line === '' || line.startsWith('#')) continue;
            const m = /^(\S+)\s+(\S+)/.exec(line);
            if (m) out.set(m[1], Number(m[2]));
        }
        return out;
    }

    it('/metrics: client, subscription and channel gauges, disconnect counter, process RSS', async () => {
        const c1 = await connectedClient(rotor, 'm1');
        const c2 = await connectedClient(rotor, 'm2');
        await connectedClient(rotor, 'm2');
        await subscribed(c1, 'pub:met-a');
        await subscribed(c1, 'pub:met-b');
        await subscribed(c2, 'pub:met-a');

        const bad = await RawClient.open(rotor);
        bad.sendRaw('not json');
        assert.equal((await bad.waitClose()).code, 3501);

        let m;
        try {
            await waitFor(async () => {
                m = await metrics();
                return m.get('centrifugo_node_num_clients') === 3 &&
                    m.get('centrifugo_node_num_subscriptions') === 3 &&
                    m.get('centrifugo_node_num_channels') === 2 &&
                    m.get('centrifugo_client_num_server_disconnects{code="3501"}') >= 1;
            }, 3000, 'metrics to reflect the traffic');
        } catch (e) {
            const pick = [...(m ?? new Map())].filter(([k]) => /num_clients|num_subscriptions|num_channels|num_users|server_disconnects/.test(k));
            throw new Error(`${e.message}; got ${JSON.stringify(pick)}`);
        }
        assert.equal(m.get('centrifugo_node_num_users'), 2);
        assert.ok(m.get('process_resident_memory_bytes') > 1024 * 1024, `rss ${m.get('process_resident_memory_bytes')}`);
    });
});

describe('environment and command line', { timeout: 30000 }, () => {
    it('unknown ROTOR_/CENTRIFUGO_ variables: warning, starts; invalid value: exits naming the key', async () => {
        const r = await startRotor({ env: { ROTOR_NO_SUCH_OPTION: '1', CENTRIFUGO_NO_SUCH_THING: 'x' } });
        try {
            const c = await connectedClient(r, 'envok');
            assert.equal(c.state, 'connected');
            for (const name of ['ROTOR_NO_SUCH_OPTION', 'CENTRIFUGO_NO_SUCH_THING']) {
                const line = r.logs().split('\n').find((l) => l.includes(name));
                assert.ok(line, `no log line names ${name}:\n${r.logTail(30)}`);
                assert.match(line, /warn/i, `not a warning: ${line}`);
            }
        } finally {
            await r.stop();
        }

        const dir = tempDir();
        try {
            const port = await freePort();
            writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
                client: { token: { hmac_secret_key: HMAC_SECRET } },
                http_server: { address: '127.0.0.1', port },
            }));
            const res = await runRotorCli(['-c', path.join(dir, 'config.json')], {
                cwd: dir, env: { CENTRIFUGO_CLIENT_PING_INTERVAL: 'abc' },
            });
            assert.equal(res.timedOut, false, `rotor kept running with an invalid value:\n${res.stdout}${res.stderr}`);
            assert.notEqual(res.code, 0, `exit ${res.code}`);
            assert.match(res.stdout + res.stderr, /client\.ping_interval/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it('checkconfig names the bad key, version prints it, gentoken token is accepted', async () => {
        const dir = tempDir();
        try {
            const bad = path.join(dir, 'bad.json');
            writeFileSync(bad, JSON.stringify({
                client: { token: { hmac_secret_key: 's' }, channel_limit: 'many' },
            }));
            const cc = await runRotorCli(['checkconfig', '-c', bad], { cwd: dir });
            assert.equal(cc.code, 1, `exit ${cc.code}: ${cc.stdout}${cc.stderr}`);
            assert.match(cc.stdout + cc.stderr, /client\.channel_limit/);

            const good = path.join(dir, 'good.json');
            writeFileSync(good, JSON.stringify({ client: { token: { hmac_secret_key: 's' } } }));
            const gc = await runRotorCli(['checkconfig', '-c', good], { cwd: dir });
            assert.equal(gc.code, 0, `exit ${gc.code}: ${gc.stdout}${gc.stderr}`);

            const v = await runRotorCli(['version'], { cwd: dir });
            assert.equal(v.code, 0);
            assert.match(v.stdout, /\b\d+\.\d+\.\d+\b/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }

        const r = await startRotor();
        try {
            const cfg = path.join(r.dir, 'config.json');
            const g = await runRotorCli(['gentoken', '-u', 'u', '-c', cfg], { cwd: r.dir });
            assert.equal(g.code, 0, `exit ${g.code}: ${g.stderr}`);
            const token = JWT_RE.exec(g.stdout)?.[0];
            assert.ok(token, `no token in: ${g.stdout}`);

            const raw = await RawClient.open(r);
            const reply = await raw.connect(token);
            assert.match(reply.connect?.client ?? '', UUID_RE, JSON.stringify(reply));
            assert.equal(reply.connect.expires, true);
            assert.ok(reply.connect.ttl > 604700 && reply.connect.ttl <= 604800, `ttl ${reply.connect.ttl}`);

            const c = sdkClient(r, { token });
            c.connect();
            const ctx = await c.rec.wait('connected');
            await subscribed(c, 'chat:gentoken');
            const p = await r.apiResult('presence', { channel: 'chat:gentoken' });
            assert.equal(p.presence[ctx.client]?.user, 'u', JSON.stringify(p));
        } finally {
            await r.stop();
        }
    });
});
