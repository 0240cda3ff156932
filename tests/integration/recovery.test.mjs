// Stream positions and recovery after a reconnect (PROTOCOL.md §8, §12.2).
//
// The client is dropped with the server API `disconnect` and code 4000 (application
// reconnect range, §6.3), so centrifuge-js reconnects by itself after a fixed delay and
// resubscribes with recover:true and its last offset/epoch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RawClient, connectedClient, sdkClient, subscribed } from './lib/clients.mjs';
import { sleep } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';

// Long enough to publish while the client is away, short enough to keep the suite quick.
const AWAY_MS = 700;
const RECONNECT = { minReconnectDelay: AWAY_MS, maxReconnectDelay: AWAY_MS };

describe('recovery', { timeout: 60000 }, () => {
    const rotor = useRotor();

    const publish = (channel, n) => rotor.apiResult('publish', { channel, data: { n } });

    async function dropUser(client, user) {
        const p = client.rec.wait('connecting', (x) => x.code === 4000);
        await rotor.apiResult('disconnect', { user, disconnect: { code: 4000, reason: 'x' } });
        const ctx = await p;
        assert.equal(ctx.reason, 'x');
    }

    it('missed publications are recovered in order, exactly once', async () => {
        const ch = 'hist:rec1';
        const c = await connectedClient(rotor, 'rec1', { opts: RECONNECT });
        const s = await subscribed(c, ch);
        const first = s.subscribedCtx;
        assert.equal(first.recoverable, true);
        assert.equal(first.positioned, true);
        assert.equal(first.wasRecovering, false);
        assert.equal(first.streamPosition.offset, 0);
        assert.ok(first.streamPosition.epoch.length > 0);

        for (let n = 1; n <= 5; n++) await publish(ch, n);
        await s.rec.wait('publication', () => true, 4000, 5);

        await dropUser(c, 'rec1');
        for (let n = 6; n <= 8; n++) await publish(ch, n);
        const publishedAt = Date.now();

        const again = await s.rec.wait('subscribed', () => true, 5000, 2);
        assert.equal(again.wasRecovering, true);
        assert.equal(again.recovered, true);
        assert.equal(again.hasRecoveredPublications, true);
        assert.equal(again.streamPosition.epoch, first.streamPosition.epoch);
        await c.rec.wait('connected', () => true, 1000, 2);
        assert.ok(c.rec.at('connected', 2) >= publishedAt, 'client came back before the publications');

        await s.rec.wait('publication', () => true, 4000, 8);
        await sleep(200);
        const pubs = s.rec.all('publication');
        assert.deepEqual(pubs.map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert.deepEqual(pubs.map((p) => p.data.n), [1, 2, 3, 4, 5, 6, 7, 8]);

        // Live delivery continues after the recovered ones.
        await publish(ch, 9);
        const p9 = await s.rec.wait('publication', (p) => p.data.n === 9);
        assert.equal(p9.offset, 9);
    });

    it('reconnect without missed publications: recovered, nothing replayed', async () => {
        const ch = 'hist:rec-none';
        const c = await connectedClient(rotor, 'rec2', { opts: RECONNECT });
        const s = await subscribed(c, ch);
        await publish(ch, 1);
        await s.rec.wait('publication');
        await dropUser(c, 'rec2');
        const again = await s.rec.wait('subscribed', () => true, 5000, 2);
        assert.equal(again.wasRecovering, true);
        assert.equal(again.recovered, true);
        assert.equal(again.hasRecoveredPublications, false);
        assert.equal(again.streamPosition.offset, 1);
        await sleep(200);
        assert.equal(s.rec.count('publication'), 1);
    });

    it('epoch mismatch: recovered false, position is the current top', async () => {
        const ch = 'hist:rec-epoch';
        await publish(ch, 1);
        await publish(ch, 2);
        const c = await connectedClient(rotor, 'rec3');
        const s = await subscribed(c, ch, { since: { offset: 1, epoch: 'bogus-epoch' } });
        const ctx = s.subscribedCtx;
        assert.equal(ctx.wasRecovering, true);
        assert.equal(ctx.recovered, false);
        assert.equal(ctx.hasRecoveredPublications, false);
        assert.equal(ctx.streamPosition.offset, 2);
        assert.notEqual(ctx.streamPosition.epoch, 'bogus-epoch');
        await sleep(200);
        assert.equal(s.rec.count('publication'), 0);
    });

    it('history_size overflow while away: recovered false, no partial replay', async () => {
        const ch = 'small:rec-overflow'; // history_size 3
        const c = await connectedClient(rotor, 'rec4', { opts: RECONNECT });
        const s = await subscribed(c, ch);
        await publish(ch, 1);
        await s.rec.wait('publication');
        await dropUser(c, 'rec4');
        for (let n = 2; n <= 6; n++) await publish(ch, n);
        const again = await s.rec.wait('subscribed', () => true, 5000, 2);
        assert.equal(again.wasRecovering, true);
        assert.equal(again.recovered, false);
        assert.equal(again.streamPosition.offset, 6);
        await sleep(200);
        assert.equal(s.rec.count('publication'), 1, 'nothing replayed from a trimmed stream');
        await publish(ch, 7);
        assert.equal((await s.rec.wait('publication', (p) => p.data.n === 7)).offset, 7);
    });

    it('subscribe with a since position replays what follows it', async () => {
        const ch = 'hist:rec-since';
        let epoch;
        for (let n = 1; n <= 4; n++) epoch = (await publish(ch, n)).epoch;
        const c = await connectedClient(rotor, 'rec5');
        const s = await subscribed(c, ch, { since: { offset: 2, epoch } });
        assert.equal(s.subscribedCtx.recovered, true);
        assert.equal(s.subscribedCtx.wasRecovering, true);
        await s.rec.wait('publication', () => true, 4000, 2);
        await publish(ch, 5);
        await s.rec.wait('publication', (p) => p.data.n === 5);
        await sleep(100);
        assert.deepEqual(s.rec.all('publication').map((p) => p.offset), [3, 4, 5]);
    });

    it('recovered subscribe reply carries the client offset and the gap (raw, §8.3)', async () => {
        const ch = 'hist:rec-raw';
        let epoch;
        for (let n = 1; n <= 3; n++) epoch = (await publish(ch, n)).epoch;
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'raw' }));
        const r = await raw.command({ subscribe: { channel: ch, recover: true, offset: 1, epoch, flag: 1 } });
        const res = r.subscribe;
        assert.ok(res, JSON.stringify(r));
        assert.equal(res.recoverable, true);
        assert.equal(res.positioned, true);
        assert.equal(res.was_recovering, true);
        assert.equal(res.recovered, true);
        assert.equal(res.epoch, epoch);
        assert.equal(res.offset, 1);
        assert.deepEqual(res.publications.map((p) => [p.offset, p.data.n]), [[2, 2], [3, 3]]);
    });

    it('reject-unrecovered flag: error 112 instead of recovered:false (raw)', async () => {
        const ch = 'hist:rec-flag';
        await publish(ch, 1);
        const raw = await RawClient.open(rotor);
        await raw.connect(rotor.makeToken({ sub: 'raw' }));
        const r = await raw.command({ subscribe: { channel: ch, recover: true, offset: 1, epoch: 'nope', flag: 3 } });
        assert.equal(r.error?.code, 112, JSON.stringify(r));
    });

    it('server-side subscription recovers through connect subs', async () => {
        const ch = 'hist:rec-server';
        const c = sdkClient(rotor, { token: rotor.makeToken({ sub: 'rec6', channels: [ch] }), ...RECONNECT });
        c.connect();
        const first = await c.rec.wait('subscribed', (x) => x.channel === ch);
        assert.equal(first.recoverable, true);
        await publish(ch, 1);
        await publish(ch, 2);
        await c.rec.wait('publication', (p) => p.channel === ch, 4000, 2);
        await dropUser(c, 'rec6');
        await publish(ch, 3);
        await publish(ch, 4);
        const again = await c.rec.wait('subscribed', (x) => x.channel === ch, 5000, 2);
        assert.equal(again.wasRecovering, true);
        assert.equal(again.recovered, true);
        await c.rec.wait('publication', (p) => p.channel === ch, 4000, 4);
        await sleep(200);
        assert.deepEqual(c.rec.all('publication', (p) => p.channel === ch).map((p) => p.offset), [1, 2, 3, 4]);
    });
});
