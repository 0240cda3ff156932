// Redis behind Sentinel (SERVER.md §3.2, §3.15): a master, its replica and three
// redis-sentinel processes started here; node A is configured with a redis+sentinel:// URL,
// node B with the older sentinel_address / sentinel_master_name keys. Publish, history,
// recovery and presence work through the master the Sentinels name; after the master is
// SIGKILLed and a replica promoted, both nodes follow and publishing works again.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';

import { connectedClient, subscribed } from './lib/clients.mjs';
import { PREFIX, REDIS_SERVER, redisCli, startRedis, waitReady } from './lib/redis.mjs';
import { NAMESPACES, freePort, sleep, startRotor, waitFor } from './lib/rotor.mjs';

const MASTER = 'mymaster';
const REC = {
    name: 'rec', history_size: 100, history_ttl: '300s', force_recovery: true,
    allow_subscribe_for_client: true, allow_history_for_client: true,
};
// Sentinel declares the master down after 1 s; electing a leader and promoting the
// replica takes a few seconds more; rotor's reconnect backoff is at most 5 s.
const FAILOVER_MS = 30000;

const sentinels = new Set();
process.on('exit', () => {
    for (const s of sentinels) {
        try {
            s.proc.kill('SIGKILL');
        } catch {
            // already gone
        }
    }
});

/** One redis-sentinel on a free port, its config file in a temp dir (Sentinel rewrites
 * it). */
class Sentinel {
    constructor(port, dir) {
        this.port = port;
        this.dir = dir;
        this.log = [];
        this.proc = null;
    }

    static async start(masterPort, quorum) {
        const port = await freePort();
        const dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-sentinel-'));
        const s = new Sentinel(port, dir);
        const conf = path.join(dir, 'sentinel.conf');
        writeFileSync(conf, [
            `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'protected-mode no',
            `sentinel monitor ${MASTER} 127.0.0.1 ${masterPort} ${quorum}`,
            `sentinel down-after-milliseconds ${MASTER} 1000`,
            `sentinel failover-timeout ${MASTER} 3000`, '',
        ].join('\n'));
        s.proc = spawn(REDIS_SERVER, [conf, '--sentinel'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        sentinels.add(s);
        s.proc.stdout.on('data', (d) => s.log.push(d.toString()));
        s.proc.stderr.on('data', (d) => s.log.push(d.toString()));
        s.exit = new Promise((resolve) => s.proc.on('exit', resolve));
        await waitFor(async () => (await s.cli('PING').catch(() => '')) === 'PONG', 5000,
            `sentinel on port ${port} to answer PING`);
        return s;
    }

    cli(...args) {
        return redisCli(this.port, ...args);
    }

    address() {
        return `127.0.0.1:${this.port}`;
    }

    async stop() {
        if (this.proc.exitCode === null && this.proc.signalCode === null) {
            this.proc.kill('SIGKILL');
            await this.exit;
        }
        sentinels.delete(this);
        rmSync(this.dir, { recursive: true, force: true });
    }
}

/** Number of entries in a redis-cli array-of-maps reply (SENTINEL replicas/sentinels). */
async function countEntries(sentinel, what) {
    const out = await sentinel.cli('SENTINEL', what, MASTER);
    return out.split('\n').filter((l) => l === 'name').length;
}

describe('Redis Sentinel', { timeout: 90000 }, () => {
    const env = { master: null, replica: null, sentinels: [], nodes: [] };

    before(async () => {
        env.master = await startRedis();
        env.replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(env.master.port)] });
        await waitFor(async () => (await env.replica.cli('INFO', 'replication')).includes('master_link_status:up'),
            10000, 'the replica to sync');
        for (let i = 0; i < 3; i++) env.sentinels.push(await Sentinel.start(env.master.port, 2));
        // A failover needs a quorum of Sentinels that know each other and the replica
        // (hello messages every 2 s through the master).
        await waitFor(async () => {
            for (const s of env.sentinels) {
                if ((await countEntries(s, 'replicas')) < 1 || (await countEntries(s, 'sentinels')) < 2) return false;
            }
            return true;
        }, 20000, 'the Sentinels to discover the replica and each other');

        const [s1, s2, s3] = env.sentinels.map((s) => s.address());
        const base = { channel: { namespaces: [...NAMESPACES, REC] } };
        const url = `redis+sentinel://${s1}?sentinel_master_name=${MASTER}&addr=${s2}&addr=${s3}`;
        env.nodes.push(await startRotor({
            config: { ...base, engine: { type: 'redis', redis: { address: url, prefix: PREFIX } } },
        }));
        env.nodes.push(await startRotor({
            config: {
                ...base,
                engine: {
                    type: 'redis',
                    redis: { sentinel_address: [`${s3},${s2},${s1}`], sentinel_master_name: MASTER, prefix: PREFIX },
                },
            },
        }));
        await Promise.all(env.nodes.map((n) => waitReady(n, 200, 10000)));
    });

    afterEach(async (t) => {
        if (!t.passed) {
            for (const [i, n] of env.nodes.entries()) n.dumpLogs(`node ${i} after "${t.name}"`);
            for (const [i, s] of env.sentinels.entries()) {
                process.stderr.write(`\n--- sentinel ${i} (port ${s.port}) ---\n${s.log.join('').slice(-3000)}\n`);
            }
        }
        for (const n of env.nodes) await n.closeClients();
    });

    after(async () => {
        for (const n of env.nodes) await n.stop();
        for (const s of env.sentinels) await s.stop();
        if (env.replica) await env.replica.stop();
        if (env.master) await env.master.stop();
    });

    it('publish, history, recovery and presence across both nodes', async () => {
        const [A, B] = env.nodes;
        const ca = await connectedClient(A, 'sa');
        const cb = await connectedClient(B, 'sb');
        const sa = await subscribed(ca, 'rec:s');
        const sb = await subscribed(cb, 'rec:s');
        const { epoch } = sa.subscribedCtx.streamPosition;
        for (let n = 1; n <= 3; n++) await B.apiResult('publish', { channel: 'rec:s', data: { n } });
        for (const s of [sa, sb]) {
            await s.rec.wait('publication', () => true, 4000, 3);
            assert.deepEqual(s.rec.all('publication').map((p) => p.data.n), [1, 2, 3]);
        }
        const hist = await A.apiResult('history', { channel: 'rec:s', limit: -1 });
        assert.equal(hist.epoch, epoch);
        assert.deepEqual(hist.publications.map((p) => p.data.n), [1, 2, 3]);
        // The stream lives on the master the Sentinels name.
        assert.equal(await env.master.cli('EXISTS', `${PREFIX}.stream.rec:s`), '1', 'the stream is on the master');

        // Recovery on the other node from a position.
        for (let n = 4; n <= 5; n++) await A.apiResult('publish', { channel: 'rec:s', data: { n } });
        const cr = await connectedClient(B, 'sr');
        const sr = await subscribed(cr, 'rec:s', { since: { offset: 3, epoch } });
        assert.equal(sr.subscribedCtx.recovered, true);
        await sr.rec.wait('publication', () => true, 4000, 2);
        assert.deepEqual(sr.rec.all('publication').map((p) => p.data.n), [4, 5]);

        // Presence seen from both nodes.
        await subscribed(ca, 'chat:s');
        await subscribed(cb, 'chat:s');
        for (const node of [A, B]) {
            await waitFor(async () => {
                const r = await node.apiResult('presence', { channel: 'chat:s' });
                const users = Object.values(r.presence).map((x) => x.user).sort();
                return users.length === 2 && users[0] === 'sa' && users[1] === 'sb';
            }, 5000, `presence of chat:s on port ${node.port}`);
        }
    });

    it('after the master is killed both nodes follow the promoted replica', async () => {
        const [A, B] = env.nodes;
        const ca = await connectedClient(A, 'fa');
        const s = await subscribed(ca, 'rec:fo');
        await B.apiResult('publish', { channel: 'rec:fo', data: { n: 0 } });
        await s.rec.wait('publication');

        const t0 = Date.now();
        await env.master.kill();
        // Publishing fails honestly (API 100) until the new master is found, then works.
        let n = 1;
        const deadline = Date.now() + FAILOVER_MS;
        let ok = null;
        while (Date.now() < deadline) {
            const reply = await B.api('publish', { channel: 'rec:fo', data: { n } });
            if (reply.result) {
                ok = reply.result;
                break;
            }
            assert.equal(reply.error?.code, 100, JSON.stringify(reply));
            await sleep(200);
        }
        assert.ok(ok, `publishing through B works again within ${FAILOVER_MS} ms`);
        const role = (await env.replica.cli('ROLE')).split('\n')[0];
        assert.equal(role, 'master', 'the replica was promoted');
        const name = (await env.sentinels[0].cli('SENTINEL', 'get-master-addr-by-name', MASTER)).split('\n');
        assert.deepEqual(name, ['127.0.0.1', String(env.replica.port)]);

        // A follows too: its API works, its PUB/SUB resubscribes, and the subscriber gets
        // live publications again (possibly after an insufficient-state resubscribe).
        await waitFor(async () => (await A.api('publish', { channel: 'rec:fo', data: { n: ++n } })).result,
            FAILOVER_MS, 'publishing through A');
        for (const node of [A, B]) await waitReady(node, 200, FAILOVER_MS);
        await waitFor(async () => {
            const tag = ++n;
            await B.apiResult('publish', { channel: 'rec:fo', data: { n: tag } });
            await sleep(300);
            return s.rec.all('publication').some((p) => p.data.n === tag);
        }, FAILOVER_MS, 'a live publication on A after the failover');
        const hist = await A.apiResult('history', { channel: 'rec:fo', limit: -1 });
        assert.ok(hist.publications.length >= 2, JSON.stringify(hist));
        process.stderr.write(`# failover followed in ${Date.now() - t0} ms\n`);
        for (const node of [A, B]) assert.equal(node.exited, null, 'nodes stay up');
    });
});
