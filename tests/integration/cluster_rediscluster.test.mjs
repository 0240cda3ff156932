// Two rotor nodes on a 3-master Redis Cluster (SERVER.md §3.3, §3.14): every per-channel
// key and the channel's PUB/SUB name carry the {channel} hash tag, commands are routed by
// slot, and classic PUB/SUB crosses the cluster bus. Publish, history, recovery, presence
// and join/leave work across nodes. The cluster is started here: three redis-server
// processes with cluster mode on explicit bus ports, joined by `redis-cli --cluster create`.
// A second cluster checks that a plain address of one member is detected as a cluster
// (SERVER.md §3.2), and a third runs the nodes with engine.redis.sharded_pubsub.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, afterEach, before, describe, it } from 'node:test';

import { CentClient } from 'cent.js';

import { connectedClient, subscribed } from './lib/clients.mjs';
import { Cluster, PREFIX, REDIS_CLI, redisEngine, startRedis, waitReady, STARTUP_READY_MS } from './lib/redis.mjs';
import { NAMESPACES, freePort, sleep, startRotor, waitFor } from './lib/rotor.mjs';

const MASTERS = 3;
const REC = {
    name: 'rec', history_size: 100, history_ttl: '300s', force_recovery: true,
    allow_subscribe_for_client: true, allow_history_for_client: true,
};

const cent = (rotor) => new CentClient({ url: rotor.url('/api'), apiKey: rotor.apiKey });
const offsets = (s) => s.rec.all('publication').map((p) => p.offset);
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

function run(cmd, args) {
    return new Promise((resolve, reject) => {
        const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d) => {
            out += d;
        });
        p.stderr.on('data', (d) => {
            out += d;
        });
        p.on('error', reject);
        p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${out}`))));
    });
}

async function startRedisCluster() {
    const servers = [];
    try {
        for (let i = 0; i < MASTERS; i++) {
            // The bus port defaults to port + 10000, which may not exist above 55535.
            const bus = await freePort();
            servers.push(await startRedis({
                args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
                    '--cluster-port', String(bus), '--cluster-node-timeout', '2000'],
            }));
        }
        await run(REDIS_CLI, ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`),
            '--cluster-replicas', '0', '--cluster-yes']);
        await waitFor(async () => {
            for (const s of servers) {
                if (!(await s.cli('CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
            }
            return true;
        }, 15000, 'cluster_state:ok on every node');
        return servers;
    } catch (e) {
        for (const s of servers) await s.stop();
        throw e;
    }
}

/** How many masters answer `cmd key...` with `want` (the others answer MOVED). */
async function ownersAnswering(servers, want, ...cmd) {
    let n = 0;
    for (const s of servers) {
        try {
            if ((await s.cli(...cmd)) === want) n++;
        } catch (e) {
            assert.match(e.message, /MOVED/);
        }
    }
    return n;
}

/** Node i gets urls[i]; resolves once every node is ready. Stops everything on failure.
 * redisOpts: more engine.redis keys for every node. */
async function startNodes(servers, urls, redisOpts = {}) {
    const config = (u) => ({
        ...redisEngine(u, { presence_ttl: '5s', ...redisOpts }),
        channel: { namespaces: [...NAMESPACES, REC] },
    });
    let nodes = [];
    let c = null;
    try {
        nodes = await Promise.all(urls.map((u) => startRotor({ config: config(u) })));
        c = new Cluster(servers, nodes, { config: config(urls[0]), env: {}, args: [] });
        await Promise.all(nodes.map((r) => waitReady(r, 200, STARTUP_READY_MS)));
        return c;
    } catch (e) {
        if (c) {
            c.dumpLogs('(not ready)');
            await c.stop().catch(() => {});
        } else {
            for (const r of nodes) await r.stop({ check: false }).catch(() => {});
            for (const s of servers) await s.stop();
        }
        throw e;
    }
}

/** A subscriber on A gets publications 1-2 (published through B), leaves, misses 3-5
 * (through A), and recovers them on B. Returns B's subscription. */
async function recoversOnOtherNode(A, B, ch) {
    const c1 = await connectedClient(A, 'r1');
    const s1 = await subscribed(c1, ch);
    const { epoch } = s1.subscribedCtx.streamPosition;
    for (let n = 1; n <= 2; n++) await B.apiResult('publish', { channel: ch, data: { n } });
    await s1.rec.wait('publication', () => true, 4000, 2);
    assert.deepEqual(offsets(s1), [1, 2]);
    c1.disconnect();
    for (let n = 3; n <= 5; n++) assert.equal((await A.apiResult('publish', { channel: ch, data: { n } })).offset, n);
    const c2 = await connectedClient(B, 'r2');
    const s2 = await subscribed(c2, ch, { since: { offset: 2, epoch } });
    assert.equal(s2.subscribedCtx.recovered, true);
    await s2.rec.wait('publication', () => true, 4000, 3);
    assert.deepEqual(offsets(s2), range(3, 5));
    return s2;
}

/** Registers the suite's hooks: start() (a Cluster from startNodes) before, node checks
 * after each test, stop after. Returns the holder whose .c is the Cluster. */
function useNodes(start) {
    const h = { c: null };
    before(async () => {
        h.c = await start();
    });
    afterEach(async (t) => checkAfterEach(h, t));
    after(async () => {
        if (h.c) await h.c.stop();
    });
    return h;
}

async function checkAfterEach(h, t) {
    if (!h.c) return;
    if (!t.passed) h.c.dumpLogs(`after failed test "${t.name}"`);
    await h.c.closeClients();
    const dead = h.c.crashed();
    if (dead.length) {
        for (const r of dead) {
            r.stopping = true;
            r.killedOnPurpose = true;
        }
        throw new Error(`rotor node(s) died during "${t.name}"`);
    }
}

describe('two nodes on a Redis Cluster', { timeout: 60000 }, () => {
    const h = useNodes(async () => {
        const servers = await startRedisCluster();
        const [p1, p2, p3] = servers.map((s) => s.port);
        const url = `redis+cluster://127.0.0.1:${p1}?addr=127.0.0.1:${p2}&addr=127.0.0.1:${p3}`;
        // Node B lists another seed first so its PUB/SUB sits on another cluster node.
        const urlB = `redis+cluster://127.0.0.1:${p2}?addr=127.0.0.1:${p3}&addr=127.0.0.1:${p1}`;
        return startNodes(servers, [url, urlB]);
    });

    it('publish on A reaches clients on B; history through either node; tagged keys', async () => {
        const [A, B] = h.c.nodes;
        const channels = ['chat:one', 'chat:two', 'chat:three', 'chat:four'];
        const cb = await connectedClient(B, 'u-b');
        const subs = [];
        for (const ch of channels) subs.push(await subscribed(cb, ch));
        for (const [i, ch] of channels.entries()) {
            const r = await cent(A).publish({ channel: ch, data: { i } });
            assert.equal(r.offset, 1, JSON.stringify(r));
        }
        for (const [i, s] of subs.entries()) {
            const p = await s.rec.wait('publication');
            assert.deepEqual(p.data, { i });
            assert.equal(p.offset, 1);
        }
        for (const ch of channels) {
            // Stream and meta of one channel live on exactly one master, under {channel}.
            assert.equal(await ownersAnswering(h.c.redis, '1', 'EXISTS', `${PREFIX}.stream.{${ch}}`), 1, ch);
            assert.equal(await ownersAnswering(h.c.redis, '1', 'EXISTS', `${PREFIX}.stream.meta.{${ch}}`), 1, ch);
            const hist = await B.apiResult('history', { channel: ch, limit: -1 });
            assert.equal(hist.offset, 1);
            assert.equal(hist.publications.length, 1);
        }
        // The channel's PUB/SUB name is tagged (Centrifugo >= 6.6); B's subscriptions sit on
        // the node B's PUB/SUB connection picked.
        const numsub = await h.c.redis[1].lines('PUBSUB', 'NUMSUB', `${PREFIX}.client.{chat:one}`);
        assert.deepEqual(numsub, [`${PREFIX}.client.{chat:one}`, '1']);

        // Idempotent publish: the result key is tagged too, the duplicate is not delivered.
        const o1 = await cent(B).publish({ channel: 'chat:one', data: { i: 'idem' }, idempotency_key: 'k1' });
        const o2 = await cent(A).publish({ channel: 'chat:one', data: { i: 'idem2' }, idempotency_key: 'k1' });
        assert.deepEqual(o2, o1);
        assert.equal(await ownersAnswering(h.c.redis, '1', 'EXISTS', `${PREFIX}.result.{chat:one}.k1`), 1);
        await subs[0].rec.wait('publication', (p) => p.data.i === 'idem');
        await sleep(200);
        assert.equal(subs[0].rec.count('publication'), 2);
    });

    it('missed publications are recovered on the other node', async () => {
        const [A, B] = h.c.nodes;
        const ch = 'rec:cluster';
        const c1 = await connectedClient(A, 'r1');
        const s1 = await subscribed(c1, ch);
        const { epoch } = s1.subscribedCtx.streamPosition;
        assert.equal(s1.subscribedCtx.recoverable, true);
        for (let n = 1; n <= 2; n++) await A.apiResult('publish', { channel: ch, data: { n } });
        await s1.rec.wait('publication', () => true, 4000, 2);
        c1.disconnect();
        for (let n = 3; n <= 6; n++) assert.equal((await B.apiResult('publish', { channel: ch, data: { n } })).offset, n);

        const c2 = await connectedClient(B, 'r2');
        const s2 = await subscribed(c2, ch, { since: { offset: 2, epoch } });
        assert.equal(s2.subscribedCtx.wasRecovering, true);
        assert.equal(s2.subscribedCtx.recovered, true);
        assert.equal(s2.subscribedCtx.streamPosition.epoch, epoch);
        await s2.rec.wait('publication', () => true, 4000, 4);
        assert.deepEqual(offsets(s2), range(3, 6));
        // And live again, through A.
        await A.apiResult('publish', { channel: ch, data: { n: 7 } });
        assert.equal((await s2.rec.wait('publication', (p) => p.data.n === 7)).offset, 7);
    });

    it('presence and join/leave across nodes', async () => {
        const [A, B] = h.c.nodes;
        const ch = 'chat:presence';
        const ca = await connectedClient(A, 'p-a');
        const sa = await subscribed(ca, ch);
        const cb = await connectedClient(B, 'p-b');
        await subscribed(cb, ch);
        const join = await sa.rec.wait('join', (j) => j.info.user === 'p-b');
        assert.equal(join.info.client, cb.connectedCtx.client);

        for (const node of [A, B]) {
            const r = await node.apiResult('presence', { channel: ch });
            const users = Object.values(r.presence).map((i) => i.user).sort();
            assert.deepEqual(users, ['p-a', 'p-b']);
            assert.deepEqual(await node.apiResult('presence_stats', { channel: ch }),
                { num_clients: 2, num_users: 2 });
        }
        assert.equal(await ownersAnswering(h.c.redis, '2', 'HLEN', `${PREFIX}.presence.data.{${ch}}`), 1);

        cb.disconnect();
        await sa.rec.wait('leave', (l) => l.info.user === 'p-b');
        await waitFor(async () => {
            const r = await A.apiResult('presence', { channel: ch });
            return Object.keys(r.presence).length === 1;
        }, 5000, 'presence to drop p-b');
    });

    it('node registry and cross-node commands over the untagged control channel', async () => {
        const [A, B] = h.c.nodes;
        await waitFor(async () => (await A.apiResult('info')).nodes.length === 2, 8000, 'two nodes');
        const cb = await connectedClient(B, 'victim');
        const ch = cb.rec.wait('disconnected');
        await A.apiResult('disconnect', { user: 'victim' });
        const d = await ch;
        assert.equal(d.code, 3503);
    });
});

// SERVER.md §3.2: a plain URL that turns out to be a cluster is detected. Each node is given
// the plain address of one member only; the rest of the cluster comes from CLUSTER SLOTS.
// Spoken to as a single server, that member would answer MOVED for most channels.
describe('a plain address of one cluster member', { timeout: 60000 }, () => {
    const h = useNodes(async () => {
        const servers = await startRedisCluster();
        return startNodes(servers, [`127.0.0.1:${servers[0].port}`, `redis://127.0.0.1:${servers[1].port}`]);
    });

    it('is used as a cluster: publish, history, recovery and presence across nodes', async () => {
        const [A, B] = h.c.nodes;
        const channels = Array.from({ length: 9 }, (_, i) => `chat:plain${i}`);
        const cb = await connectedClient(B, 'u-b');
        const subs = [];
        for (const ch of channels) subs.push(await subscribed(cb, ch));
        for (const [i, ch] of channels.entries()) {
            const r = await cent(A).publish({ channel: ch, data: { i } });
            assert.equal(r.offset, 1, JSON.stringify(r));
        }
        const owners = new Set();
        for (const [i, s] of subs.entries()) {
            assert.deepEqual((await s.rec.wait('publication')).data, { i });
            const ch = channels[i];
            assert.equal((await B.apiResult('history', { channel: ch, limit: -1 })).publications.length, 1);
            // Tagged keys, each on exactly one master, and not all on the members named.
            for (const [k, srv] of h.c.redis.entries()) {
                try {
                    if ((await srv.cli('EXISTS', `${PREFIX}.stream.{${ch}}`)) === '1') owners.add(k);
                } catch (e) {
                    assert.match(e.message, /MOVED/);
                }
            }
        }
        assert.equal(owners.size, MASTERS, `streams on masters ${[...owners]}`);

        await recoversOnOtherNode(A, B, 'rec:plain');

        // Presence and join across nodes.
        const pch = 'chat:plain-presence';
        const sa = await subscribed(await connectedClient(A, 'p-a'), pch);
        await subscribed(await connectedClient(B, 'p-b'), pch);
        await sa.rec.wait('join', (j) => j.info.user === 'p-b');
        for (const node of [A, B]) {
            assert.deepEqual(await node.apiResult('presence_stats', { channel: pch }),
                { num_clients: 2, num_users: 2 });
        }
    });
});

// engine.redis.sharded_pubsub (opt-in): each channel's publications go by SPUBLISH to the
// master owning its slot and each node holds an SSUBSCRIBE there, so no publication crosses
// the cluster bus. Run through two real nodes on a real cluster (Redis 7 has sharded
// PUB/SUB): delivery, history with recovery (SPUBLISH inside the script), and the
// subscription released on the owning master after the last local subscriber leaves.
describe('sharded PUB/SUB on a Redis Cluster', { timeout: 60000 }, () => {
    const h = useNodes(async () => {
        const servers = await startRedisCluster();
        const [p1, p2, p3] = servers.map((s) => s.port);
        return startNodes(servers, [
            `redis+cluster://127.0.0.1:${p1}?addr=127.0.0.1:${p2}&addr=127.0.0.1:${p3}`,
            `redis+cluster://127.0.0.1:${p3}?addr=127.0.0.1:${p1}&addr=127.0.0.1:${p2}`,
        ], { sharded_pubsub: true });
    });

    /** Per master: SHARDNUMSUB of the channel's PUB/SUB name; only its owner answers. */
    async function shardSubs(ch) {
        const name = `${PREFIX}.client.{${ch}}`;
        const counts = [];
        for (const srv of h.c.redis) {
            try {
                const lines = await srv.lines('PUBSUB', 'SHARDNUMSUB', name);
                counts.push(Number(lines[1]));
            } catch (e) {
                assert.match(e.message, /MOVED/);
                counts.push(null);
            }
        }
        return counts;
    }

    /** SPUBLISH calls summed over the masters (INFO commandstats). */
    async function spublishCalls() {
        let calls = 0;
        for (const srv of h.c.redis) {
            const m = /cmdstat_spublish:calls=(\d+)/.exec(await srv.cli('INFO', 'commandstats'));
            if (m) calls += Number(m[1]);
        }
        return calls;
    }

    it('delivers through the owning master, on every master, with history and recovery', async () => {
        const [A, B] = h.c.nodes;
        const channels = Array.from({ length: 9 }, (_, i) => `chat:sharded${i}`);
        const cb = await connectedClient(B, 'u-b');
        const subs = [];
        for (const ch of channels) subs.push(await subscribed(cb, ch));
        const owners = new Set();
        for (const ch of channels) {
            // Only the owning master counts B's SSUBSCRIBE (the others answer 0 or MOVED).
            let counts = [];
            await waitFor(async () => {
                counts = await shardSubs(ch);
                return counts.filter((n) => n === 1).length === 1;
            }, 5000, `one sharded subscription for ${ch}`);
            owners.add(counts.indexOf(1));
        }
        assert.equal(owners.size, MASTERS, `sharded subscriptions on masters ${[...owners]}`);
        for (const [i, ch] of channels.entries()) {
            const r = await cent(A).publish({ channel: ch, data: { i } });
            assert.equal(r.offset, 1, JSON.stringify(r));
        }
        for (const [i, s] of subs.entries()) assert.deepEqual((await s.rec.wait('publication')).data, { i });
        assert.ok((await spublishCalls()) >= channels.length, 'publications went by SPUBLISH');

        // History publishes SPUBLISH from the script; recovery on the other node.
        const ch = 'rec:sharded';
        const s2 = await recoversOnOtherNode(A, B, ch);
        await A.apiResult('publish', { channel: ch, data: { n: 6 } });
        assert.equal((await s2.rec.wait('publication', (p) => p.data.n === 6)).offset, 6);

        // The last local subscriber leaves: B releases its sharded subscription.
        const gone = channels[0];
        subs[0].unsubscribe();
        await waitFor(async () => !(await shardSubs(gone)).includes(1), 5000, `SSUBSCRIBE of ${gone} released`);
        assert.deepEqual((await shardSubs(channels[1])).filter((n) => n === 1), [1]);
    });
});
