// Misbehaving peers (PROTOCOL.md §1.1, §1.4, §6.5, §10.2): each gets the documented close
// code, and an SDK client on the same node keeps publishing and receiving before and after.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, it } from 'node:test';

import { RawClient, connectedClient, roundTrip, subscribed } from './lib/clients.mjs';
import { useRotor } from './lib/suite.mjs';

describe('bad input', { timeout: 60000 }, () => {
    const rotor = useRotor();
    let seq = 0;

    /** Runs fn between two publish/receive round trips of a healthy SDK client. */
    async function withCanary(fn) {
        const c = await connectedClient(rotor, 'canary');
        const s = await subscribed(c, `chat:canary-${++seq}`);
        await roundTrip(c, s, 'before');
        await fn();
        await roundTrip(c, s, 'after');
        assert.equal(c.state, 'connected');
        assert.equal(c.rec.count('connecting', (x) => x.code !== 0), 0);
    }

    async function connectedRaw() {
        const raw = await RawClient.open(rotor);
        const r = await raw.connect(rotor.makeToken({ sub: 'bad' }));
        assert.ok(r.connect, JSON.stringify(r));
        return raw;
    }

    async function expectClose(raw, code) {
        const cl = await raw.waitClose();
        assert.equal(cl.code, code, `close ${JSON.stringify(cl)}; received: ${raw.describe()}`);
        return cl;
    }

    it('invalid JSON after connect: 3501', () => withCanary(async () => {
        const raw = await connectedRaw();
        raw.sendRaw('{"subscribe":');
        const cl = await expectClose(raw, 3501);
        assert.equal(cl.reason, 'bad request');
    }));

    it('invalid JSON as the first frame: 3501', () => withCanary(async () => {
        const raw = await RawClient.open(rotor);
        raw.sendRaw('hello, server');
        await expectClose(raw, 3501);
    }));

    it('JSON that is not an object: 3501', () => withCanary(async () => {
        for (const text of ['[1,2]', '"str"', '42', 'null']) {
            const raw = await connectedRaw();
            raw.sendRaw(text);
            await expectClose(raw, 3501);
        }
    }));

    it('unknown command (id > 0, no request field): 3501', () => withCanary(async () => {
        for (const cmd of [{ id: 7 }, { id: 8, ping: {} }, { id: 9, frobnicate: {} }]) {
            const raw = await connectedRaw();
            raw.send(cmd);
            await expectClose(raw, 3501);
        }
    }));

    it('command before connect: 3501', () => withCanary(async () => {
        const raw = await RawClient.open(rotor);
        raw.send({ id: 1, subscribe: { channel: 'pub:x' } });
        await expectClose(raw, 3501);
        // A connect without id is a pong, and a pong before connect is a violation too.
        const raw2 = await RawClient.open(rotor);
        raw2.send({ connect: { token: rotor.makeToken({ sub: 'bad' }) } });
        await expectClose(raw2, 3501);
    }));

    it('second connect: 3501', () => withCanary(async () => {
        const raw = await connectedRaw();
        raw.send({ id: 50, connect: { token: rotor.makeToken({ sub: 'bad' }) } });
        await expectClose(raw, 3501);
    }));

    it('empty frame: 3501', () => withCanary(async () => {
        const raw = await connectedRaw();
        raw.sendRaw('');
        await expectClose(raw, 3501);
    }));

    it('valid commands before a bad line are processed, then 3501', () => withCanary(async () => {
        const raw = await connectedRaw();
        raw.sendRaw('{"subscribe":{"channel":"pub:mixed"},"id":2}\n{oops');
        await raw.reply(2);
        await expectClose(raw, 3501);
    }));

    it('several commands in one frame, trailing newline allowed', () => withCanary(async () => {
        const raw = await RawClient.open(rotor);
        const token = rotor.makeToken({ sub: 'batch' });
        raw.sendRaw(`{"connect":{"token":"${token}","name":"raw"},"id":1}\n` +
            '{"subscribe":{"channel":"pub:b1","flag":1},"id":2}\n{"subscribe":{"channel":"pub:b2"},"id":3}\n');
        assert.ok((await raw.reply(1)).connect);
        assert.deepEqual((await raw.reply(2)).subscribe, {});
        assert.deepEqual((await raw.reply(3)).subscribe, {});
        assert.ok(raw.isOpen());
    }));

    it('unknown fields in commands are ignored', () => withCanary(async () => {
        const raw = await RawClient.open(rotor);
        raw.send({ connect: { token: rotor.makeToken({ sub: 'x' }), extra: [1, { a: 2 }] }, id: 1, zzz: true });
        assert.ok((await raw.reply(1)).connect);
        raw.send({ id: 2, subscribe: { channel: 'pub:unk', future_field: 'x' } });
        assert.ok((await raw.reply(2)).subscribe);
    }));

    it('oversized message: close 1009', () => withCanary(async () => {
        const raw = await connectedRaw();
        const big = `{"id":2,"publish":{"channel":"chat:big","data":"${'x'.repeat(70 * 1024)}"}}`;
        raw.sendRaw(big);
        await expectClose(raw, 1009);
    }));

    it('binary garbage: 3501', () => withCanary(async () => {
        const raw = await connectedRaw();
        raw.sendRaw(Buffer.from([0xff, 0x00, 0xfe, 0x13, 0x37, ...randomBytes(64)]), { binary: true });
        await expectClose(raw, 3501);
        const raw2 = await RawClient.open(rotor);
        raw2.sendRaw(randomBytes(200), { binary: true });
        await expectClose(raw2, 3501);
    }));

    it('text frame with invalid UTF-8: closed (1007 or 3501)', () => withCanary(async () => {
        const raw = await connectedRaw();
        raw.sendRaw(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), { binary: false });
        const cl = await raw.waitClose();
        assert.ok([1007, 3501].includes(cl.code), JSON.stringify(cl));
    }));

    it('GET /connection/websocket without Upgrade: 400 with a JSON body', () => withCanary(async () => {
        const r = await rotor.request('/connection/websocket');
        assert.equal(r.status, 400);
        assert.doesNotThrow(() => r.json(), `body is not JSON: ${r.text}`);
    }));

    it('non-HTTP bytes on the port: rejected, connection closed', () => withCanary(async () => {
        const sock = net.connect(rotor.port, '127.0.0.1');
        const chunks = [];
        sock.on('data', (d) => chunks.push(d));
        await new Promise((res, rej) => {
            sock.once('connect', res);
            sock.once('error', rej);
        });
        sock.write(Buffer.concat([Buffer.from('\x16\x03\x01\x02\x00\x01'), randomBytes(300), Buffer.from('\r\n\r\n')]));
        await new Promise((res) => {
            sock.once('close', res);
            sock.once('error', res);
            setTimeout(res, 3000);
        });
        const text = Buffer.concat(chunks).toString('latin1');
        assert.ok(sock.destroyed || sock.readyState === 'closed', 'server kept the socket open');
        assert.ok(text === '' || text.startsWith('HTTP/1.1 400'), `response: ${text.slice(0, 80)}`);
        sock.destroy();
    }));

    it('peer vanishing mid-frame and mid-handshake', () => withCanary(async () => {
        // Half a WebSocket frame header, then TCP close.
        const raw = await connectedRaw();
        raw.ws._socket.write(Buffer.from([0x81, 0xfe, 0x01]));
        raw.ws._socket.destroy();
        // Half an HTTP request, then TCP close.
        const sock = net.connect(rotor.port, '127.0.0.1');
        await new Promise((res) => sock.once('connect', res));
        sock.write('GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpg');
        sock.destroy();
    }));
});
