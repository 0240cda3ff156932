// The fault tests are only as good as their checker: these feed lib/faults.mjs synthetic
// subscriber timelines and histories with a lost, duplicated, reordered or misplaced
// publication and require each to be reported, and honest loss notices to be accepted.
// No server needed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { checkHistory, replaySubscription } from './lib/faults.mjs';

const CH = 'ack:x';
const ok = (n, offset, epoch = 'E1') => ({ n, channel: CH, outcome: 'ok', offset, epoch });

/** A fake subscription: events in order, like Recorder.events. */
function sub(...events) {
    const evs = events.map(([name, ctx]) => ({ name, ctx }));
    return {
        channel: CH,
        rec: {
            events: evs,
            count: (name, pred = () => true) => evs.filter((e) => e.name === name && pred(e.ctx)).length,
        },
    };
}
const subscribedAt = (offset, epoch = 'E1', recovered) => ['subscribed', { streamPosition: { offset, epoch }, recovered }];
const pub = (n, offset) => ['publication', { offset, data: { n } }];

describe('fault checker', () => {
    const records = [ok(0, 1), ok(1, 2), ok(2, 3)];

    it('accepts a complete in-order stream, also across a recovered resubscribe', () => {
        const r = replaySubscription(sub(subscribedAt(0), pub(0, 1), subscribedAt(1, 'E1', true), pub(1, 2), pub(2, 3)), records);
        assert.deepEqual(r.problems, []);
        assert.equal(r.received, 3);
        assert.equal(r.recoveredTrue, 1);
    });

    it('reports a lost acknowledged publication (gap without notice)', () => {
        const r = replaySubscription(sub(subscribedAt(0), pub(0, 1), pub(2, 3)), records);
        assert.ok(r.problems.some((p) => /delivered offset 3 after 1/.test(p)), r.problems.join('\n'));
        assert.ok(r.problems.some((p) => /acked n=1 .* never delivered/.test(p)), r.problems.join('\n'));
    });

    it('reports an acknowledged publication missing at the end', () => {
        const r = replaySubscription(sub(subscribedAt(0), pub(0, 1), pub(1, 2)), records);
        assert.equal(r.missing.length, 1);
        assert.equal(r.missing[0].n, 2);
    });

    it('reports duplicates and reordering', () => {
        const dup = replaySubscription(sub(subscribedAt(0), pub(0, 1), pub(0, 1), pub(1, 2), pub(2, 3)), records);
        assert.ok(dup.problems.some((p) => /delivered twice/.test(p)), dup.problems.join('\n'));
        const swapped = replaySubscription(sub(subscribedAt(0), pub(1, 2), pub(0, 1), pub(2, 3)), records);
        assert.ok(swapped.problems.some((p) => /delivered offset 2 after 0/.test(p)), swapped.problems.join('\n'));
    });

    it('reports a publication delivered at another offset than acknowledged', () => {
        const r = replaySubscription(sub(subscribedAt(0), pub(0, 1), pub(2, 2), pub(1, 3)), records);
        assert.ok(r.problems.some((p) => /n=2 acked at E1\/3, delivered at E1\/2/.test(p)), r.problems.join('\n'));
    });

    it('a recovered:true reply at a different position is a problem', () => {
        const r = replaySubscription(sub(subscribedAt(0), pub(0, 1), subscribedAt(2, 'E1', true), pub(2, 3)), records);
        assert.ok(r.problems.some((p) => /recovered:true from E1\/1/.test(p)), r.problems.join('\n'));
    });

    it('accepts a gap the subscriber was told about (recovered:false), same or new epoch', () => {
        const same = replaySubscription(sub(subscribedAt(0), pub(0, 1), subscribedAt(2, 'E1', false), pub(2, 3)), records);
        assert.deepEqual(same.problems, []);
        assert.equal(same.declaredLost, 1);
        const recs = [ok(0, 1), ok(1, 2), ok(2, 1, 'E2'), ok(3, 2, 'E2')];
        const moved = replaySubscription(sub(subscribedAt(0), pub(0, 1), subscribedAt(1, 'E2', false), pub(3, 2)), recs);
        assert.deepEqual(moved.problems, []);
        assert.equal(moved.declaredLost, 2); // n=1 of the old epoch, n=2 of the new one
        // A notice does not cover what came after its reply position.
        const late = replaySubscription(sub(subscribedAt(0), pub(0, 1), subscribedAt(1, 'E2', false)), recs);
        assert.equal(late.missing.map((r) => r.n).join(), '3');
    });

    it('history: a missing, misplaced or foreign entry and a landed refused publish are reported', () => {
        const hist = (pubs, epoch = 'E1') => ({ epoch, offset: pubs.at(-1)?.[1] ?? 0, publications: pubs.map(([n, offset]) => ({ offset, data: { n } })) });
        assert.deepEqual(checkHistory(hist([[0, 1], [1, 2], [2, 3]]), records, CH).problems, []);
        assert.ok(checkHistory(hist([[0, 1], [2, 3]]), records, CH).problems.length >= 2);
        assert.ok(checkHistory(hist([[0, 1], [2, 2], [1, 3]]), records, CH).problems.some((p) => /acked at E1\/3/.test(p)));
        assert.ok(checkHistory(hist([[0, 1], [1, 2], [2, 3], [9, 4]]), records, CH).problems.some((p) => /no publish sent/.test(p)));
        const withRefused = [...records, { n: 3, channel: CH, outcome: 'refused' }];
        assert.ok(checkHistory(hist([[0, 1], [1, 2], [2, 3], [3, 4]]), withRefused, CH).problems.some((p) => /refused/.test(p)));
        const withError = [...records, { n: 3, channel: CH, outcome: 'error' }];
        const landed = checkHistory(hist([[0, 1], [1, 2], [2, 3], [3, 4]]), withError, CH);
        assert.deepEqual(landed.problems, []);
        assert.equal(landed.landed.error, 1);
    });
});
