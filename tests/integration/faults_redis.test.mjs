// Issue 7, "no acknowledged publication is lost", Redis side: a paced publish burst through
// the server API (2,000 publications over 10 s, 8 in flight, 4 recoverable channels, both
// nodes) while Redis is SIGKILLed and restarted. Every publish that returned a result
// (offset, epoch) is checked against the history and against what 16 centrifuge-js
// subscriptions (2 clients on each node, 4 channels each) received: each acknowledged
// publication was delivered exactly once, in offset order, or the subscriber was told it
// missed it (`subscribed` with recovered:false after an unsubscribe 2500, or a 3010
// reconnect). Publishes that failed are counted, and whether they landed is reported.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ACK_NS, describeRun, publishBurst, schedule, settle, subscribeEverywhere, tally, verifyAcked } from './lib/faults.mjs';
import { useCluster } from './lib/redis.mjs';
import { NAMESPACES } from './lib/rotor.mjs';

const CONFIG = { config: { channel: { namespaces: [...NAMESPACES, ACK_NS] } } };
const CHANNELS = ['ack:r0', 'ack:r1', 'ack:r2', 'ack:r3'];
const TOTAL = 2000;
const DURATION_MS = 10000;

async function burstWithRedisFault(h, t) {
    const cluster = h.c;
    const redis = cluster.redis[0];
    const { clients, subs } = await subscribeEverywhere(cluster, CHANNELS, 2);
    const epochsBefore = new Set(subs.map((s) => s.subscribedCtx.streamPosition.epoch));
    const steps = [
        { at: 3000, name: 'redis SIGKILL', run: () => redis.kill() },
        { at: 5000, name: 'redis restart', run: () => redis.restart() },
    ];
    const [records] = await Promise.all([
        publishBurst({ nodes: () => cluster.nodes, channels: CHANNELS, total: TOTAL, durationMs: DURATION_MS }),
        schedule(steps),
    ]);
    const burstTally = tally(records);
    await settle(cluster, subs, CHANNELS, records);
    const v = await verifyAcked(cluster.nodes[0], CHANNELS, records, subs, clients);
    for (const line of describeRun(records, v, steps)) t.diagnostic(line);
    assert.deepEqual(v.problems, [], v.problems.slice(0, 20).join('\n'));
    // The burst really ran on both sides of the outage, and the outage really refused some.
    assert.ok(burstTally.ok > TOTAL / 2, `most publishes succeed: ${JSON.stringify(burstTally)}`);
    assert.ok(burstTally.error > 0, `publishes failed while Redis was down: ${JSON.stringify(burstTally)}`);
    assert.equal(burstTally.refused, 0, 'nodes never stopped listening');
    for (const r of records.filter((x) => x.outcome === 'error')) {
        assert.equal(r.error?.code, 100, `a failed publish answers 100: ${JSON.stringify(r)}`);
    }
    return { records, v, epochsBefore };
}

describe('acked publications across a Redis SIGKILL with AOF (data kept)', { timeout: 60000 }, () => {
    const h = useCluster(2, { ...CONFIG, persist: true });

    it('every acked publication is in history and reached every subscriber once, in order', async (t) => {
        const { records, v, epochsBefore } = await burstWithRedisFault(h, t);
        // appendfsync always: Redis wrote each script's effects before replying, so
        // nothing acknowledged can be gone and the epochs stay.
        for (const hs of v.history) {
            assert.ok(epochsBefore.has(hs.epoch), `${hs.channel}: epoch kept (${hs.epoch})`);
            assert.equal(hs.ackedOtherEpoch, 0, `${hs.channel}: no acked publication in another epoch`);
        }
        const acked = records.filter((r) => r.outcome === 'ok').length;
        assert.equal(v.history.reduce((a, hs) => a + hs.ackedInEpoch, 0), acked, 'all acked publications in history');
        // Redis kept everything, so no subscriber may have been told it missed anything.
        for (const s of v.subs) {
            assert.equal(s.declaredLost, 0, `${s.label}: nothing declared missed with the data kept`);
            assert.equal(s.missing.length, 0);
        }
    });
});

describe('acked publications across a Redis SIGKILL without persistence (epoch changes)', { timeout: 60000 }, () => {
    const h = useCluster(2, { ...CONFIG, persist: false });

    it('acked publications of the new epoch are in history; subscribers got all or were told', async (t) => {
        const { v, epochsBefore } = await burstWithRedisFault(h, t);
        // Redis lost the streams: a new epoch per channel, and the acknowledged publications
        // of the old one are gone from history with it (the loss a subscriber is told about).
        for (const hs of v.history) {
            assert.ok(!epochsBefore.has(hs.epoch), `${hs.channel}: a new epoch after the data loss`);
            assert.ok(hs.ackedOtherEpoch > 0, `${hs.channel}: publications were acked in the old epoch`);
            assert.ok(hs.ackedInEpoch > 0, `${hs.channel}: publications were acked in the new epoch`);
        }
        // Every subscription crossed the epoch change: it must have been told once at least.
        for (const s of v.subs) assert.ok(s.lossNotices >= 1, `${s.label}: told about the new epoch`);
    });
});
