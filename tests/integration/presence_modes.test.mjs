// Redis presence modes (SERVER.md §3.8): engine.redis.presence_user_mapping keeps a per-user
// connection count (P.presence.user.clients.C) that presence_stats answers from on every
// node; engine.redis.presence_hash_field_ttl needs HEXPIRE (Redis >= 7.4), and a node on an
// older Redis refuses to start, naming the option.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

import { CentClient } from 'cent.js';

import { connectedClient, subscribed } from './lib/clients.mjs';
import { PREFIX, redisEngine, startRedis, useCluster } from './lib/redis.mjs';
import { baseConfig, freePort, merge, rotorBinary, waitFor } from './lib/rotor.mjs';

const cent = (rotor) => new CentClient({ url: rotor.url('/api'), apiKey: rotor.apiKey });

async function statsOn(rotor, channel) {
    return cent(rotor).getPresenceStats({ channel });
}

/** The user hash of channel as {user: count}. */
async function userCounts(redis, channel) {
    const lines = await redis.lines('HGETALL', `${PREFIX}.presence.user.clients.${channel}`);
    const out = {};
    for (let i = 0; i + 1 < lines.length; i += 2) out[lines[i]] = Number(lines[i + 1]);
    return out;
}

/** Polls until presence_stats on every node equals want. */
async function waitStats(nodes, channel, want) {
    for (const node of nodes) {
        let last = null;
        await waitFor(async () => {
            last = await statsOn(node, channel);
            return JSON.stringify(last) === JSON.stringify(want);
        }, 5000, `presence_stats ${JSON.stringify(want)} on port ${node.port}, last ${JSON.stringify(last)}`);
    }
}

describe('presence_user_mapping on two nodes', { timeout: 60000 }, () => {
    const h = useCluster(2, { redisOpts: { presence_user_mapping: true } });

    it('presence_stats agree on both nodes and come from the user hash', async () => {
        const [A, B] = h.c.nodes;
        const redis = h.c.redis[0];
        const ch = 'chat:usermap';
        const userKey = `${PREFIX}.presence.user.clients.${ch}`;
        const mon = await redis.monitor();
        try {
            const alice1 = await connectedClient(A, 'alice');
            const alice2 = await connectedClient(B, 'alice');
            const bob = await connectedClient(B, 'bob');
            const subs = [await subscribed(alice1, ch), await subscribed(alice2, ch), await subscribed(bob, ch)];

            await waitStats([A, B], ch, { num_clients: 3, num_users: 2 });
            assert.deepEqual(await userCounts(redis, ch), { alice: 2, bob: 1 });
            const ttl = Number(await redis.cli('TTL', userKey));
            assert.ok(ttl > 0 && ttl <= 60, `TTL of ${userKey}: ${ttl}`);
            assert.equal(await redis.cli('ZCARD', `${PREFIX}.presence.user.expire.${ch}`), '2');

            // The stats script read the hash lengths (MONITOR shows commands run by scripts).
            mon.clear();
            assert.deepEqual(await statsOn(A, ch), { num_clients: 3, num_users: 2 });
            await mon.wait((c) => c.args[0] === 'HLEN' && c.args[1] === userKey, 3000, `HLEN ${userKey}`);
            assert.equal(mon.commands((c) => c.args[0] === 'HGETALL').length, 0, 'stats fetched entries');

            // Client-side presence stats agree too.
            assert.deepEqual(await subs[2].presenceStats(), { numClients: 3, numUsers: 2 });

            // One of alice's connections leaves: her count drops, she is still present.
            subs[1].unsubscribe();
            await waitStats([A, B], ch, { num_clients: 2, num_users: 2 });
            assert.deepEqual(await userCounts(redis, ch), { alice: 1, bob: 1 });

            // bob's last connection goes: his field is gone.
            bob.disconnect();
            await waitStats([A, B], ch, { num_clients: 1, num_users: 1 });
            assert.deepEqual(await userCounts(redis, ch), { alice: 1 });
        } finally {
            await mon.stop();
        }
    });
});

/** Redis version of redis as [major, minor]. */
async function redisVersion(redis) {
    const info = await redis.cli('INFO', 'server');
    const m = /redis_version:(\d+)\.(\d+)/.exec(info);
    assert.ok(m, info);
    return [Number(m[1]), Number(m[2])];
}

/** Runs rotor with config until it exits (or timeout); resolves {code, signal, log}. */
function runUntilExit(config, timeout = 10000) {
    return (async () => {
        const port = await freePort();
        const dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-it-'));
        const cfgPath = path.join(dir, 'config.json');
        writeFileSync(cfgPath, JSON.stringify(merge(config, { http_server: { address: '127.0.0.1', port } })));
        const env = Object.fromEntries(Object.entries(process.env)
            .filter(([k]) => !k.startsWith('ROTOR_') && !k.startsWith('CENTRIFUGO_')));
        const proc = spawn(rotorBinary(), ['-c', cfgPath], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
        let log = '';
        proc.stdout.on('data', (d) => {
            log += d;
        });
        proc.stderr.on('data', (d) => {
            log += d;
        });
        try {
            return await new Promise((resolve) => {
                const timer = setTimeout(() => {
                    proc.kill('SIGKILL');
                    resolve({ code: null, signal: 'timeout', log });
                }, timeout);
                proc.on('exit', (code, signal) => {
                    clearTimeout(timer);
                    resolve({ code, signal, log });
                });
            });
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    })();
}

describe('presence_hash_field_ttl', { timeout: 30000 }, () => {
    it('is refused at start-up on a Redis without HEXPIRE, naming the option', async (t) => {
        const redis = await startRedis();
        try {
            const [major, minor] = await redisVersion(redis);
            if (major > 7 || (major === 7 && minor >= 4)) {
                t.skip(`Redis ${major}.${minor} has HEXPIRE`);
                return;
            }
            const config = merge(baseConfig(), redisEngine(redis, { presence_hash_field_ttl: true }));
            const r = await runUntilExit(config);
            assert.equal(r.code, 1, `exit ${r.code} ${r.signal}\n${r.log}`);
            assert.match(r.log, /refusing to start/);
            assert.match(r.log, /engine\.redis\.presence_hash_field_ttl needs Redis >= 7\.4 \(HEXPIRE\)/);
            assert.match(r.log, /unknown command/i);
        } finally {
            await redis.stop();
        }
    });
});
