// Server HTTP API through cent.js and raw fetch (SERVER.md §1).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { CentClient, CentException } from 'cent.js';

import { UUID_RE, connectedClient, newSub, subscribed } from './lib/clients.mjs';
import { waitFor } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';

describe('server API', { timeout: 60000 }, () => {
    const rotor = useRotor();
    const cent = () => new CentClient({ url: rotor.url('/api'), apiKey: rotor.apiKey });

    it('publish: offset/epoch with history, {} without; subscribers receive it', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = await subscribed(c, 'hist:api-pub');
        const r1 = await cent().publish({ channel: 'hist:api-pub', data: { a: 1 } });
        assert.equal(r1.offset, 1);
        assert.equal(typeof r1.epoch, 'string');
        assert.ok(r1.epoch.length > 0);
        const r2 = await cent().publish({ channel: 'hist:api-pub', data: { a: 2 }, tags: { k: 'v' } });
        assert.deepEqual(r2, { offset: 2, epoch: r1.epoch });
        const p = await s.rec.wait('publication', (x) => x.data.a === 2);
        assert.deepEqual(p.tags, { k: 'v' });
        assert.equal(p.offset, 2);
        assert.deepEqual(await cent().publish({ channel: 'pub:api-nohist', data: {} }), {});
    });

    it('publish with skip_history: delivered, not stored', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s = await subscribed(c, 'hist:api-skip');
        const r = await cent().publish({ channel: 'hist:api-skip', data: { s: 1 }, skip_history: true });
        assert.equal(r.offset, undefined);
        await s.rec.wait('publication');
        const h = await rotor.apiResult('history', { channel: 'hist:api-skip', limit: 10 });
        assert.deepEqual(h.publications, []);
    });

    it('publish errors: unknown namespace 102 (cent.js rejects), empty channel 107', async () => {
        await assert.rejects(cent().publish({ channel: 'nope:x', data: {} }), CentException);
        assert.deepEqual(await rotor.api('publish', { channel: 'nope:x', data: {} }),
            { error: { code: 102, message: 'unknown channel' } });
        assert.equal((await rotor.api('publish', { channel: '', data: {} })).error?.code, 107);
        assert.equal((await rotor.api('publish', { channel: 'pub:x' })).error?.code, 107, 'data is required');
    });

    it('broadcast: one response per channel, in order', async () => {
        const c = await connectedClient(rotor, 'u1');
        const s1 = await subscribed(c, 'pub:bc1');
        const s2 = await subscribed(c, 'hist:bc2');
        const r = await cent().broadcast({ channels: ['pub:bc1', 'hist:bc2', 'nope:bc3'], data: { b: 1 } });
        assert.equal(r.responses.length, 3);
        assert.deepEqual(r.responses[0], { result: {} });
        assert.equal(r.responses[1].result.offset, 1);
        assert.equal(r.responses[2].error.code, 102);
        assert.deepEqual((await s1.rec.wait('publication')).data, { b: 1 });
        assert.deepEqual((await s2.rec.wait('publication')).data, { b: 1 });
        assert.equal((await rotor.api('broadcast', { channels: [], data: {} })).error?.code, 107);
    });

    it('subscribe: server-side subscription, client gets subscribed and publications', async () => {
        const c = await connectedClient(rotor, 'srvsub');
        const r = await cent().subscribe({ user: 'srvsub', channel: 'pub:api-ss' });
        assert.deepEqual(r, {});
        const ctx = await c.rec.wait('subscribed', (x) => x.channel === 'pub:api-ss');
        assert.equal(ctx.channel, 'pub:api-ss');
        await cent().publish({ channel: 'pub:api-ss', data: { via: 'server-side' } });
        const p = await c.rec.wait('publication', (x) => x.channel === 'pub:api-ss');
        assert.deepEqual(p.data, { via: 'server-side' });
        // Unknown namespace is an error; an offline user is not.
        assert.equal((await rotor.api('subscribe', { user: 'srvsub', channel: 'nope:x' })).error?.code, 102);
        assert.deepEqual(await rotor.api('subscribe', { user: 'nobody', channel: 'pub:x' }), { result: {} });
    });

    it('unsubscribe: client subscription ends with code 2000', async () => {
        const c = await connectedClient(rotor, 'unsub');
        const s = await subscribed(c, 'pub:api-us');
        await cent().unsubscribe({ user: 'unsub', channel: 'pub:api-us' });
        const u = await s.rec.wait('unsubscribed');
        assert.equal(u.code, 2000);
        assert.equal(s.state, 'unsubscribed');
        assert.equal(c.state, 'connected');
    });

    it('disconnect: client disconnected with 3503; client filter spares others', async () => {
        const a = await connectedClient(rotor, 'disc');
        const b = await connectedClient(rotor, 'disc');
        await cent().disconnect({ user: 'disc', client: a.connectedCtx.client });
        assert.equal((await a.rec.wait('disconnected')).code, 3503);
        assert.equal(a.state, 'disconnected');
        assert.equal(b.state, 'connected');
        await cent().disconnect({ user: 'disc' });
        assert.equal((await b.rec.wait('disconnected')).code, 3503);
    });

    it('disconnect with a custom code and whitelist', async () => {
        const a = await connectedClient(rotor, 'disc2');
        const b = await connectedClient(rotor, 'disc2');
        await rotor.apiResult('disconnect', {
            user: 'disc2', whitelist: [b.connectedCtx.client], disconnect: { code: 4501, reason: 'go away' },
        });
        const d = await a.rec.wait('disconnected');
        assert.deepEqual([d.code, d.reason], [4501, 'go away']);
        assert.equal(b.state, 'connected');
    });

    it('refresh with expired: client closed with 3005 and reconnects', async () => {
        const c = await connectedClient(rotor, 'refr');
        await cent().refresh({ user: 'refr', expired: true });
        const ctx = await c.rec.wait('connecting', (x) => x.code === 3005);
        assert.equal(ctx.code, 3005);
        await c.rec.wait('connected', () => true, 4000, 2);
    });

    it('presence and presence_stats', async () => {
        const a = await connectedClient(rotor, 'pa', { claims: { info: { i: 1 } } });
        const b = await connectedClient(rotor, 'pb');
        await subscribed(a, 'chat:api-pr');
        await subscribed(b, 'chat:api-pr');
        const p = await cent().getPresence({ channel: 'chat:api-pr' });
        assert.deepEqual(p.presence[a.connectedCtx.client],
            { user: 'pa', client: a.connectedCtx.client, conn_info: { i: 1 } });
        assert.deepEqual(p.presence[b.connectedCtx.client], { user: 'pb', client: b.connectedCtx.client });
        assert.deepEqual(await cent().getPresenceStats({ channel: 'chat:api-pr' }), { num_clients: 2, num_users: 2 });
        assert.deepEqual(await rotor.apiResult('presence', { channel: 'chat:api-empty' }), { presence: {} });
        assert.deepEqual(await rotor.apiResult('presence_stats', { channel: 'chat:api-empty' }),
            { num_clients: 0, num_users: 0 });
        assert.equal((await rotor.api('presence', { channel: 'bare:x' })).error?.code, 108);
    });

    it('history and history_remove (stream position survives removal)', async () => {
        const ch = 'hist:api-h';
        for (let n = 1; n <= 3; n++) await cent().publish({ channel: ch, data: { n } });
        const h = await cent().getHistory({ channel: ch, limit: 10 });
        assert.deepEqual(h.publications.map((p) => [p.offset, p.data.n]), [[1, 1], [2, 2], [3, 3]]);
        assert.equal(h.offset, 3);
        const rev = await cent().getHistory({ channel: ch, limit: 2, reverse: true });
        assert.deepEqual(rev.publications.map((p) => p.offset), [3, 2]);
        const since = await cent().getHistory({ channel: ch, limit: 10, since: { offset: 1, epoch: h.epoch } });
        assert.deepEqual(since.publications.map((p) => p.offset), [2, 3]);
        const pos = await rotor.apiResult('history', { channel: ch });
        assert.deepEqual(pos, { publications: [], epoch: h.epoch, offset: 3 });
        assert.equal((await rotor.api('history', { channel: ch, since: { offset: 1, epoch: 'x' } })).error?.code, 112);
        assert.equal((await rotor.api('history', { channel: 'bare:x' })).error?.code, 108);

        assert.deepEqual(await cent().removeHistory({ channel: ch }), {});
        const after = await cent().getHistory({ channel: ch, limit: 10 });
        assert.deepEqual(after.publications, []);
        assert.equal(after.epoch, h.epoch);
        assert.equal(after.offset, 3);
        assert.equal((await cent().publish({ channel: ch, data: { n: 4 } })).offset, 4);
    });

    it('channels: active channels with subscriber counts, pattern filter', async () => {
        const a = await connectedClient(rotor, 'ca');
        const b = await connectedClient(rotor, 'cb');
        await subscribed(a, 'pub:chs-1');
        await subscribed(b, 'pub:chs-1');
        await subscribed(a, 'pub:chs-2');
        await subscribed(a, 'chat:chs-3');
        const r = await cent().getChannels({ pattern: 'pub:chs-*' });
        assert.deepEqual(r.channels, { 'pub:chs-1': { num_clients: 2 }, 'pub:chs-2': { num_clients: 1 } });
        const all = await rotor.apiResult('channels', {});
        assert.deepEqual(all.channels['chat:chs-3'], { num_clients: 1 });
    });

    it('info: one node with client counts', async () => {
        const a = await connectedClient(rotor, 'ia');
        await connectedClient(rotor, 'ia');
        await subscribed(a, 'pub:info');
        const info = await waitFor(async () => {
            const r = await cent().getInfo();
            return r.nodes?.[0]?.num_clients === 2 ? r : null;
        }, 5000, 'info num_clients 2');
        assert.equal(info.nodes.length, 1);
        const n = info.nodes[0];
        assert.match(n.uid, UUID_RE);
        assert.equal(typeof n.name, 'string');
        assert.equal(typeof n.version, 'string');
        assert.equal(n.num_users, 1);
        assert.ok(n.num_channels >= 1);
        assert.ok(n.num_subs >= 1);
    });

    // BatchResponse is {"replies": [...]} itself: no result wrapper, no top-level error
    // (SERVER.md §1.5 batch).
    it('batch: sequential commands see each other, errors stay per command', async () => {
        const ch = 'hist:batch-seq';
        const r = await rotor.api('batch', {
            commands: [
                { publish: { channel: ch, data: { i: 1 } } },
                { publish: { channel: ch, data: { i: 2 } } },
                { history: { channel: ch, limit: 10 } },
                { publish: { channel: 'nope:x', data: {} } },
                { presence_stats: { channel: 'chat:batch' } },
                { no_such_method: {} },
            ],
        });
        const rep = r.replies;
        assert.equal(rep.length, 6);
        assert.equal(rep[0].publish.offset, 1);
        assert.equal(rep[1].publish.offset, 2);
        assert.deepEqual(rep[2].history.publications.map((p) => p.data.i), [1, 2]);
        assert.equal(rep[3].error.code, 102);
        assert.deepEqual(rep[4].presence_stats, { num_clients: 0, num_users: 0 });
        assert.equal(rep[5].error.code, 104);
    });

    it('batch: parallel publishes all land', async () => {
        const ch = 'hist:batch-par';
        const commands = Array.from({ length: 8 }, (_, i) => ({ publish: { channel: ch, data: { i } } }));
        const r = await rotor.api('batch', { commands, parallel: true });
        assert.equal(r.replies.length, 8);
        const offsets = r.replies.map((x) => x.publish.offset).sort((a, b) => a - b);
        assert.deepEqual(offsets, [1, 2, 3, 4, 5, 6, 7, 8]);
        const h = await rotor.apiResult('history', { channel: ch, limit: -1 });
        assert.equal(h.publications.length, 8);
    });

    it('legacy POST /api: one reply per command line, in order', async () => {
        const body = [
            '{"id":1,"method":"publish","params":{"channel":"hist:legacy","data":{"x":1}}}',
            '{"id":2,"method":"PRESENCE_STATS","params":{"channel":"chat:legacy"}}',
            '{"method":"info","params":{}}',
            '{"id":4,"method":"bogus","params":{}}',
            '{"id":5,"method":0,"params":{"channel":"hist:legacy","data":{"x":2}}}',
            '{"id":6,"params":{"channel":"hist:legacy","data":{"x":3}}}',
        ].join('\n');
        const res = await rotor.apiRaw('', body);
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type'), /application\/json/);
        assert.ok(!res.text.endsWith('\n'), 'no trailing newline');
        const lines = res.text.split('\n').map((l) => JSON.parse(l));
        assert.equal(lines.length, 6);
        assert.deepEqual(lines[0], { id: 1, result: { offset: 1, epoch: lines[0].result.epoch } });
        assert.deepEqual(lines[1], { id: 2, result: { num_clients: 0, num_users: 0 } });
        assert.equal(lines[2].id, undefined);
        assert.equal(lines[2].result.nodes.length, 1);
        assert.equal(lines[3].error.code, 104);
        assert.equal(lines[4].result.offset, 2, 'method 0 is publish');
        assert.equal(lines[5].result.offset, 3, 'missing method is publish');
    });

    it('legacy POST /api via cent.js pipeline', async () => {
        const results = await cent().pipeline([
            { method: 'publish', params: { channel: 'hist:pipeline', data: { p: 1 } } },
            { method: 'history', params: { channel: 'hist:pipeline', limit: 5 } },
        ]);
        assert.equal(results.length, 2);
        assert.equal(results[0].offset, 1);
        assert.deepEqual(results[1].publications.map((p) => p.data), [{ p: 1 }]);
        const bad = await rotor.apiRaw('', '{"method":"publish",');
        assert.equal(bad.status, 400);
        assert.equal((await rotor.apiRaw('', '')).status, 400);
    });

    it('authentication: missing or wrong key 401; Authorization apikey and api_key query accepted', async () => {
        const body = JSON.stringify({});
        const none = await rotor.apiRaw('info', {}, { key: null });
        assert.equal(none.status, 401);
        assert.equal((await rotor.apiRaw('info', {}, { key: 'wrong' })).status, 401);
        const viaAuth = await rotor.request('/api/info', {
            method: 'POST', body, headers: { Authorization: `apikey ${rotor.apiKey}` },
        });
        assert.equal(viaAuth.status, 200);
        const viaAuthCase = await rotor.request('/api/info', {
            method: 'POST', body, headers: { Authorization: `APIKEY ${rotor.apiKey}` },
        });
        assert.equal(viaAuthCase.status, 200);
        const viaQuery = await rotor.request(`/api/info?api_key=${encodeURIComponent(rotor.apiKey)}`, {
            method: 'POST', body,
        });
        assert.equal(viaQuery.status, 200);
        // A wrong X-API-Key is not rescued by a correct Authorization header (§1.2 order).
        const both = await rotor.request('/api/info', {
            method: 'POST', body, headers: { 'X-API-Key': 'wrong', Authorization: `apikey ${rotor.apiKey}` },
        });
        assert.equal(both.status, 401);
        assert.equal((await rotor.apiRaw('', '{"method":"info","params":{}}', { key: 'wrong' })).status, 401);
    });

    it('HTTP errors: unknown method 404, non-POST 405, invalid JSON 400', async () => {
        assert.equal((await rotor.apiRaw('no_such_method', {})).status, 404);
        const get = await rotor.request('/api/publish', { headers: { 'X-API-Key': rotor.apiKey } });
        assert.equal(get.status, 405);
        const put = await rotor.request('/api/info', { method: 'PUT', body: '{}', headers: { 'X-API-Key': rotor.apiKey } });
        assert.equal(put.status, 405);
        assert.equal((await rotor.apiRaw('publish', '{"channel":')).status, 400);
        assert.equal((await rotor.apiRaw('publish', '[1,2]')).status, 400);
    });

    it('401 has an empty body (SERVER.md §1.2); 405 a JSON body (issue: HTTP errors carry JSON)', async () => {
        assert.equal((await rotor.apiRaw('info', {}, { key: 'wrong' })).text, '');
        const res = await rotor.request('/api/info', { headers: { 'X-API-Key': rotor.apiKey } });
        assert.equal(res.status, 405);
        assert.deepEqual(JSON.parse(res.text), { error: 'method not allowed' });
    });

    it('API error inside 200 with a JSON content type', async () => {
        const res = await rotor.apiRaw('history', { channel: 'nope:x' });
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type'), /application\/json/);
        assert.deepEqual(res.json(), { error: { code: 102, message: 'unknown channel' } });
    });

    it('error_mode transport header: HTTP status from the code, bare error body', async () => {
        const hdr = { headers: { 'X-Centrifugo-Error-Mode': 'transport' } };
        const r404 = await rotor.apiRaw('publish', { channel: 'nope:x', data: {} }, hdr);
        assert.equal(r404.status, 404);
        assert.deepEqual(r404.json(), { code: 102, message: 'unknown channel' });
        const r400 = await rotor.apiRaw('history', { channel: 'bare:x' }, hdr);
        assert.equal(r400.status, 400);
        assert.equal(r400.json().code, 108);
        const ok = await rotor.apiRaw('publish', { channel: 'pub:x', data: {} }, hdr);
        assert.equal(ok.status, 200);
        assert.deepEqual(ok.json(), { result: {} });
        // batch ignores transport mode (§1.3).
        const b = await rotor.apiRaw('batch', { commands: [{ publish: { channel: 'nope:x', data: {} } }] }, hdr);
        assert.equal(b.status, 200);
        assert.equal(b.json().replies[0].error.code, 102);
    });

    it('rpc without extensions: 104 (107 for an empty method)', async () => {
        assert.equal((await rotor.api('rpc', { method: 'anything', params: {} })).error?.code, 104);
        assert.equal((await rotor.api('rpc', { method: '' })).error?.code, 107);
    });

    it('a server-side unsubscribed SDK subscription can subscribe again', async () => {
        const c = await connectedClient(rotor, 'resub');
        const s = newSub(c, 'pub:api-resub');
        s.subscribe();
        await s.rec.wait('subscribed');
        await cent().unsubscribe({ user: 'resub', channel: 'pub:api-resub' });
        await s.rec.wait('unsubscribed');
        s.subscribe();
        await s.rec.wait('subscribed', () => true, 4000, 2);
        await cent().publish({ channel: 'pub:api-resub', data: { again: 1 } });
        assert.deepEqual((await s.rec.wait('publication')).data, { again: 1 });
    });
});
