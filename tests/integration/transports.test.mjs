// Every transport of PROTOCOL.md §10 on one node with the memory broker: Protobuf
// WebSocket, HTTP-streaming and SSE emulation (JSON and Protobuf), unidirectional
// WebSocket, SSE, HTTP-streaming and gRPC; origin checks, CORS, limits and bad input.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import grpc from '@grpc/grpc-js';

import { WebSocket, newSub } from './lib/clients.mjs';
import http from 'node:http';

import { NAMESPACES, freePort, sleep, waitFor } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';
import {
    grpcClient, grpcConsume, grpcConsumeRaw, pbDelimited, pbFields, transportClient,
    uniEventSource, uniStream,
} from './lib/transports.mjs';

const GRPC_PORT = await freePort();
const ALLOWED = 'http://good.example';

const TRANSPORTS = {
    http_stream: { enabled: true },
    sse: { enabled: true },
    uni_websocket: { enabled: true },
    uni_sse: { enabled: true },
    uni_http_stream: { enabled: true },
    uni_grpc: { enabled: true, address: '127.0.0.1', port: GRPC_PORT },
};

// Every client feature on, recovery forced.
const FULL = {
    name: 'full', presence: true, history_size: 10, history_ttl: '300s', force_recovery: true,
    allow_subscribe_for_client: true, allow_publish_for_subscriber: true,
    allow_presence_for_subscriber: true, allow_history_for_subscriber: true,
};

const UPGRADE = {
    Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
};

/** A plain node:http request (fetch refuses Upgrade headers); resolves {status, body}. */
function rawRequest(port, path, headers) {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path, headers });
        req.on('response', (res) => {
            let body = '';
            res.on('data', (d) => { body += d; });
            res.on('end', () => resolve({ status: res.statusCode, body }));
        });
        req.on('upgrade', (res, socket) => {
            socket.destroy();
            resolve({ status: res.statusCode, body: '' });
        });
        req.on('error', reject);
        req.end();
    });
}

/** GET/POST that reads the whole body (a stream must end by itself within 3 s):
 * {status, headers, body: Buffer, text}. */
async function fetchAll(rotor, p, { method = 'GET', headers = {}, body } = {}) {
    const res = await fetch(rotor.url(p), { method, headers, body, signal: AbortSignal.timeout(3000) });
    const buf = Buffer.from(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, body: buf, text: buf.toString('latin1') };
}

/** Opens a request, keeps its status and headers, and drops it (streams never end). */
async function fetchHead(rotor, p, { method = 'GET', headers = {}, body } = {}) {
    const ctrl = new AbortController();
    const res = await fetch(rotor.url(p), { method, headers, body, signal: ctrl.signal });
    ctrl.abort();
    return { status: res.status, headers: res.headers };
}

/** Protobuf wire helpers to build requests by hand. */
function pbVarintBytes(n) {
    const out = [];
    while (n >= 0x80) {
        out.push((n & 0x7f) | 0x80);
        n = Math.floor(n / 128);
    }
    out.push(n);
    return Buffer.from(out);
}
const pbLenField = (field, bytes) => Buffer.concat([
    pbVarintBytes(field * 8 + 2), pbVarintBytes(bytes.length), Buffer.from(bytes)]);
const pbDelimit = (msg) => Buffer.concat([pbVarintBytes(msg.length), msg]);
/** A Protobuf command frame holding Command{id: 1, connect: {token}}. */
const pbConnectFrame = (token) => pbDelimit(Buffer.concat([
    Buffer.from([0x08, 0x01]), pbLenField(4, pbLenField(1, Buffer.from(token)))]));

/** The disconnect of a Protobuf http_stream body holding one Reply{push{disconnect}}. */
function pbStreamDisconnect(body) {
    const replies = pbDelimited(body);
    assert.equal(replies.length, 1, body.toString('hex'));
    const push = pbFields(replies[0])[4];
    assert.ok(push, `no push in ${body.toString('hex')}`);
    const d = pbFields(pbFields(push)[11]);
    return { code: d[1], reason: d[2].toString() };
}

const BAD_REQUEST_JSON = '{"push":{"disconnect":{"code":3501,"reason":"bad request"}}}';

/** Protobuf clients publish bytes and receive bytes; JSON clients use objects. */
const codec = (pb) => ({
    enc: (v) => (pb ? new TextEncoder().encode(JSON.stringify(v)) : v),
    dec: (v) => (pb ? JSON.parse(new TextDecoder().decode(v)) : v),
});

/** Connects, subscribes with recovery, publishes, asks presence and history: the whole
 * bidirectional feature set through one forced transport. */
async function fullSession(rotor, transport, pb, suffix = '') {
    const tag = `${transport}-${pb ? 'pb' : 'json'}${suffix}`;
    const { enc, dec } = codec(pb);
    const c = transportClient(rotor, transport, { pb, token: rotor.makeToken({ sub: tag }) });
    c.connect();
    const connected = await c.rec.wait('connected');
    assert.equal(connected.transport, transport);
    const ch = `full:${tag}`;
    const s = newSub(c, ch);
    s.subscribe();
    const sub = await s.rec.wait('subscribed');
    assert.equal(sub.recoverable, true, JSON.stringify(sub));
    await s.publish(enc({ text: 'from client' }));
    const p1 = await s.rec.wait('publication', (p) => dec(p.data).text === 'from client');
    assert.equal(p1.info.user, tag);
    await rotor.apiResult('publish', { channel: ch, data: { text: 'from api' } });
    await s.rec.wait('publication', (p) => dec(p.data).text === 'from api');
    const pres = await s.presence();
    assert.deepEqual(Object.values(pres.clients).map((x) => x.user), [tag]);
    const stats = await s.presenceStats();
    assert.deepEqual(stats, { numClients: 1, numUsers: 1 });
    const hist = await s.history({ limit: 10 });
    assert.deepEqual(hist.publications.map((p) => dec(p.data).text), ['from client', 'from api']);
    // Recovery: drop the transport, publish meanwhile, come back.
    c.disconnect();
    await c.rec.wait('disconnected');
    await rotor.apiResult('publish', { channel: ch, data: { text: 'missed' } });
    c.connect();
    const again = await s.rec.wait('subscribed', (x) => x.wasRecovering, 5000);
    assert.equal(again.recovered, true);
    await s.rec.wait('publication', (p) => dec(p.data).text === 'missed');
    return c;
}

describe('transports', { timeout: 120000 }, () => {
    const rotor = useRotor({
        config: {
            ...TRANSPORTS,
            client: { allowed_origins: [ALLOWED] },
            channel: { namespaces: [...NAMESPACES, FULL] },
        },
    });

    it('Protobuf WebSocket (centrifuge-js protobuf build): every command', async () => {
        await fullSession(rotor, 'websocket', true);
    });

    it('HTTP-streaming emulation, JSON: every command, recovery', async () => {
        await fullSession(rotor, 'http_stream', false);
    });

    it('HTTP-streaming emulation, Protobuf: every command, recovery', async () => {
        await fullSession(rotor, 'http_stream', true);
    });

    // JSON only: centrifuge-js's Protobuf build cannot use SSE (its SSE transport hard-codes
    // the JSON protocol, and EventSource carries text), so Protobuf is covered on WebSocket
    // and HTTP-streaming above.
    it('SSE emulation: every command, recovery', async () => {
        await fullSession(rotor, 'sse', false);
    });

    it('unidirectional WebSocket: connect push, subs from the token, pub, disconnect', async () => {
        const token = rotor.makeToken({ sub: 'uw', channels: ['pub:uniws'] });
        const url = rotor.wsUrl(`/connection/uni_websocket?cf_connect=${encodeURIComponent(
            JSON.stringify({ token }))}`);
        const ws = new WebSocket(url);
        const msgs = [];
        let closed = null;
        ws.on('message', (d) => msgs.push(JSON.parse(d.toString())));
        ws.on('close', (code, reason) => { closed = { code, reason: reason.toString() }; });
        await waitFor(() => msgs.length >= 1);
        const connect = msgs[0].connect;
        assert.ok(connect, JSON.stringify(msgs[0]));
        assert.ok(connect.session);
        assert.ok(connect.subs['pub:uniws'] !== undefined, JSON.stringify(connect));
        assert.equal(connect.pong, undefined);
        await rotor.apiResult('publish', { channel: 'pub:uniws', data: { n: 1 } });
        await waitFor(() => msgs.some((m) => m.pub));
        const pub = msgs.find((m) => m.pub);
        assert.deepEqual(pub, { channel: 'pub:uniws', pub: { data: { n: 1 } } });
        await rotor.apiResult('disconnect', { user: 'uw', disconnect: { code: 4000, reason: 'bye' } });
        await waitFor(() => closed !== null);
        assert.deepEqual(msgs.at(-1), { disconnect: { code: 4000, reason: 'bye' } });
        assert.deepEqual(closed, { code: 4000, reason: 'bye' });
    });

    it('unidirectional WebSocket: connect request as the first message', async () => {
        const ws = new WebSocket(rotor.wsUrl('/connection/uni_websocket'));
        const msgs = [];
        ws.on('message', (d) => msgs.push(JSON.parse(d.toString())));
        await new Promise((r) => ws.on('open', r));
        ws.send(JSON.stringify({ token: rotor.makeToken({ sub: 'uw2', channels: ['pub:uniws2'] }) }));
        await waitFor(() => msgs.length >= 1);
        assert.ok(msgs[0].connect.subs['pub:uniws2'] !== undefined);
        ws.close();
    });

    it('unidirectional HTTP-streaming and SSE: connect, pub, recovery from subs', async () => {
        for (const kind of ['uni_http_stream', 'uni_sse']) {
            const ch = `hist:${kind}`;
            await rotor.apiResult('publish', { channel: ch, data: { n: 1 } });
            const first = await rotor.apiResult('history', { channel: ch, limit: 0 });
            const token = rotor.makeToken({ sub: kind, channels: [ch] });
            const r = await uniStream(rotor, kind, {
                token, subs: { [ch]: { recover: true, offset: first.offset, epoch: first.epoch } },
            });
            const connect = await r.wait((m) => m.connect);
            assert.equal(connect.connect.subs[ch].recovered, true, JSON.stringify(connect));
            await rotor.apiResult('publish', { channel: ch, data: { n: 2 } });
            const pub = await r.wait((m) => m.pub);
            assert.deepEqual(pub.pub.data, { n: 2 });
            assert.equal(pub.channel, ch);
            await rotor.apiResult('disconnect', { user: kind });
            await r.waitEnd();
            assert.equal(r.messages.at(-1).disconnect.code, 3503, r.raw);
            if (kind === 'uni_sse') assert.ok(r.raw.startsWith('\r\n'), JSON.stringify(r.raw));
        }
    });

    it('unidirectional SSE with GET and cf_connect (eventsource-style)', async () => {
        const token = rotor.makeToken({ sub: 'sseget', channels: ['pub:sseget'] });
        const q = encodeURIComponent(JSON.stringify({ token }));
        const ctrl = new AbortController();
        const res = await fetch(rotor.url(`/connection/uni_sse?cf_connect=${q}`), { signal: ctrl.signal });
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type'), /^text\/event-stream/);
        // The connection ends with the stream: it must not go back to a keep-alive pool.
        assert.equal(res.headers.get('connection'), 'close');
        const { StreamReader } = await import('./lib/transports.mjs');
        const r = new StreamReader(res, { sse: true });
        await r.wait((m) => m.connect);
        ctrl.abort();
    });

    it('unidirectional SSE through EventSource: GET with cf_connect, connect push, API publication', async () => {
        const ch = 'pub:eventsource';
        const es = uniEventSource(rotor, { token: rotor.makeToken({ sub: 'es', channels: [ch] }) });
        const connect = await es.wait((m) => m.connect);
        assert.equal(es.opened, true);
        assert.ok(connect.connect.session, JSON.stringify(connect));
        assert.ok(connect.connect.subs[ch] !== undefined, JSON.stringify(connect));
        await rotor.apiResult('publish', { channel: ch, data: { via: 'api' } });
        const pub = await es.wait((m) => m.pub);
        assert.deepEqual(pub, { channel: ch, pub: { data: { via: 'api' } } });
        assert.equal(es.errors.length, 0);
        es.close();
    });

    it('unidirectional gRPC: connect push, publication, disconnect ends with OK', async () => {
        const client = grpcClient(GRPC_PORT);
        const token = rotor.makeToken({ sub: 'grpc', channels: ['pub:grpc'] });
        const c = grpcConsume(rotor, client, { token });
        const connect = await c.wait((p) => p.connect);
        assert.ok(connect.connect.client);
        assert.ok(connect.connect.subs['pub:grpc'] !== undefined);
        await rotor.apiResult('publish', { channel: 'pub:grpc', data: { g: 1 } });
        const pub = await c.wait((p) => p.pub);
        assert.equal(pub.channel, 'pub:grpc');
        assert.deepEqual(JSON.parse(Buffer.from(pub.pub.data).toString()), { g: 1 });
        await rotor.apiResult('disconnect', { user: 'grpc' });
        await waitFor(() => c.status !== null);
        assert.equal(c.status.code, 0);
        assert.equal(c.pushes.at(-1).disconnect.code, 3503);
        client.close();
    });

    it('one publication to every wire form is encoded once per form', async () => {
        const ch = 'pub:everyone';
        const before = await encodes(rotor);
        const clients = [];
        for (const [transport, pb] of [['websocket', false], ['websocket', true],
            ['http_stream', false], ['http_stream', true], ['sse', false]]) {
            for (let i = 0; i < 2; i++) {
                const c = transportClient(rotor, transport, { pb, token: rotor.makeToken({ sub: `e${i}` }) });
                c.connect();
                await c.rec.wait('connected');
                const s = newSub(c, ch);
                s.subscribe();
                await s.rec.wait('subscribed');
                clients.push(s);
            }
        }
        const client = grpcClient(GRPC_PORT);
        const g = [];
        for (let i = 0; i < 2; i++) {
            const c = grpcConsume(rotor, client, { token: rotor.makeToken({ sub: `g${i}`, channels: [ch] }) });
            await c.wait((p) => p.connect);
            g.push(c);
        }
        await rotor.apiResult('publish', { channel: ch, data: { once: true } });
        for (const s of clients) await s.rec.wait('publication');
        for (const c of g) await c.wait((p) => p.pub);
        const after = await encodes(rotor);
        // JSON-WS, PB-WS, HTTP-stream JSON, HTTP-stream PB, SSE, gRPC: six wire forms.
        assert.equal(after - before, 6);
        client.close();
    });

    it('origin checks: WebSocket 403, CORS headers only for allowed origins', async () => {
        const bad = await rawRequest(rotor.port, '/connection/websocket',
            { Origin: 'http://evil.example', ...UPGRADE });
        assert.equal(bad.status, 403);
        const badUni = await rawRequest(rotor.port, '/connection/uni_websocket',
            { Origin: 'http://evil.example', ...UPGRADE });
        assert.equal(badUni.status, 403);
        const ok = await rawRequest(rotor.port, '/connection/websocket', { Origin: ALLOWED, ...UPGRADE });
        assert.equal(ok.status, 101);
        const good = await rotor.request('/connection/http_stream', {
            method: 'OPTIONS',
            headers: { Origin: ALLOWED, 'Access-Control-Request-Headers': 'content-type' },
        });
        assert.equal(good.status, 204);
        assert.equal(good.headers.get('access-control-allow-origin'), ALLOWED);
        assert.equal(good.headers.get('access-control-allow-credentials'), 'true');
        assert.equal(good.headers.get('access-control-allow-headers'), 'content-type');
        assert.equal(good.headers.get('access-control-max-age'), '300');
        const evil = await rotor.request('/emulation', {
            method: 'OPTIONS', headers: { Origin: 'http://evil.example' },
        });
        assert.equal(evil.status, 204);
        assert.equal(evil.headers.get('access-control-allow-origin'), null);
    });

    it('bad input per transport gets its error', async () => {
        // bad cf_connect on uni_websocket and SSE
        const r1 = await rawRequest(rotor.port, '/connection/uni_websocket?cf_connect=%7Bnope', UPGRADE);
        assert.equal(r1.status, 400);
        assert.ok(JSON.parse(r1.body).error);
        const r2 = await rotor.request('/connection/sse');
        assert.equal(r2.status, 400, 'SSE without cf_connect');
        const r3 = await rotor.request('/connection/uni_http_stream', { method: 'POST', body: '{nope' });
        assert.equal(r3.status, 400);
        // methods
        assert.equal((await rotor.request('/connection/http_stream')).status, 405);
        assert.equal((await rotor.request('/emulation')).status, 405);
        // oversized emulation body
        const big = await rotor.request('/emulation', { method: 'POST', body: 'x'.repeat(70000) });
        assert.equal(big.status, 413);
        // undecodable envelopes: JSON that is not an object, a truncated Protobuf envelope
        // (wrong content types are tested on their own below)
        assert.equal((await rotor.request('/emulation', { method: 'POST', body: '[1]' })).status, 400);
        const pbBad = await rotor.request('/emulation', {
            method: 'POST', body: Buffer.from([0x0a, 0x50]),
            headers: { 'Content-Type': 'application/octet-stream' },
        });
        assert.equal(pbBad.status, 400);
        // truncated Protobuf command on a Protobuf WebSocket: 3501
        const ws = new WebSocket(rotor.wsUrl(), 'centrifuge-protobuf');
        await new Promise((r) => ws.on('open', r));
        assert.equal(ws.protocol, 'centrifuge-protobuf');
        const closed = new Promise((r) => ws.on('close', (code) => r(code)));
        ws.send(Buffer.from([0x0d, 0x08, 0x01, 0x22]));
        assert.equal(await closed, 3501);
        // the server still serves everyone
        await fullSession(rotor, 'http_stream', false, '-after-bad-input');
    });

    it('wrong content type: the Content-Type header, not the body, picks the format', async () => {
        const token = rotor.makeToken({ sub: 'ctype' });
        const pbFrame = pbConnectFrame(token);
        const jsonFrame = JSON.stringify({ id: 1, connect: { token } });
        // The Protobuf frame is good: as application/octet-stream it connects.
        const ok = await fetch(rotor.url('/connection/http_stream'), {
            method: 'POST', body: pbFrame,
            headers: { 'Content-Type': 'application/octet-stream' },
        });
        assert.equal(ok.status, 200);
        const reader = ok.body.getReader();
        const first = Buffer.from((await reader.read()).value);
        await reader.cancel();
        const [reply] = pbDelimited(first);
        assert.ok(pbFields(reply)[5], `no connect result in ${first.toString('hex')}`);
        // http_stream: the stream starts in the format the header names and the frame that
        // does not decode in it ends the session with 3501, as on a WebSocket (§10.3).
        const pbAsJson = await fetchAll(rotor, '/connection/http_stream', {
            method: 'POST', body: pbFrame, headers: { 'Content-Type': 'application/json' },
        });
        assert.equal(pbAsJson.status, 200);
        assert.equal(pbAsJson.text, `${BAD_REQUEST_JSON}\n`);
        const jsonAsPb = await fetchAll(rotor, '/connection/http_stream', {
            method: 'POST', body: jsonFrame, headers: { 'Content-Type': 'application/octet-stream' },
        });
        assert.equal(jsonAsPb.status, 200);
        assert.deepEqual(pbStreamDisconnect(jsonAsPb.body), { code: 3501, reason: 'bad request' });
        // /emulation: each envelope is accepted under its own content type only; under the
        // other one it is a 400 with a JSON error.
        const pbEnvelope = pbLenField(2, Buffer.from('nope.0'));
        const jsonEnvelope = JSON.stringify({ session: 'nope.0', node: '', data: '{}' });
        const PB = { 'Content-Type': 'application/octet-stream' };
        const JSONCT = { 'Content-Type': 'application/json' };
        for (const [body, headers, status] of [[pbEnvelope, PB, 204], [pbEnvelope, JSONCT, 400],
            [jsonEnvelope, JSONCT, 204], [jsonEnvelope, PB, 400]]) {
            const r = await fetchAll(rotor, '/emulation', { method: 'POST', body, headers });
            assert.equal(r.status, status, `${headers['Content-Type']}: ${r.text}`);
            if (status === 400) {
                assert.match(r.headers.get('content-type'), /^application\/json/);
                assert.equal(JSON.parse(r.text).error, 'malformed emulation request');
            }
        }
        // Unidirectional streams are JSON only: a Protobuf ConnectRequest is a 400.
        const pbConnectRequest = pbLenField(1, Buffer.from(token));
        for (const kind of ['uni_http_stream', 'uni_sse']) {
            const r = await fetchAll(rotor, `/connection/${kind}`,
                { method: 'POST', body: pbConnectRequest, headers: PB });
            assert.equal(r.status, 400, kind);
            assert.equal(JSON.parse(r.text).error, 'malformed connect request', kind);
        }
    });

    it('malformed connect requests on every transport', async () => {
        // uni_sse GET: cf_connect must decode before the stream starts (§10.6).
        for (const q of ['%7Bnope', encodeURIComponent('[1]'), encodeURIComponent('{"token":5}')]) {
            const r = await fetchAll(rotor, `/connection/uni_sse?cf_connect=${q}`);
            assert.equal(r.status, 400, q);
            assert.match(r.headers.get('content-type'), /^application\/json/);
            assert.equal(JSON.parse(r.text).error, 'malformed connect request', q);
        }
        // Bidirectional SSE: cf_connect is a command frame handled like a WebSocket frame, so
        // a bad one gets the stream and a 3501 disconnect as its only event (as the reference).
        for (const q of ['%7Bnope', encodeURIComponent('{"connect":5,"id":1}')]) {
            const r = await fetchAll(rotor, `/connection/sse?cf_connect=${q}`);
            assert.equal(r.status, 200, q);
            assert.match(r.headers.get('content-type'), /^text\/event-stream/);
            assert.equal(r.text, `\r\ndata: ${BAD_REQUEST_JSON}\n\n`, q);
        }
        // http_stream: a truncated Protobuf command (declares 13 bytes, carries 3).
        const trunc = await fetchAll(rotor, '/connection/http_stream', {
            method: 'POST', body: Buffer.from([0x0d, 0x08, 0x01, 0x22]),
            headers: { 'Content-Type': 'application/octet-stream' },
        });
        assert.equal(trunc.status, 200);
        assert.deepEqual(pbStreamDisconnect(trunc.body), { code: 3501, reason: 'bad request' });
        // gRPC through @grpc/grpc-js: a ConnectRequest cut inside its token field, and JSON
        // bytes, end the call with INVALID_ARGUMENT before any push.
        for (const bytes of [[0x0a, 0x50, 0x61], Buffer.from('{"token":"x"}')]) {
            const st = await grpcConsumeRaw(rotor, GRPC_PORT, bytes);
            assert.equal(st.code, grpc.status.INVALID_ARGUMENT, JSON.stringify(st));
            assert.equal(st.details, 'malformed connect request');
            assert.equal(st.messages.length, 0);
        }
    });

    // Centrifugo refuses a disallowed Origin only on WebSocket upgrades; its HTTP transports
    // and /emulation sit behind a CORS middleware that serves the request and leaves out the
    // CORS headers (centrifugo internal/app/mux.go, internal/middleware/cors.go; §10.9). The
    // browser then keeps the response from the page.
    it('origin on HTTP transports: served, CORS headers only for an allowed origin', async () => {
        const token = rotor.makeToken({ sub: 'origin' });
        const cf = (v) => encodeURIComponent(JSON.stringify(v));
        const JSONCT = { 'Content-Type': 'application/json' };
        const cases = [
            ['/connection/http_stream', 'POST', JSON.stringify({ id: 1, connect: { token } }), 200],
            [`/connection/sse?cf_connect=${cf({ id: 1, connect: { token } })}`, 'GET', undefined, 200],
            [`/connection/uni_sse?cf_connect=${cf({ token })}`, 'GET', undefined, 200],
            ['/connection/uni_http_stream', 'POST', JSON.stringify({ token }), 200],
            ['/emulation', 'POST', JSON.stringify({ session: 'nope.0', data: '{}' }), 204],
        ];
        for (const [p, method, body, status] of cases) {
            const headers = body ? JSONCT : {};
            const evil = await fetchHead(rotor, p, { method, body, headers: { ...headers, Origin: 'http://evil.example' } });
            assert.equal(evil.status, status, `${p} evil`);
            assert.equal(evil.headers.get('access-control-allow-origin'), null, p);
            assert.equal(evil.headers.get('access-control-allow-credentials'), null, p);
            const good = await fetchHead(rotor, p, { method, body, headers: { ...headers, Origin: ALLOWED } });
            assert.equal(good.status, status, `${p} allowed`);
            assert.equal(good.headers.get('access-control-allow-origin'), ALLOWED, p);
            assert.equal(good.headers.get('access-control-allow-credentials'), 'true', p);
        }
        // An /emulation error keeps them too, so the page can read it.
        const lost = await fetchAll(rotor, '/emulation', {
            method: 'POST', headers: { ...JSONCT, Origin: ALLOWED },
            body: JSON.stringify({ session: 's.0', node: 'no-such-node', data: '{}' }),
        });
        assert.equal(lost.status, 404);
        assert.equal(lost.headers.get('access-control-allow-origin'), ALLOWED);
        assert.equal(JSON.parse(lost.text).error, 'unknown node');
    });

    it('an emulation POST for an unknown session is accepted and dropped', async () => {
        const r = await rotor.request('/emulation', {
            method: 'POST', body: JSON.stringify({ session: 'nope.0', node: '', data: '{}' }),
        });
        assert.equal(r.status, 204);
        const r2 = await rotor.request('/emulation', {
            method: 'POST', body: JSON.stringify({ session: 's.0', node: 'no-such-node', data: '{}' }),
        });
        assert.equal(r2.status, 404);
    });
});

async function encodes(rotor) {
    const res = await rotor.request('/metrics');
    const m = res.text.match(/^rotor_publication_encodes_total (\d+)/m);
    assert.ok(m, 'metric rotor_publication_encodes_total');
    return Number(m[1]);
}

// Every transport but the bidirectional WebSocket is off by default; that one is switched
// off by websocket.disabled.
describe('disabled transports', { timeout: 30000 }, () => {
    const rotor = useRotor({ config: { websocket: { disabled: true } } });
    it('answers 404 on every disabled endpoint', async () => {
        for (const p of ['/connection/http_stream', '/connection/sse', '/emulation',
            '/connection/uni_websocket', '/connection/uni_sse', '/connection/uni_http_stream']) {
            const r = await rotor.request(p, { method: 'POST', body: '{}' });
            assert.equal(r.status, 404, p);
        }
        const ws = await rawRequest(rotor.port, '/connection/websocket', UPGRADE);
        assert.equal(ws.status, 404, 'websocket.disabled');
        assert.equal((await rotor.request('/health')).status, 200);
    });
});

describe('transport limits and pings', { timeout: 60000 }, () => {
    const rotor = useRotor({
        config: {
            ...TRANSPORTS,
            uni_websocket: { enabled: true, message_size_limit: 1024 },
            // Far below the 64 KiB default, so a 413 here comes from these keys.
            http_stream: { enabled: true, max_request_body_size: 1024 },
            sse: { enabled: true, max_request_body_size: 1024 },
            uni_sse: { enabled: true, max_request_body_size: 1024 },
            uni_http_stream: { enabled: true, max_request_body_size: 1024 },
            client: { queue_max_size: 65536, ping_interval: '2s', pong_timeout: '1s' },
        },
    });

    it('request bodies over max_request_body_size get 413 on every streaming endpoint', async () => {
        const token = rotor.makeToken({ sub: 'big' });
        const pad = 'x'.repeat(1100);
        const frame = JSON.stringify({ id: 1, connect: { token, data: { pad } } });
        const request = JSON.stringify({ token, data: { pad } });
        for (const [p, body] of [['/connection/http_stream', frame], ['/connection/sse', frame],
            ['/connection/uni_sse', request], ['/connection/uni_http_stream', request]]) {
            const r = await fetchAll(rotor, p, {
                method: 'POST', body, headers: { 'Content-Type': 'application/json' },
            });
            assert.equal(r.status, 413, p);
            assert.equal(JSON.parse(r.text).error, 'request body too large', p);
            // The same request under the limit is served.
            const small = body.replace(pad, 'x');
            const ok = await fetchHead(rotor, p, {
                method: 'POST', body: small, headers: { 'Content-Type': 'application/json' },
            });
            assert.equal(ok.status, 200, `${p} under the limit`);
        }
    });

    it('emulated sessions answer pings through /emulation and stay connected', async () => {
        const clients = [];
        for (const [transport, pb] of [['http_stream', false], ['http_stream', true], ['sse', false]]) {
            const c = transportClient(rotor, transport, { pb, token: rotor.makeToken({ sub: 'pinger' }) });
            c.name = `${transport}${pb ? '-pb' : ''}`;
            c.connect();
            await c.rec.wait('connected');
            clients.push(c);
        }
        await sleep(4500); // two pings each, every one needing a pong within 1 s
        for (const c of clients) {
            assert.equal(c.rec.count('disconnected'), 0, `${c.name}: ${JSON.stringify(c.rec.all('disconnected'))}`);
            assert.equal(c.rec.count('connecting'), 1, `${c.name} reconnected`);
        }
    });

    it('unidirectional streams get {} pings', async () => {
        const r = await uniStream(rotor, 'uni_http_stream', { token: rotor.makeToken({ sub: 'up' }) });
        const connect = await r.wait((m) => m.connect);
        assert.equal(connect.connect.ping, 2);
        assert.equal(connect.connect.pong, undefined);
        await r.wait((m) => Object.keys(m).length === 0, 4000);
        r.close();
    });

    it('a stream reader that stops reading is disconnected (3008), others are not', async () => {
        const before = await disconnects(rotor, 3008);
        const ch = 'pub:slowstream';
        // A raw POST whose response is never read.
        const net = await import('node:net');
        const body = JSON.stringify({ token: rotor.makeToken({ sub: 'slow', channels: [ch] }) });
        const sock = net.connect(rotor.port, '127.0.0.1');
        await new Promise((r) => sock.on('connect', r));
        sock.write(`POST /connection/uni_http_stream HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        sock.pause();
        const healthy = await uniStream(rotor, 'uni_http_stream',
            { token: rotor.makeToken({ sub: 'fast', channels: [ch] }) });
        await healthy.wait((m) => m.connect);
        await sleep(100);
        const data = { blob: 'x'.repeat(60000) };
        for (let i = 0; i < 200 && (await disconnects(rotor, 3008)) === before; i++) {
            await rotor.apiResult('publish', { channel: ch, data });
        }
        assert.equal(await disconnects(rotor, 3008), before + 1);
        await healthy.wait((m) => m.pub);
        assert.equal(healthy.ended, false);
        sock.destroy();
    });

    it('uni WebSocket: a first message over message_size_limit closes with 1009', async () => {
        const ws = new WebSocket(rotor.wsUrl('/connection/uni_websocket'));
        await new Promise((r) => ws.on('open', r));
        const closed = new Promise((r) => ws.on('close', (code) => r(code)));
        ws.send(JSON.stringify({ token: 'x'.repeat(2000) }));
        assert.equal(await closed, 1009);
    });

    it('uni WebSocket: an invalid first message closes with 3501', async () => {
        const ws = new WebSocket(rotor.wsUrl('/connection/uni_websocket'));
        await new Promise((r) => ws.on('open', r));
        const closed = new Promise((r) => ws.on('close', (code) => r(code)));
        ws.send('{nope');
        assert.equal(await closed, 3501);
    });
});

async function disconnects(rotor, code) {
    const res = await rotor.request('/metrics');
    const m = res.text.match(new RegExp(`^centrifugo_client_num_server_disconnects\\{code="${code}"\\} (\\d+)`, 'm'));
    return m ? Number(m[1]) : 0;
}
