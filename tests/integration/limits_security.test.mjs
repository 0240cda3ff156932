// Limits and security (issue 7): client.connection_rate_limit answered with 503 / gRPC
// UNAVAILABLE on every connection endpoint; the server API, /health, /ready and /metrics on
// the internal port only (SERVER.md §2.4); no secrets or payloads in the log, even at debug;
// subscription tokens bound to their channel, user and client.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';

import grpc from '@grpc/grpc-js';

import { RawClient, connectedClient, freshRequest, subscribed } from './lib/clients.mjs';
import { startRedis } from './lib/redis.mjs';
import {
    HEALTH_TIMEOUT_MS, Rotor, baseConfig, freePort, merge, rotorBinary, signJwt, sleep,
    startRotor, waitFor,
} from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';
import { grpcClient, grpcConsume } from './lib/transports.mjs';

const UPGRADE = {
    Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
};


const GRPC_PORT = await freePort();

const tally = (results) => results.reduce((m, r) => ({ ...m, [r.status]: (m[r.status] ?? 0) + 1 }), {});

describe('client.connection_rate_limit', () => {
    const RATE = 4; // per node; 2 workers: 2/s each, burst 2 each
    const FLOOD = 30;
    const rotor = useRotor({
        config: {
            client: { connection_rate_limit: RATE },
            http_stream: { enabled: true },
            sse: { enabled: true },
            uni_websocket: { enabled: true },
            uni_sse: { enabled: true },
            uni_http_stream: { enabled: true },
            uni_grpc: { enabled: true, address: '127.0.0.1', port: GRPC_PORT },
        },
    });
    let bystander; // a RawClient kept across tests (useRotor closes tracked clients after each)

    const connectFrame = () => JSON.stringify({ id: 1, connect: { token: rotor.makeToken({ sub: 'flood' }) } });
    const uniConnect = () => JSON.stringify({ token: rotor.makeToken({ sub: 'flood' }) });
    const endpoints = {
        websocket: () => ({ p: '/connection/websocket', headers: UPGRADE }),
        uni_websocket: () => ({ p: '/connection/uni_websocket', headers: UPGRADE }),
        http_stream: () => ({ p: '/connection/http_stream', method: 'POST', body: connectFrame() }),
        sse: () => ({ p: `/connection/sse?cf_connect=${encodeURIComponent(connectFrame())}` }),
        uni_sse: () => ({ p: `/connection/uni_sse?cf_connect=${encodeURIComponent(uniConnect())}` }),
        uni_http_stream: () => ({ p: '/connection/uni_http_stream', method: 'POST', body: uniConnect() }),
    };

    /** Waits for every worker's bucket to be full again (capacity 2 at 2/s: 1 s). */
    const refill = () => sleep(1100);

    it('a client connected before the floods (takes one token)', async () => {
        bystander = await RawClient.open(rotor, { autoPong: true });
        rotor.clients.delete(bystander);
        assert.ok((await bystander.connect(rotor.makeToken({ sub: 'bystander' }))).connect);
        assert.ok((await bystander.command({ subscribe: { channel: 'pub:bystander' } })).subscribe);
    });

    for (const [name, make] of Object.entries(endpoints)) {
        it(`${name}: a flood beyond the rate gets 503 with a JSON body before any upgrade`, async () => {
            await refill();
            const t0 = Date.now();
            const results = await Promise.all(Array.from({ length: FLOOD }, () => {
                const e = make();
                return freshRequest(rotor.port, e.p, e);
            }));
            const elapsed = (Date.now() - t0) / 1000;
            const counts = tally(results);
            const ok = (counts[101] ?? 0) + (counts[200] ?? 0);
            // Burst of the whole node plus what the elapsed time refilled, plus one token of
            // rounding per worker.
            const bound = RATE + RATE * elapsed + 2;
            assert.ok(ok >= 1, `nothing accepted: ${JSON.stringify(counts)}`);
            assert.ok(ok <= bound, `accepted ${ok} > ${bound.toFixed(1)} in ${elapsed}s: ${JSON.stringify(counts)}`);
            assert.equal(ok + (counts[503] ?? 0), FLOOD, `only 101/200/503 expected: ${JSON.stringify(counts)}`);
            const refused = results.find((r) => r.status === 503);
            assert.match(refused.type, /application\/json/);
            assert.deepEqual(JSON.parse(refused.body), { error: 'connection rate limit reached' });

            // One second later the endpoint accepts again.
            await refill();
            const again = await freshRequest(rotor.port, make().p, make());
            assert.ok(again.status === 101 || again.status === 200, `after refill: ${JSON.stringify(again)}`);
        });
    }

    it('uni_grpc: calls beyond the rate end with UNAVAILABLE', async () => {
        await refill();
        const client = grpcClient(GRPC_PORT);
        const calls = Array.from({ length: FLOOD }, () => grpcConsume(rotor, client, { token: rotor.makeToken({ sub: 'g' }) }));
        await waitFor(() => calls.filter((c) => c.error || c.pushes.length > 0).length === FLOOD, 5000,
            'every gRPC call to be answered or refused');
        const refused = calls.filter((c) => c.error);
        const accepted = calls.length - refused.length;
        assert.ok(accepted >= 1 && accepted <= RATE + 2, `accepted ${accepted}`);
        for (const c of refused) {
            assert.equal(c.error.code, grpc.status.UNAVAILABLE);
            assert.match(c.error.details, /connection rate limit reached/);
        }
        for (const c of calls) c.call.cancel();
        client.close();
    });

    it('the client connected before every flood still receives publications', async () => {
        await rotor.apiResult('publish', { channel: 'pub:bystander', data: { still: 'here' } });
        const push = await bystander.waitPush((p) => p.channel === 'pub:bystander');
        assert.deepEqual(push.pub.data, { still: 'here' });
        assert.ok(bystander.isOpen());
        bystander.close();
    });

    it('the API, /health and /metrics are not rate limited', async () => {
        for (let i = 0; i < 20; i++) {
            assert.equal((await freshRequest(rotor.port, '/health')).status, 200);
        }
        for (let i = 0; i < 10; i++) {
            const r = await rotor.apiRaw('info', {});
            assert.equal(r.status, 200);
        }
    });
});

describe('client.connection_rate_limit: config', () => {
    it('is accepted by checkconfig (it used to be refused as unsupported)', async () => {
        const dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-it-rl-'));
        const cfg = path.join(dir, 'config.json');
        writeFileSync(cfg, JSON.stringify({ client: { connection_rate_limit: 100 } }));
        const code = await new Promise((resolve) => {
            const p = spawn(rotorBinary(), ['checkconfig', '-c', cfg], { stdio: 'ignore' });
            p.on('exit', resolve);
        });
        assert.equal(code, 0);
        writeFileSync(cfg, JSON.stringify({ client: { connection_rate_limit: -1 } }));
        const bad = await new Promise((resolve) => {
            const p = spawn(rotorBinary(), ['checkconfig', '-c', cfg], { stdio: 'ignore' });
            p.on('exit', resolve);
        });
        assert.notEqual(bad, 0);
    });
});

/* ---- internal port ------------------------------------------------------------------ */

const started = new Set();
process.on('exit', () => {
    for (const r of started) {
        try {
            r.proc.kill('SIGKILL');
        } catch {
            // gone
        }
    }
});

/** Starts rotor with a separate internal listener; the harness's startRotor polls /health
 * on the public port, which no longer serves it. Resolves a Rotor with .internalPort. */
async function startWithInternal(extra = {}, { samePort = false } = {}) {
    const bin = rotorBinary();
    const port = await freePort();
    const internalPort = samePort ? port : await freePort();
    const config = merge(baseConfig(), merge({
        http_server: { address: '127.0.0.1', port, internal_address: '127.0.0.1', internal_port: internalPort },
    }, extra));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-it-'));
    const cfgPath = path.join(dir, 'config.json');
    writeFileSync(cfgPath, JSON.stringify(config, null, 2));
    const proc = spawn(bin, ['-c', cfgPath], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const rotor = new Rotor({ proc, port, dir, config, bin });
    rotor.internalPort = internalPort;
    started.add(rotor);
    proc.on('exit', () => started.delete(rotor));
    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    for (;;) {
        if (rotor.exited) throw new Error(`rotor exited during startup\n${rotor.logTail(40)}`);
        try {
            const res = await fetch(`http://127.0.0.1:${internalPort}/health`, { signal: AbortSignal.timeout(1000) });
            await res.arrayBuffer();
            if (res.status === 200) return rotor;
        } catch {
            // not yet
        }
        if (Date.now() >= deadline) {
            proc.kill('SIGKILL');
            throw new Error(`no /health on the internal port ${internalPort}\n${rotor.logTail(40)}`);
        }
        await sleep(25);
    }
}

async function get(port, p, opts = {}) {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, opts);
    return { status: res.status, text: await res.text() };
}

const apiPost = (port, key, method = 'info') => get(port, `/api/${method}`, {
    method: 'POST', headers: { 'X-API-Key': key, 'Content-Type': 'application/json' }, body: '{}',
});

describe('http_server.internal_port', () => {
    let rotor;
    before(async () => {
        rotor = await startWithInternal();
    });
    afterEach((t) => {
        if (!t.passed && rotor) rotor.dumpLogs(t.name);
    });
    after(async () => {
        if (rotor) await rotor.stop();
    });

    it('serves the API, /health, /ready and /metrics on the internal port only', async () => {
        const pub = rotor.port;
        const int = rotor.internalPort;
        assert.equal((await apiPost(int, rotor.apiKey)).status, 200);
        assert.equal((await get(int, '/api', {
            method: 'POST', headers: { 'X-API-Key': rotor.apiKey }, body: '{"method":"info","params":{}}',
        })).status, 200);
        assert.equal((await get(int, '/health')).status, 200);
        assert.equal((await get(int, '/ready')).status, 200);
        const metrics = await get(int, '/metrics');
        assert.equal(metrics.status, 200);
        assert.match(metrics.text, /# TYPE/);

        for (const p of ['/api/info', '/api']) {
            const r = await apiPost(pub, rotor.apiKey, p === '/api' ? '' : 'info');
            assert.equal(r.status, 404, `${p} on the public port: ${r.status} ${r.text}`);
        }
        for (const p of ['/health', '/ready', '/metrics']) {
            assert.equal((await get(pub, p)).status, 404, `${p} on the public port`);
        }
    });

    it('connections go to the public port only', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = await subscribed(c, 'pub:int');
        // Publish through the internal API; the public client receives it.
        await fetch(`http://127.0.0.1:${rotor.internalPort}/api/publish`, {
            method: 'POST', headers: { 'X-API-Key': rotor.apiKey },
            body: JSON.stringify({ channel: 'pub:int', data: { via: 'internal' } }),
        });
        assert.deepEqual((await s.rec.wait('publication')).data, { via: 'internal' });
        const ws = await freshRequest(rotor.internalPort, '/connection/websocket', { headers: UPGRADE });
        assert.equal(ws.status, 404);
        c.disconnect();
    });
});

describe('http_server.internal_port with http_api.external', () => {
    let rotor;
    before(async () => {
        rotor = await startWithInternal({ http_api: { external: true } });
    });
    after(async () => {
        if (rotor) await rotor.stop();
    });

    it('moves the API to the public port (as Centrifugo); health and metrics stay internal', async () => {
        assert.equal((await apiPost(rotor.port, rotor.apiKey)).status, 200);
        assert.equal((await apiPost(rotor.internalPort, rotor.apiKey)).status, 404);
        assert.equal((await get(rotor.internalPort, '/health')).status, 200);
        assert.equal((await get(rotor.port, '/health')).status, 404);
        assert.equal((await get(rotor.port, '/metrics')).status, 404);
    });
});

describe('http_server.internal_port equal to port', () => {
    it('is one listener serving everything', async () => {
        const rotor = await startWithInternal({}, { samePort: true });
        try {
            assert.equal((await apiPost(rotor.port, rotor.apiKey)).status, 200);
            assert.equal((await get(rotor.port, '/health')).status, 200);
        } finally {
            await rotor.stop();
        }
    });
});

/* ---- secrets in logs ---------------------------------------------------------------- */

const secret = (tag) => `${tag}-${randomBytes(12).toString('hex')}`;

describe('no secrets or payloads in the log (debug level)', () => {
    const S = {
        apiKey: secret('apikey'),
        hmac: secret('hmac'),
        subHmac: secret('subhmac'),
        redisPassword: secret('redispw'),
        wrongApiKey: secret('wrongkey'),
        wrongSecret: secret('wrongsecret'),
        apiPayload: secret('apipayload'),
        clientPayload: secret('clientpayload'),
        connectData: secret('connectdata'),
        infoClaim: secret('infoclaim'),
    };
    const tokens = [];
    let redis;
    let rotor;

    before(async () => {
        redis = await startRedis();
        await redis.cli('CONFIG', 'SET', 'requirepass', S.redisPassword);
        rotor = await startRotor({
            config: {
                log: { level: 'debug' },
                http_api: { key: S.apiKey },
                client: {
                    token: { hmac_secret_key: S.hmac },
                    subscription_token: { enabled: true, hmac_secret_key: S.subHmac },
                },
                engine: { type: 'redis', redis: { address: redis.address(), password: S.redisPassword } },
                uni_sse: { enabled: true },
            },
        });
        await waitFor(async () => (await get(rotor.port, '/ready')).status === 200, 10000, 'ready');
    });
    after(async () => {
        if (rotor) await rotor.stop();
        if (redis) await redis.stop();
    });

    it('connect, subscribe, publish and API calls with right and wrong secrets', async () => {
        const good = rotor.makeToken({ sub: 'u1', info: { secret: S.infoClaim } });
        const wrong = rotor.makeToken({ sub: 'u1' }, { secret: S.wrongSecret });
        const none = signJwt({ sub: 'u1' }, '', { alg: 'none' });
        tokens.push(good, wrong, none);

        // Wrong connection tokens: refused (3500).
        for (const t of [wrong, none]) {
            const raw = await RawClient.open(rotor);
            await raw.connect(t).catch(() => {});
            assert.equal((await raw.waitClose()).code, 3500);
        }
        // Right token; connect data; client publish; subscription tokens right and wrong.
        const raw = await RawClient.open(rotor);
        const rep = await raw.connect(good, { data: { secret: S.connectData } });
        assert.ok(rep.connect, JSON.stringify(rep));
        const subTok = rotor.makeSubToken('u1', 'priv:x', {}, { secret: S.subHmac });
        tokens.push(subTok);
        assert.ok((await raw.command({ subscribe: { channel: 'priv:x', token: subTok } })).subscribe);
        assert.ok((await raw.command({ subscribe: { channel: 'chat:x' } })).subscribe);
        assert.ok((await raw.command({ publish: { channel: 'chat:x', data: { p: S.clientPayload } } })).publish);
        const badSub = rotor.makeSubToken('u1', 'priv:y', {}, { secret: S.wrongSecret });
        tokens.push(badSub);
        const badRep = await raw.command({ subscribe: { channel: 'priv:y', token: badSub } });
        assert.equal(badRep.error?.code, 103);

        // Token in a URL (uni_sse GET).
        const uni = await fetch(rotor.url(`/connection/uni_sse?cf_connect=${encodeURIComponent(JSON.stringify({ token: good }))}`));
        await uni.body?.cancel();

        // API: wrong key in each place it may come from, then the right one.
        assert.equal((await rotor.apiRaw('info', {}, { key: S.wrongApiKey })).status, 401);
        assert.equal((await rotor.request('/api/info', {
            method: 'POST', headers: { Authorization: `apikey ${S.wrongApiKey}` }, body: '{}',
        })).status, 401);
        assert.equal((await rotor.request(`/api/info?api_key=${S.wrongApiKey}`, { method: 'POST', body: '{}' })).status, 401);
        const pub = await rotor.apiRaw('publish', { channel: 'chat:x', data: { p: S.apiPayload } });
        assert.equal(pub.status, 200);
        assert.ok(pub.json().result, pub.text);
        assert.ok((await rotor.apiResult('history', { channel: 'chat:x', limit: 10 })).publications.length >= 2);
        await raw.waitPush((p) => p.pub?.data?.p === S.apiPayload);
        raw.close();
    });

    it('a node given a wrong Redis password does not log either password', async () => {
        const wrongPw = secret('wrongredispw');
        S.wrongRedisPassword = wrongPw;
        const other = await startRotor({
            config: {
                log: { level: 'debug' },
                http_api: { key: S.apiKey },
                engine: { type: 'redis', redis: { address: redis.address(), password: wrongPw } },
            },
        });
        await sleep(500);
        const r = await get(other.port, '/ready');
        assert.equal(r.status, 503);
        await other.stop();
        for (const [name, value] of Object.entries(S)) {
            assert.ok(!other.logs().includes(value), `${name} appears in the log of the wrongly configured node`);
        }
    });

    it('the whole log holds none of them', async () => {
        await rotor.stop();
        const log = rotor.logs();
        // Controls: debug lines were written, about the very events that carried secrets.
        assert.match(log, /"level":"debug"|\sdebug\s/, 'the node did log at debug level');
        assert.match(log, /jwt rejected/, 'the refused tokens were logged (without their bytes)');
        assert.match(log, /redis connected/, 'the Redis connection was logged');
        for (const [name, value] of Object.entries(S)) {
            assert.ok(!log.includes(value), `${name} appears in the log`);
        }
        for (const t of tokens) {
            assert.ok(!log.includes(t), 'a token appears in the log');
            const sig = t.split('.')[2];
            if (sig) assert.ok(!log.includes(sig), 'a token signature appears in the log');
        }
        rotor = null;
    });
});

/* ---- subscription tokens bound to channel, user and client --------------------------- */

describe('subscription tokens are bound to channel, user and client', () => {
    const rotor = useRotor();

    async function connected(user) {
        const raw = await RawClient.open(rotor);
        const rep = await raw.connect(rotor.makeToken({ sub: user }));
        return { raw, client: rep.connect.client };
    }

    it('the right channel, user and client: subscribed', async () => {
        const { raw, client } = await connected('u1');
        const rep = await raw.command({ subscribe: { channel: 'priv:a', token: rotor.makeSubToken('u1', 'priv:a', { client }) } });
        assert.ok(rep.subscribe, JSON.stringify(rep));
    });

    for (const [what, claims] of [
        ['another channel', (client) => ({ sub: 'u1', channel: 'priv:other', client })],
        ['another user', (client) => ({ sub: 'u2', channel: 'priv:a', client })],
        ['anonymous instead of the user', () => ({ channel: 'priv:a' })],
        ['another client', () => ({ sub: 'u1', channel: 'priv:a', client: '00000000-0000-4000-8000-000000000000' })],
    ]) {
        it(`a token for ${what}: disconnect 3500`, async () => {
            const { raw, client } = await connected('u1');
            raw.send({ id: 9, subscribe: { channel: 'priv:a', token: rotor.makeToken(claims(client)) } });
            assert.equal((await raw.waitClose()).code, 3500);
        });
    }

    it('an expired subscription token: error 109; a refused one does not disturb others', async () => {
        const { raw } = await connected('u1');
        const rep = await raw.command({
            subscribe: { channel: 'priv:a', token: rotor.makeSubToken('u1', 'priv:a', { exp: Math.floor(Date.now() / 1000) - 5 }) },
        });
        assert.equal(rep.error?.code, 109);
        assert.ok(raw.isOpen());
    });
});
