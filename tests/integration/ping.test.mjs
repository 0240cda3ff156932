// Application-level ping/pong and the stale timer (PROTOCOL.md §5, §10.2, §11).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RawClient, connectedClient } from './lib/clients.mjs';
import { nowSec, sleep } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';

const PING_S = 2;
const PONG_S = 1;
const STALE_MS = 1000;

describe('ping, pong and stale connections', { timeout: 60000 }, () => {
    const rotor = useRotor({
        config: { client: { ping_interval: `${PING_S}s`, pong_timeout: `${PONG_S}s`, stale_close_delay: `${STALE_MS}ms` } },
    });

    it('connect result advertises ping interval (s) and pong', async () => {
        const raw = await RawClient.open(rotor);
        const r = await raw.connect(rotor.makeToken({ sub: 'p' }));
        assert.equal(r.connect.ping, PING_S);
        assert.equal(r.connect.pong, true);
    });

    it('SDK client stays connected across several pings', async () => {
        // Watchdog = ping + maxServerPingDelay: a missing server ping reconnects (code 2).
        const c = await connectedClient(rotor, 'p', { opts: { maxServerPingDelay: 1000 } });
        await sleep(PING_S * 3000 + 500);
        assert.equal(c.state, 'connected');
        assert.equal(c.rec.count('connecting', (x) => x.code !== 0), 0, JSON.stringify(c.rec.all('connecting')));
        assert.equal(c.rec.count('disconnected'), 0);
    });

    it('raw client answering pings stays open; pings about every interval', async () => {
        const raw = await RawClient.open(rotor, { autoPong: true });
        const connectedAt = Date.now();
        await raw.connect(rotor.makeToken({ sub: 'p' }));
        await sleep(PING_S * 2000 + 1200);
        assert.ok(raw.isOpen(), `closed: ${JSON.stringify(raw.closeInfo)}`);
        const pingFrames = raw.frames.filter((f) => f.text === '{}');
        assert.ok(pingFrames.length >= 2, `pings: ${pingFrames.length}`);
        // First ping in [interval/2, interval) after connect, then every interval (§5).
        const first = pingFrames[0].at - connectedAt;
        assert.ok(first >= PING_S * 500 - 100 && first <= PING_S * 1000 + 300, `first ping after ${first} ms`);
        const gap = pingFrames[1].at - pingFrames[0].at;
        assert.ok(gap >= PING_S * 1000 - 300 && gap <= PING_S * 1000 + 300, `ping gap ${gap} ms`);
    });

    it('raw client that never answers pings is closed with 3012', async () => {
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'p' }));
        await raw.waitMessage((m) => Object.keys(m).length === 0, PING_S * 1000 + 500, 'first ping');
        const pingAt = Date.now();
        const cl = await raw.waitClose(PONG_S * 1000 + 2000);
        assert.equal(cl.code, 3012, JSON.stringify(cl));
        assert.equal(cl.reason, 'no pong');
        const waited = cl.at - pingAt;
        assert.ok(waited >= PONG_S * 1000 - 200, `closed ${waited} ms after the ping`);
    });

    it('pong without an outstanding ping: 3501', async () => {
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'p' }));
        raw.sendRaw('{}');
        assert.equal((await raw.waitClose()).code, 3501);
    });

    it('no connect command within stale_close_delay: closed with 3502', async () => {
        const raw = await RawClient.open(rotor);
        const openedAt = Date.now();
        const cl = await raw.waitClose(STALE_MS + 3000);
        assert.equal(cl.code, 3502, JSON.stringify(cl));
        const waited = cl.at - openedAt;
        assert.ok(waited >= STALE_MS - 200, `closed after ${waited} ms`);
    });

    it('failed connect leaves the connection unusable until the stale timer closes it', async () => {
        const raw = await RawClient.open(rotor);
        const r = await raw.connect(rotor.makeToken({ sub: 'p', exp: nowSec() - 10 }));
        assert.equal(r.error?.code, 109);
        const cl = await raw.waitClose(STALE_MS + 3000);
        assert.equal(cl.code, 3502, JSON.stringify(cl));
    });

    it('cf_ws_frame_ping_pong=true: native WebSocket pings, none advertised', async () => {
        const raw = await RawClient.open(rotor, { path: '/connection/websocket?cf_ws_frame_ping_pong=true' });
        let nativePings = 0;
        raw.ws.on('ping', () => nativePings++);
        const r = await raw.connect(rotor.makeToken({ sub: 'p' }));
        assert.ok(r.connect, JSON.stringify(r));
        assert.equal(r.connect.ping, undefined);
        assert.equal(r.connect.pong, undefined);
        // ws answers native pings itself; the connection must survive past interval+timeout.
        await sleep(PING_S * 1000 + PONG_S * 1000 + 800);
        assert.ok(nativePings >= 1, 'no native ping frame');
        assert.ok(raw.isOpen(), `closed: ${JSON.stringify(raw.closeInfo)}`);
        assert.equal(raw.pings().length, 0, 'no application pings in this mode');
    });
});
