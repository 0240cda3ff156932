// Emulation without sticky sessions (PROTOCOL.md §10.3): the streaming half of a session
// lives on one node while its /emulation POSTs land on another, which forwards them through
// the control channel on Redis. Unidirectional streams on one node receive publications
// made through another.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { newSub } from './lib/clients.mjs';
import { useCluster } from './lib/redis.mjs';
import { NAMESPACES } from './lib/rotor.mjs';
import { transportClient, uniStream } from './lib/transports.mjs';

const FULL = {
    name: 'full', presence: true, history_size: 10, history_ttl: '300s', force_recovery: true,
    allow_subscribe_for_client: true, allow_publish_for_subscriber: true,
    allow_presence_for_subscriber: true, allow_history_for_subscriber: true,
};

const codec = (pb) => ({
    enc: (v) => (pb ? new TextEncoder().encode(JSON.stringify(v)) : v),
    dec: (v) => (pb ? JSON.parse(new TextDecoder().decode(v)) : v),
});

async function forwarded(rotor) {
    const res = await rotor.request('/metrics');
    return Number(res.text.match(/^rotor_emulation_forwarded_total (\d+)/m)[1]);
}

describe('emulation across two nodes', { timeout: 60000 }, () => {
    const h = useCluster(2, {
        config: {
            http_stream: { enabled: true },
            sse: { enabled: true },
            uni_http_stream: { enabled: true },
            channel: { namespaces: [...NAMESPACES, FULL] },
        },
    });

    for (const [transport, pb] of [['http_stream', false], ['http_stream', true], ['sse', false]]) {
        it(`${transport} ${pb ? 'Protobuf' : 'JSON'}: stream on A, commands POSTed to B`, async () => {
            const [A, B] = h.c.nodes;
            const { enc, dec } = codec(pb);
            const tag = `x-${transport}-${pb ? 'pb' : 'json'}`;
            const c = transportClient(A, transport, {
                pb, token: A.makeToken({ sub: tag }), emulationVia: B,
            });
            c.connect();
            await c.rec.wait('connected');
            const ch = `full:${tag}`;
            const s = newSub(c, ch);
            s.subscribe();
            await s.rec.wait('subscribed');
            await s.publish(enc({ n: 1 }));
            await s.rec.wait('publication', (p) => dec(p.data).n === 1);
            await B.apiResult('publish', { channel: ch, data: { n: 2 } });
            await s.rec.wait('publication', (p) => dec(p.data).n === 2);
            const stats = await s.presenceStats();
            assert.deepEqual(stats, { numClients: 1, numUsers: 1 });
            const hist = await s.history({ limit: 5 });
            assert.deepEqual(hist.publications.map((p) => dec(p.data).n), [1, 2]);
            // Every command after connect went through B and was forwarded to A.
            assert.ok(await forwarded(B) >= 4, `forwarded by B: ${await forwarded(B)}`);
        });
    }

    it('uni_http_stream on B receives what is published through A', async () => {
        const [A, B] = h.c.nodes;
        const r = await uniStream(B, 'uni_http_stream', {
            token: B.makeToken({ sub: 'uni-x', channels: ['pub:unix'] }),
        });
        await r.wait((m) => m.connect);
        await A.apiResult('publish', { channel: 'pub:unix', data: { via: 'A' } });
        const pub = await r.wait((m) => m.pub);
        assert.deepEqual(pub.pub.data, { via: 'A' });
    });

    it('an /emulation POST naming an unknown node is 404, a known one 204', async () => {
        const [A, B] = h.c.nodes;
        const uidA = A.logs().match(/ uid=([0-9a-f-]{36}) /)[1];
        const ok = await B.request('/emulation', {
            method: 'POST', body: JSON.stringify({ session: 'gone.0', node: uidA, data: '{}' }),
        });
        assert.equal(ok.status, 204);
        const bad = await A.request('/emulation', {
            method: 'POST', body: JSON.stringify({ session: 'gone.0', node: 'nope', data: '{}' }),
        });
        assert.equal(bad.status, 404);
    });
});
