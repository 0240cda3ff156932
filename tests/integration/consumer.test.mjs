// "Publish via Redis": the Redis Streams consumer (SERVER.md §4.2). Server API commands
// added to a stream with redis-cli XADD reach centrifuge-js subscribers; malformed entries
// are acknowledged and logged; the group survives node restarts (entries added while no
// node runs are consumed by the next one); entries left pending by a dead consumer are
// claimed with XAUTOCLAIM after visibility_timeout, including those of a real node killed
// with SIGKILL while it held one un-acked.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';

import { connectedClient, subscribed } from './lib/clients.mjs';
import { killRotor, redisEngine, startRedis } from './lib/redis.mjs';
import { merge, sleep, startRotor, waitFor } from './lib/rotor.mjs';

const CMD_STREAM = 'api-commands';
const PUB_STREAM = 'api-publications';
const CLAIM_STREAM = 'api-claims';
const GROUP = 'rotor-group';

function consumersConfig(redis, { claim = false } = {}) {
    const address = redis.address();
    const list = [
        {
            name: 'commands',
            enabled: true,
            type: 'redis_stream',
            redis_stream: { address, streams: [CMD_STREAM], consumer_group: GROUP, num_workers: 2 },
        },
        {
            name: 'publications',
            enabled: true,
            type: 'redis_stream',
            redis_stream: {
                address, streams: [PUB_STREAM], consumer_group: GROUP,
                publication_data_mode: { enabled: true },
            },
        },
    ];
    if (claim) {
        list.push({
            name: 'claims',
            enabled: true,
            type: 'redis_stream',
            redis_stream: { address, streams: [CLAIM_STREAM], consumer_group: GROUP, visibility_timeout: '1s' },
        });
    }
    return merge(redisEngine(redis), { consumers: list });
}

async function groups(redis, stream) {
    try {
        return await redis.lines('XINFO', 'GROUPS', stream);
    } catch {
        return []; // no such key yet
    }
}

/** Pending entries of the group on stream (XPENDING summary, first line). */
async function pending(redis, stream) {
    const lines = await redis.lines('XPENDING', stream, GROUP);
    return Number(lines[0]);
}

async function waitNoPending(redis, stream, timeout = 5000) {
    let last;
    await waitFor(async () => {
        last = await pending(redis, stream);
        return last === 0;
    }, timeout, `0 pending entries on ${stream} (last ${last})`);
}

async function metric(rotor, name, consumer) {
    const text = (await rotor.request('/metrics')).text;
    const re = new RegExp(`^${name}\\{consumer_name="${consumer}"\\} (\\d+)$`, 'm');
    const m = re.exec(text);
    return m ? Number(m[1]) : null;
}

async function historyData(rotor, channel) {
    const r = await rotor.apiResult('history', { channel, limit: 10 });
    return r.publications.map((p) => p.data);
}

describe('Redis Streams consumer', { timeout: 90000 }, () => {
    let redis;
    let A;
    const extra = []; // other nodes, stopped at the end

    before(async () => {
        redis = await startRedis();
        A = await startRotor({ config: consumersConfig(redis) });
        // The group is created at $ when the node starts: wait for it before producing.
        for (const s of [CMD_STREAM, PUB_STREAM]) {
            await waitFor(async () => (await groups(redis, s)).includes(GROUP), 5000, `group on ${s}`);
        }
    });

    afterEach(async (t) => {
        if (!t.passed) {
            for (const r of [A, ...extra]) if (r) r.dumpLogs(`after failed "${t.name}"`);
        }
        for (const r of [A, ...extra]) if (r) await r.closeClients();
    });

    after(async () => {
        for (const r of [A, ...extra]) if (r && !r.exited) await r.stop();
        if (redis) await redis.stop();
    });

    it('XADD method + payload reaches a subscriber with the exact data and is acknowledged', async () => {
        const c = await connectedClient(A, 'cons-1');
        const s = await subscribed(c, 'pub:cons1');
        const data = { text: 'héllo ✓ "quoted"', n: 1.10, big: 12345678901234567890, nested: { a: [1, null] } };
        const raw = '{"text":"héllo ✓ \\"quoted\\"","n":1.10,"big":12345678901234567890,"nested":{"a":[1,null]}}';
        await redis.cli('XADD', CMD_STREAM, '*', 'method', 'publish', 'payload',
            `{"channel":"pub:cons1","data":${raw}}`);
        const p = await s.rec.wait('publication');
        assert.deepEqual(p.data, data);
        await waitNoPending(redis, CMD_STREAM);
        await sleep(200);
        assert.equal(s.rec.count('publication'), 1);
    });

    it('wrapper shape {"method","payload"} with an object payload', async () => {
        const c = await connectedClient(A, 'cons-2');
        const s = await subscribed(c, 'pub:cons2');
        await redis.cli('XADD', CMD_STREAM, '*', 'payload',
            JSON.stringify({ method: 'publish', payload: { channel: 'pub:cons2', data: { w: 1 }, tags: { t: 'x' } } }));
        const p = await s.rec.wait('publication');
        assert.deepEqual(p.data, { w: 1 });
        assert.deepEqual(p.tags, { t: 'x' });
        await waitNoPending(redis, CMD_STREAM);
    });

    it('wrapper shape with the payload as a JSON string (broadcast to two channels)', async () => {
        const c = await connectedClient(A, 'cons-3');
        const s1 = await subscribed(c, 'pub:cons3a');
        const s2 = await subscribed(c, 'pub:cons3b');
        const inner = JSON.stringify({ channels: ['pub:cons3a', 'pub:cons3b'], data: { s: 'str' } });
        await redis.cli('XADD', CMD_STREAM, '*', 'payload', JSON.stringify({ method: 'broadcast', payload: inner }));
        assert.deepEqual((await s1.rec.wait('publication')).data, { s: 'str' });
        assert.deepEqual((await s2.rec.wait('publication')).data, { s: 'str' });
        await waitNoPending(redis, CMD_STREAM);
    });

    it('server-side subscribe and disconnect commands from the stream', async () => {
        const c = await connectedClient(A, 'cons-ctl');
        await redis.cli('XADD', CMD_STREAM, '*', 'method', 'subscribe', 'payload',
            JSON.stringify({ user: 'cons-ctl', channel: 'pub:cons-ctl' }));
        const ev = await c.rec.wait('subscribed', (ctx) => ctx.channel === 'pub:cons-ctl');
        assert.equal(ev.channel, 'pub:cons-ctl');
        await redis.cli('XADD', CMD_STREAM, '*', 'method', 'disconnect', 'payload',
            JSON.stringify({ user: 'cons-ctl', disconnect: { code: 4500, reason: 'bye' } }));
        const d = await c.rec.wait('disconnected');
        assert.equal(d.code, 4500);
        await waitNoPending(redis, CMD_STREAM);
    });

    it('publication data mode: two channels and a tag become a broadcast', async () => {
        const c = await connectedClient(A, 'cons-4');
        const s1 = await subscribed(c, 'pub:cons4a');
        const s2 = await subscribed(c, 'chat:cons4b');
        await redis.cli('XADD', PUB_STREAM, '*', 'payload', '{"text":"hi"}',
            'centrifugo-channels', 'pub:cons4a,chat:cons4b', 'centrifugo-tag-kind', 'msg',
            'centrifugo-idempotency-key', 'k-1');
        for (const s of [s1, s2]) {
            const p = await s.rec.wait('publication');
            assert.deepEqual(p.data, { text: 'hi' });
            assert.deepEqual(p.tags, { kind: 'msg' });
        }
        await waitNoPending(redis, PUB_STREAM);
        // One channel is a publish; the history-enabled channel got offset 1 then 2.
        await redis.cli('XADD', PUB_STREAM, '*', 'payload', '{"n":2}', 'centrifugo-channels', 'chat:cons4b');
        const p2 = await s2.rec.wait('publication', () => true, 5000, 2);
        assert.deepEqual(p2.data, { n: 2 });
        assert.equal(p2.offset, 2);
        await waitNoPending(redis, PUB_STREAM);
    });

    it('malformed entries are acknowledged and logged with the consumer name', async () => {
        const c = await connectedClient(A, 'cons-5');
        const s = await subscribed(c, 'pub:cons5');
        const processedBefore = await metric(A, 'centrifugo_consumers_messages_processed_total', 'commands');
        const errorsBefore = await metric(A, 'centrifugo_consumers_errors_total', 'commands');
        await redis.cli('XADD', CMD_STREAM, '*', 'method', 'publish', 'other', '{}'); // no payload
        await redis.cli('XADD', CMD_STREAM, '*', 'payload', '{"method":"publish",'); // invalid JSON
        await redis.cli('XADD', CMD_STREAM, '*', 'method', 'presence', 'payload', '{"channel":"chat:x"}');
        await redis.cli('XADD', CMD_STREAM, '*', 'payload', '{"method":"batch","payload":{"commands":[]}}');
        await redis.cli('XADD', CMD_STREAM, '*', 'method', 'publish', 'payload', '{"channel":"nope:x","data":{}}');
        // A valid entry after them is still applied.
        await redis.cli('XADD', CMD_STREAM, '*', 'method', 'publish', 'payload', '{"channel":"pub:cons5","data":{"ok":true}}');
        assert.deepEqual((await s.rec.wait('publication')).data, { ok: true });
        await waitNoPending(redis, CMD_STREAM);
        const logs = A.logs();
        assert.match(logs, /consumer entry skipped consumer=commands stream=api-commands id=\S+ reason=\\?"no payload field/);
        assert.match(logs, /consumer entry skipped consumer=commands stream=api-commands id=\S+ reason=\\?"payload is not a JSON object/);
        assert.match(logs, /consumer entry skipped consumer=commands stream=api-commands id=\S+ reason=\\?"method not supported by consumers/);
        // No payload text in the logs.
        assert.doesNotMatch(logs, /chat:x/);
        await waitFor(async () => (await metric(A, 'centrifugo_consumers_messages_processed_total', 'commands')) >=
            processedBefore + 6, 3000, 'processed counter');
        assert.equal(await metric(A, 'centrifugo_consumers_errors_total', 'commands'), errorsBefore + 5);
    });

    it('/metrics exposes both counters per consumer', async () => {
        const processed = await metric(A, 'centrifugo_consumers_messages_processed_total', 'commands');
        assert.ok(processed >= 5, `processed ${processed}`);
        assert.ok((await metric(A, 'centrifugo_consumers_messages_processed_total', 'publications')) >= 2);
        assert.notEqual(await metric(A, 'centrifugo_consumers_errors_total', 'publications'), null);
    });

    it('entries added while no node runs are consumed by the next node of the group', async () => {
        await A.stop();
        await redis.cli('XADD', CMD_STREAM, '*', 'method', 'publish', 'payload',
            '{"channel":"chat:offline","data":{"while":"down"}}');
        assert.equal(await pending(redis, CMD_STREAM), 0); // not read by anyone yet
        A = await startRotor({ config: consumersConfig(redis, { claim: true }) });
        await waitFor(async () => (await historyData(A, 'chat:offline')).length === 1, 8000, 'history');
        assert.deepEqual(await historyData(A, 'chat:offline'), [{ while: 'down' }]);
        await waitNoPending(redis, CMD_STREAM);
    });

    it('an entry left pending by a dead consumer is claimed after visibility_timeout', async () => {
        await waitFor(async () => (await groups(redis, CLAIM_STREAM)).includes(GROUP), 5000, 'claim group');
        // A second node without the claim consumer, so the fake consumer's entry is not read
        // by A before the fake takes it: stop A, read as "fake", start a node again.
        await A.stop();
        await redis.cli('XADD', CLAIM_STREAM, '*', 'method', 'publish', 'payload',
            '{"channel":"chat:claimed","data":{"claimed":1}}');
        const read = await redis.lines('XREADGROUP', 'GROUP', GROUP, 'fake-consumer', 'COUNT', '1',
            'STREAMS', CLAIM_STREAM, '>');
        assert.ok(read.some((l) => l.includes('chat:claimed')), read.join('|'));
        assert.equal(await pending(redis, CLAIM_STREAM), 1);
        const t0 = Date.now();
        A = await startRotor({ config: consumersConfig(redis, { claim: true }) });
        await waitFor(async () => (await historyData(A, 'chat:claimed')).length === 1, 9000, 'claimed entry applied');
        const took = Date.now() - t0;
        assert.ok(took < 8000, `claimed after ${took} ms`);
        assert.deepEqual(await historyData(A, 'chat:claimed'), [{ claimed: 1 }]);
        await waitNoPending(redis, CLAIM_STREAM);
        // The claim moved it to this node's consumer (the node uid) before the ack.
        const consumers = await redis.lines('XINFO', 'CONSUMERS', CLAIM_STREAM, GROUP);
        assert.ok(consumers.includes('fake-consumer'));
        assert.ok(consumers.length > 8, consumers.join('|')); // fake + the node
    });

    it('a deleted group is created again (NOGROUP) and consuming goes on', async () => {
        await redis.cli('XGROUP', 'DESTROY', CMD_STREAM, GROUP);
        await waitFor(async () => (await groups(redis, CMD_STREAM)).includes(GROUP), 8000, 'group re-created');
        const c = await connectedClient(A, 'cons-6');
        const s = await subscribed(c, 'pub:cons6');
        await redis.cli('XADD', CMD_STREAM, '*', 'method', 'publish', 'payload', '{"channel":"pub:cons6","data":{"again":1}}');
        assert.deepEqual((await s.rec.wait('publication')).data, { again: 1 });
        await waitNoPending(redis, CMD_STREAM);
        assert.match(A.logs(), /consumer group missing, creating it again consumer=commands/);
    });
});

// Code 100 is forced by taking the engine's Redis away while the consumer's Redis (another
// server) stays up: the publish fails inside the node, the entry stays pending, and the
// node's own reclaim loop applies it once the engine is back (SERVER.md §4.1 error policy).
describe('Redis Streams consumer: retryable failures', { timeout: 60000 }, () => {
    let engineRedis;
    let queueRedis;
    let N;

    before(async () => {
        engineRedis = await startRedis();
        queueRedis = await startRedis();
        N = await startRotor({
            config: merge(redisEngine(engineRedis), {
                consumers: [{
                    name: 'retry',
                    enabled: true,
                    type: 'redis_stream',
                    redis_stream: {
                        address: queueRedis.address(), streams: ['retry-stream'], consumer_group: GROUP,
                        visibility_timeout: '1s',
                    },
                }],
            }),
        });
        await waitFor(async () => (await groups(queueRedis, 'retry-stream')).includes(GROUP), 5000, 'group');
    });

    afterEach((t) => {
        if (!t.passed && N) N.dumpLogs(`after failed "${t.name}"`);
    });

    after(async () => {
        if (N && !N.exited) await N.stop();
        if (engineRedis) await engineRedis.stop();
        if (queueRedis) await queueRedis.stop();
    });

    it('an internal error leaves the entry pending; it is applied after the engine recovers', async () => {
        await engineRedis.kill();
        const errorsBefore = await metric(N, 'centrifugo_consumers_errors_total', 'retry');
        await queueRedis.cli('XADD', 'retry-stream', '*', 'method', 'publish', 'payload',
            '{"channel":"chat:retry","data":{"r":1}}');
        await waitFor(() => /retryable error, entry left pending consumer=retry/.test(N.logs()), 5000,
            'retryable failure logged');
        assert.equal(await pending(queueRedis, 'retry-stream'), 1);
        assert.ok((await metric(N, 'centrifugo_consumers_errors_total', 'retry')) > errorsBefore);
        await engineRedis.restart();
        // Reclaimed by the node's own XAUTOCLAIM (every 5 s, idle > 1 s) and published.
        await waitFor(async () => {
            try {
                return (await historyData(N, 'chat:retry')).length === 1;
            } catch {
                return false; // engine still reconnecting
            }
        }, 15000, 'entry applied after recovery');
        assert.deepEqual(await historyData(N, 'chat:retry'), [{ r: 1 }]);
        await waitNoPending(queueRedis, 'retry-stream');
    });
});

/** Idle seconds of the client blocked in XREADGROUP on redis (CLIENT LIST), or null. */
async function blockedReadIdle(redis) {
    for (const l of await redis.lines('CLIENT', 'LIST')) {
        const f = Object.fromEntries(l.split(' ').map((kv) => kv.split('=')));
        if (f.cmd === 'xreadgroup' && f.flags.includes('b')) return Number(f.idle);
    }
    return null;
}

// A real node dies holding an entry: node A is frozen with SIGSTOP while its XREADGROUP
// BLOCK (5 s) waits in Redis, so the entry added next is delivered to A's consumer (pending
// under A's uid) but never applied nor acknowledged; then A is SIGKILLed. Node B of the same
// group, started afterwards, claims it with XAUTOCLAIM once it has been idle for
// visibility_timeout and applies it: B's subscriber gets the publication exactly once.
describe('Redis Streams consumer: a node killed while holding an entry', { timeout: 60000 }, () => {
    const STREAM = 'api-killed';
    let redis;
    let A;
    let B;
    const config = () => merge(redisEngine(redis), {
        consumers: [{
            name: 'killed',
            enabled: true,
            type: 'redis_stream',
            redis_stream: { address: redis.address(), streams: [STREAM], consumer_group: GROUP, visibility_timeout: '1s' },
        }],
    });

    before(async () => {
        redis = await startRedis();
        A = await startRotor({ config: config() });
        await waitFor(async () => (await groups(redis, STREAM)).includes(GROUP), 5000, 'group');
    });

    afterEach((t) => {
        if (!t.passed) for (const r of [A, B]) if (r) r.dumpLogs(`after failed "${t.name}"`);
    });

    after(async () => {
        if (A) await A.stop({ check: false });
        if (B && !B.exited) await B.stop();
        if (redis) await redis.stop();
    });

    it('another node claims it after visibility_timeout and applies it once', async () => {
        const uidA = /uid=(\S+)/.exec(A.logs())[1];
        // A's read must be waiting in Redis, and fresh enough to still wait when the entry
        // comes (it is re-issued every 5 s).
        await waitFor(async () => {
            const idle = await blockedReadIdle(redis);
            return idle !== null && idle <= 1;
        }, 8000, "A's XREADGROUP blocked in Redis");
        A.signal('SIGSTOP');
        await waitFor(() => readFileSync(`/proc/${A.proc.pid}/stat`, 'utf8').split(') ')[1][0] === 'T', 2000,
            'A stopped');
        const cmd = JSON.stringify({ channel: 'chat:killed', data: { k: 1 }, idempotency_key: 'killed-1' });
        await redis.cli('XADD', STREAM, '*', 'method', 'publish', 'payload', cmd);
        // Delivered to the frozen A: pending under its consumer name, not applied.
        const pend = await redis.lines('XPENDING', STREAM, GROUP, '-', '+', '10');
        assert.equal(pend.length, 4, pend.join('|')); // one entry: id, consumer, idle, count
        assert.equal(pend[1], uidA);
        await killRotor(A);
        assert.equal(await pending(redis, STREAM), 1);

        B = await startRotor({ config: config() });
        const c = await connectedClient(B, 'killed-sub');
        const s = await subscribed(c, 'chat:killed');
        const p = await s.rec.wait('publication', () => true, 9000);
        assert.deepEqual(p.data, { k: 1 });
        await waitNoPending(redis, STREAM);
        assert.deepEqual(await historyData(B, 'chat:killed'), [{ k: 1 }]);
        assert.ok(/uid=(\S+)/.exec(B.logs())[1] !== uidA);

        // At-least-once plus the idempotency key: the same command delivered again (a
        // producer retry, or a claim racing a slow ack) has no second effect.
        const id2 = (await redis.cli('XADD', STREAM, '*', 'method', 'publish', 'payload', cmd)).trim();
        await waitFor(async () => {
            const g = await groups(redis, STREAM);
            return g[g.indexOf('last-delivered-id') + 1] === id2 && (await pending(redis, STREAM)) === 0;
        }, 5000, 'the second entry read and acknowledged');
        await sleep(300);
        assert.equal(s.rec.count('publication'), 1);
        assert.deepEqual(await historyData(B, 'chat:killed'), [{ k: 1 }]);
    });
});
