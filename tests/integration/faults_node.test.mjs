// Issue 7, "no acknowledged publication is lost", node side: the same paced burst as
// faults_redis (2,000 publications over 10 s, 8 in flight, 4 recoverable channels) while
// node 0 and later node 1 are SIGKILLed and restarted on their ports. Their subscribers
// reconnect by themselves and recover; requests to a dead node are refused, requests in
// flight when it died have an unknown outcome (reported: landed or not). Every acknowledged
// publication must be in history and delivered exactly once, in order, to every
// subscription (or the subscriber told it missed it).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ACK_NS, describeRun, publishBurst, schedule, settle, subscribeEverywhere, tally, verifyAcked } from './lib/faults.mjs';
import { useCluster } from './lib/redis.mjs';
import { NAMESPACES } from './lib/rotor.mjs';

const CONFIG = { config: { channel: { namespaces: [...NAMESPACES, ACK_NS] } } };
const CHANNELS = ['ack:n0', 'ack:n1', 'ack:n2', 'ack:n3'];
const TOTAL = 2000;
const DURATION_MS = 10000;

describe('acked publications across node SIGKILLs and restarts', { timeout: 60000 }, () => {
    const h = useCluster(2, CONFIG);

    it('every acked publication is in history and reached every subscriber once, in order', async (t) => {
        const cluster = h.c;
        const { clients, subs } = await subscribeEverywhere(cluster, CHANNELS, 2);
        const epochsBefore = new Set(subs.map((s) => s.subscribedCtx.streamPosition.epoch));
        const steps = [
            { at: 2500, name: 'node 0 SIGKILL', run: () => cluster.kill(0) },
            { at: 3500, name: 'node 0 restart (until /ready 200)', run: () => cluster.restart(0) },
            { at: 6000, name: 'node 1 SIGKILL', run: () => cluster.kill(1) },
            { at: 7000, name: 'node 1 restart (until /ready 200)', run: () => cluster.restart(1) },
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

        assert.ok(burstTally.ok > TOTAL / 2, `most publishes succeed: ${JSON.stringify(burstTally)}`);
        assert.ok(burstTally.refused > 0, `publishes to the dead node were refused: ${JSON.stringify(burstTally)}`);
        // Redis never went away: the streams keep their epochs, everything acked is there.
        for (const hs of v.history) {
            assert.ok(epochsBefore.has(hs.epoch), `${hs.channel}: epoch kept`);
            assert.equal(hs.ackedOtherEpoch, 0);
        }
        const acked = records.filter((r) => r.outcome === 'ok').length;
        assert.equal(v.history.reduce((a, hs) => a + hs.ackedInEpoch, 0), acked, 'all acked publications in history');
        for (const s of v.subs) {
            assert.equal(s.declaredLost, 0, `${s.label}: nothing declared missed (history kept all)`);
        }
        // The clients of each killed node reconnected (and recovered: no loss notice above).
        for (const c of v.clients.filter((x) => x.label.startsWith('node'))) {
            const reconnects = Object.entries(c.connecting).filter(([code]) => code !== '0').reduce((a, [, n]) => a + n, 0);
            assert.ok(reconnects >= 1, `${c.label} reconnected after its node died: ${JSON.stringify(c.connecting)}`);
        }
    });
});
