// Health, readiness, metrics and graceful shutdown (SERVER.md §5, §6.1, §7.9).
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';

import { RawClient, connectedClient, subscribed } from './lib/clients.mjs';
import { sleep, startRotor, waitFor } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';

function metricValue(text, name) {
    const m = text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm'));
    return m ? Number(m[1]) : undefined;
}

describe('health, readiness and metrics', { timeout: 30000 }, () => {
    const rotor = useRotor();

    it('/health answers 200 {} as JSON, for any method', async () => {
        const r = await rotor.request('/health');
        assert.equal(r.status, 200);
        assert.match(r.headers.get('content-type'), /application\/json/);
        assert.deepEqual(r.json(), {});
        assert.equal((await rotor.request('/health', { method: 'POST', body: 'x' })).status, 200);
    });

    it('/ready answers 200 while serving', async () => {
        const r = await rotor.request('/ready');
        assert.equal(r.status, 200);
    });

    it('/metrics exposes centrifugo_node_num_clients and tracks connections', async () => {
        const r = await rotor.request('/metrics');
        assert.equal(r.status, 200);
        assert.match(r.headers.get('content-type'), /text\/plain/);
        assert.match(r.text, /^# TYPE centrifugo_node_num_clients gauge$/m);
        assert.equal(metricValue(r.text, 'centrifugo_node_num_clients'), 0);
        const a = await connectedClient(rotor, 'm1');
        await connectedClient(rotor, 'm2');
        await subscribed(a, 'pub:metrics');
        await waitFor(async () => {
            const t = (await rotor.request('/metrics')).text;
            return metricValue(t, 'centrifugo_node_num_clients') === 2 &&
                metricValue(t, 'centrifugo_node_num_users') === 2;
        }, 5000, 'num_clients 2 in /metrics');
    });

    it('unknown path: 404', async () => {
        assert.equal((await rotor.request('/definitely/not/here')).status, 404);
    });
});

describe('graceful shutdown', { timeout: 60000 }, () => {
    it('SIGTERM: /ready 503 at once, clients get 3001, exit 0 within shutdown.timeout', async () => {
        const r = await startRotor({ config: { shutdown: { timeout: '5s', drain_delay: '1s' } } });
        try {
            assert.equal((await r.request('/ready')).status, 200);
            const c = await connectedClient(r, 'bye');
            const s = await subscribed(c, 'pub:shutdown');
            const raw = await RawClient.open(r);
            await raw.connect(r.makeToken({ sub: 'bye-raw' }));

            const t0 = Date.now();
            r.signal('SIGTERM');
            // Readiness flips before clients are disconnected (drain_delay), so a balancer
            // stops routing first.
            let readyAt = null;
            while (Date.now() - t0 < 1500 && !r.exited) {
                try {
                    const st = (await r.request('/ready')).status;
                    if (st === 503) {
                        readyAt = Date.now();
                        break;
                    }
                    assert.equal(st, 200);
                } catch {
                    break; // listener closed
                }
                await sleep(20);
            }
            assert.ok(readyAt !== null, '/ready never answered 503 during the drain');
            assert.ok(readyAt - t0 < 1000, `/ready 503 only after ${readyAt - t0} ms`);

            const conn = await c.rec.wait('connecting', (x) => x.code === 3001, 6000);
            assert.equal(conn.reason, 'shutdown');
            assert.equal(c.state, 'connecting', '3001 is a reconnect code');
            assert.equal(s.state, 'subscribing');
            const cl = await raw.waitClose(6000);
            assert.deepEqual([cl.code, cl.reason], [3001, 'shutdown']);

            const ex = await r.waitExit(6000);
            assert.equal(ex.code, 0, `exit ${JSON.stringify(ex)}\n${r.logTail(40)}`);
            assert.ok(Date.now() - t0 <= 5500, `exit took ${Date.now() - t0} ms`);
            c.disconnect();
        } finally {
            await r.stop({ check: false });
        }
    });

    it('spreads the 3001 disconnects over shutdown.disconnect_window', async () => {
        const r = await startRotor({
            config: { workers: 1, shutdown: { timeout: '10s', disconnect_window: '2s' } },
        });
        try {
            const raws = [];
            for (let i = 0; i < 40; i++) {
                const raw = await RawClient.open(r);
                await raw.connect(r.makeToken({ sub: `w${i}` }));
                raws.push(raw);
            }
            const t0 = Date.now();
            r.signal('SIGTERM');
            const at = await Promise.all(raws.map(async (raw) => {
                const cl = await raw.waitClose(8000);
                assert.equal(cl.code, 3001);
                return Date.now() - t0;
            }));
            at.sort((a, b) => a - b);
            // A ramp, not a storm: the first ones go at once, the last ones near the end.
            assert.ok(at[0] < 500, `first after ${at[0]} ms`);
            assert.ok(at[at.length - 1] >= 1500, `all ${at.length} gone by ${at.at(-1)} ms`);
            assert.ok(at[at.length - 1] < 3500, `last after ${at.at(-1)} ms`);
            const ex = await r.waitExit(8000);
            assert.equal(ex.code, 0);
        } finally {
            await r.stop({ check: false });
        }
    });

    it('exits within shutdown.timeout when a peer never completes the close handshake', async () => {
        const r = await startRotor({ config: { shutdown: { timeout: '2s' } } });
        let sock;
        try {
            // Hand-made upgrade; the socket is then never read, so the close handshake
            // cannot complete on our side.
            sock = net.connect(r.port, '127.0.0.1');
            await new Promise((res, rej) => {
                sock.once('connect', res);
                sock.once('error', rej);
            });
            sock.write('GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n' +
                'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
                'Sec-WebSocket-Version: 13\r\n\r\n');
            await new Promise((res) => sock.once('data', res));
            sock.pause();
            sock.on('error', () => {});
            const t0 = Date.now();
            r.signal('SIGTERM');
            await r.waitExit(4000);
            assert.ok(Date.now() - t0 <= 3000, `exit took ${Date.now() - t0} ms`);
        } finally {
            sock?.destroy();
            await r.stop({ check: false });
        }
    });

    it('a second SIGTERM exits at once, without waiting for the drain', async () => {
        const r = await startRotor({ config: { shutdown: { timeout: '20s', drain_delay: '10s' } } });
        try {
            r.signal('SIGTERM');
            await sleep(200);
            assert.equal(r.exited, null, 'still draining after the first signal');
            const t0 = Date.now();
            r.signal('SIGTERM');
            const ex = await r.waitExit(2000);
            assert.ok(Date.now() - t0 < 1500, `exit took ${Date.now() - t0} ms`);
            assert.notEqual(ex.code, 0, 'an interrupted shutdown is not a clean exit');
        } finally {
            await r.stop({ check: false });
        }
    });

    it('SIGINT also shuts down cleanly', async () => {
        const r = await startRotor();
        try {
            await connectedClient(r, 'int');
            r.signal('SIGINT');
            const ex = await r.waitExit(6000);
            assert.equal(ex.code, 0, `exit ${JSON.stringify(ex)}\n${r.logTail(40)}`);
        } finally {
            await r.stop({ check: false });
        }
    });
});
