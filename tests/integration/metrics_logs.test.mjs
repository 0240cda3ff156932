// Honest metrics and logs (issue 5, SERVER.md §5.1 and §6): /metrics reports the live node
// count of a Redis cluster, the transport of each connection under Centrifugo's names,
// the bytes queued to clients on every worker, open fds and the build; the node logs one
// JSON object per line when stdout is not a terminal, and its start-up line names version,
// pid, workers, engine, Redis shards and the open-files limit (warning when it is low).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';

import { RawClient, WebSocket } from './lib/clients.mjs';
import { startRedis, useCluster } from './lib/redis.mjs';
import { NAMESPACES, freePort, rotorBinary, sleep, startRotor, waitFor } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';
import { grpcClient, grpcConsume, transportClient, uniStream } from './lib/transports.mjs';

const GRPC_PORT = await freePort();
const TRANSPORTS = {
    http_stream: { enabled: true },
    sse: { enabled: true },
    uni_websocket: { enabled: true },
    uni_sse: { enabled: true },
    uni_http_stream: { enabled: true },
    uni_grpc: { enabled: true, address: '127.0.0.1', port: GRPC_PORT },
};
const ALL_TRANSPORTS = ['websocket', 'sse', 'http_stream', 'uni_websocket', 'uni_sse',
    'uni_http_stream', 'uni_grpc'];

/** Parses the Prometheus text format: [{name, labels, value}] (no HELP/TYPE lines). */
function parseMetrics(text) {
    const out = [];
    for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        assert.ok(m, `unparsable metrics line: ${line}`);
        const labels = {};
        for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
            labels[l[1]] = l[2];
        }
        out.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return out;
}

/** GET /metrics over a fresh connection (each scrape may land on any worker). */
async function scrape(rotor) {
    const res = await fetch(rotor.url('/metrics'), { headers: { Connection: 'close' } });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return parseMetrics(text);
}

const series = (ms, name, match = {}) => ms.filter((m) => m.name === name &&
    Object.entries(match).every(([k, v]) => m.labels[k] === v));

/** The value of the one series named name (matching labels); fails unless exactly one. */
function one(ms, name, match = {}) {
    const s = series(ms, name, match);
    assert.equal(s.length, 1, `${name}${JSON.stringify(match)}: ${JSON.stringify(s)}`);
    return s[0].value;
}

/** Open descriptors of pid, as the kernel lists them. */
const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;

describe('metrics of one node', { timeout: 60000 }, () => {
    const rotor = useRotor({
        config: {
            ...TRANSPORTS,
            workers: 2,
            // Room for the queue test: slow clients hold many publications.
            client: { queue_max_size: 256 * 1024 * 1024 },
            channel: { namespaces: NAMESPACES },
        },
    });

    it('process_open_fds follows the descriptors; build info and RSS are present', async () => {
        const pid = rotor.proc.pid;
        let ms = await scrape(rotor);
        const before = one(ms, 'process_open_fds');
        // The scrape's own socket and idle keep-alive sockets come and go: small slack.
        assert.ok(Math.abs(before - fdCount(pid)) <= 4, `process_open_fds ${before}, /proc ${fdCount(pid)}`);
        const socks = [];
        for (let i = 0; i < 20; i++) socks.push(await RawClient.open(rotor));
        ms = await scrape(rotor);
        const withClients = one(ms, 'process_open_fds');
        // One descriptor per connection (less one or two for the harness's idle sockets).
        assert.ok(withClients >= before + 18, `${before} -> ${withClients} with 20 more connections`);
        assert.ok(Math.abs(withClients - fdCount(pid)) <= 4, `process_open_fds ${withClients}, /proc ${fdCount(pid)}`);

        const build = series(ms, 'centrifugo_node_build');
        assert.equal(build.length, 1, JSON.stringify(build));
        assert.equal(build[0].value, 1);
        assert.match(build[0].labels.version, /^\d+\.\d+\.\d+/);
        // The start-up line names the same version.
        assert.ok(rotor.logs().includes(`rotor ${build[0].labels.version} started`), rotor.logTail(20));
        const rss = one(ms, 'process_resident_memory_bytes');
        assert.ok(rss > 2 ** 20 && rss < 4 * 2 ** 30, `rss ${rss}`);
    });

    it('client series carry the transport of each connection', async () => {
        const token = (sub, extra = {}) => rotor.makeToken({ sub, ...extra });
        const bidi = {};
        for (const t of ['websocket', 'sse', 'http_stream']) {
            const c = transportClient(rotor, t, { token: token(`t-${t}`) });
            c.connect();
            await c.rec.wait('connected');
            bidi[t] = c;
        }
        const uniWs = new WebSocket(rotor.wsUrl(`/connection/uni_websocket?cf_connect=${encodeURIComponent(
            JSON.stringify({ token: token('t-uws') }))}`));
        rotor.clients.add({ close: () => uniWs.terminate() });
        const uwsMsgs = [];
        uniWs.on('message', (d) => uwsMsgs.push(JSON.parse(d.toString())));
        await waitFor(() => uwsMsgs.some((m) => m.connect), 4000, 'uni_websocket connect push');
        for (const kind of ['uni_sse', 'uni_http_stream']) {
            const r = await uniStream(rotor, kind, { token: token(`t-${kind}`) });
            await r.wait((m) => m.connect);
        }
        const grpc = grpcClient(GRPC_PORT);
        rotor.clients.add({ close: () => grpc.close() });
        const g = grpcConsume(rotor, grpc, { token: token('t-grpc') });
        await g.wait((p) => p.connect);

        let ms;
        await waitFor(async () => {
            ms = await scrape(rotor);
            return one(ms, 'centrifugo_node_num_clients') === 7;
        }, 5000, 'seven clients');
        for (const t of ALL_TRANSPORTS) {
            assert.equal(one(ms, 'centrifugo_client_connections_inflight', { transport: t }), 1,
                `${t}: ${JSON.stringify(series(ms, 'centrifugo_client_connections_inflight'))}`);
        }
        // Centrifugo's transport names only, and nothing counted under a transport that
        // did not carry it.
        for (const m of ms) {
            if (m.labels.transport === undefined || m.labels.transport === '') continue;
            assert.ok(ALL_TRANSPORTS.includes(m.labels.transport), JSON.stringify(m));
        }
        assert.equal(one(ms, 'centrifugo_client_connections_inflight', { transport: 'uni_grpc' }), 1);
        // The counters are per transport too: each transport accepted a connection and sent
        // it at least its connect reply or push; the bidirectional ones received a command.
        for (const t of ALL_TRANSPORTS) {
            assert.ok(one(ms, 'centrifugo_client_connections_accepted', { transport: t }) >= 1, t);
            assert.ok(one(ms, 'centrifugo_transport_messages_sent', { transport: t }) >= 1, t);
        }
        for (const t of ['websocket', 'sse', 'http_stream'])
            assert.ok(one(ms, 'centrifugo_transport_messages_received', { transport: t }) >= 1, t);

        // The gauge follows a transport going away.
        bidi.sse.disconnect();
        await waitFor(async () => {
            ms = await scrape(rotor);
            return one(ms, 'centrifugo_client_connections_inflight', { transport: 'sse' }) === 0;
        }, 5000, 'sse inflight back to 0');
        assert.equal(one(ms, 'centrifugo_client_connections_inflight', { transport: 'websocket' }), 1);
        assert.equal(one(ms, 'centrifugo_client_connections_inflight', { transport: 'http_stream' }), 1);
    });

    it('rotor_worker_client_queue_bytes: one series per worker, whichever worker answers', async (t) => {
        const ch = 'pub:flood';
        // Clients that stop reading: what the kernel cannot take stays in rotor's queues.
        // Connections spread over the workers by SO_REUSEPORT hashing; add clients until
        // both workers hold queued bytes.
        const payload = { blob: 'x'.repeat(256 * 1024) };
        const clients = [];
        let ms;
        const queued = () => series(ms, 'rotor_worker_client_queue_bytes');
        for (let round = 0; round < 8; round++) {
            for (let i = 0; i < 3; i++) {
                const raw = await RawClient.open(rotor);
                await raw.connect(rotor.makeToken({ sub: `slow-${round}-${i}` }));
                const sub = await raw.command({ subscribe: { channel: ch } });
                assert.ok(sub.subscribe, JSON.stringify(sub));
                raw.ws._socket.pause();
                clients.push(raw);
            }
            for (let i = 0; i < 48; i++) await rotor.apiResult('publish', { channel: ch, data: payload });
            ms = await scrape(rotor);
            const q = queued();
            assert.deepEqual(q.map((s) => s.labels.worker).sort(), ['0', '1'],
                `one series per worker: ${JSON.stringify(q)}`);
            if (q.every((s) => s.value > 0)) break;
        }
        const first = queued();
        assert.ok(first.every((s) => s.value > 0), `both workers hold queued bytes: ${JSON.stringify(first)}`);
        for (const c of clients) assert.ok(c.isOpen(), 'a slow client was disconnected');
        // Nothing drains while the clients do not read, so every scrape must report the
        // same numbers, whichever worker answers it.
        const byWorker = (q) => Object.fromEntries(q.map((s) => [s.labels.worker, s.value]));
        for (let i = 0; i < 8; i++) {
            ms = await scrape(rotor);
            assert.deepEqual(byWorker(queued()), byWorker(first), `scrape ${i}`);
        }
        const total = first.reduce((a, s) => a + s.value, 0);
        t.diagnostic(`${clients.length} slow clients, queued ${JSON.stringify(byWorker(first))}`);
        assert.ok(total >= 256 * 1024, `total ${total}`);
    });
});

describe('centrifugo_node_num_nodes on a Redis cluster', { timeout: 60000 }, () => {
    const h = useCluster(3);

    it('counts the live nodes and drops a stopped one', async () => {
        const nodes = h.c.nodes;
        for (const r of nodes) {
            await waitFor(async () => one(await scrape(r), 'centrifugo_node_num_nodes') === 3,
                10000, `num_nodes 3 on port ${r.port}`);
        }
        await nodes[2].stop();
        for (const r of nodes.slice(0, 2)) {
            await waitFor(async () => one(await scrape(r), 'centrifugo_node_num_nodes') === 2,
                10000, `num_nodes 2 on port ${r.port}`);
        }
    });
});

// ---------------------------------------------------------------------------------------
// Logs. The node runs under a small shell wrapper that sets the open-files limit and sends
// stderr elsewhere, so what the harness records is exactly the node's stdout (a pipe).

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rotor-logs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Starts rotor through `sh -c 'ulimit <ulimit>; exec rotor ... 2>stderr'`. */
async function startWrapped(name, ulimit, opts) {
    const real = rotorBinary();
    const wrapper = path.join(tmp, `${name}.sh`);
    writeFileSync(wrapper, `#!/bin/sh\nulimit ${ulimit} || exit 97\nexec '${real}' "$@" 2>>'${path.join(tmp, `${name}.stderr`)}'\n`);
    chmodSync(wrapper, 0o755);
    const saved = process.env.ROTOR_BIN;
    process.env.ROTOR_BIN = wrapper;
    try {
        return await startRotor(opts);
    } finally {
        process.env.ROTOR_BIN = saved;
    }
}

/** Every non-empty stdout line as a parsed JSON object (fails on any other line). */
function jsonLines(rotor) {
    const text = rotor.logs();
    assert.ok(text.endsWith('\n'), `stdout ends mid-line: ${JSON.stringify(text.slice(-200))}`);
    return text.split('\n').filter((l) => l !== '').map((l) => {
        let o;
        try {
            o = JSON.parse(l);
        } catch {
            assert.fail(`stdout line is not JSON: ${l}`);
        }
        assert.equal(typeof o, 'object', l);
        assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, l);
        assert.ok(['debug', 'info', 'warn', 'error'].includes(o.level), l);
        assert.equal(typeof o.module, 'string', l);
        assert.equal(typeof o.msg, 'string', l);
        return o;
    });
}

const STARTUP_RE = /^rotor (\S+) started pid=(\d+) .*\bworkers=(\d+) engine=(\S+)(?: redis_shards=(\S+))? .*\bnofile=(\d+)$/;

function startupLine(lines) {
    const s = lines.filter((o) => STARTUP_RE.test(o.msg));
    assert.equal(s.length, 1, JSON.stringify(lines));
    assert.equal(s[0].level, 'info');
    const m = STARTUP_RE.exec(s[0].msg);
    return { version: m[1], pid: Number(m[2]), workers: Number(m[3]), engine: m[4], shards: m[5], nofile: Number(m[6]) };
}

const hardNofile = () => Number(execFileSync('sh', ['-c', 'ulimit -H -n']).toString().trim());

describe('logs', { timeout: 60000 }, () => {
    it('one JSON object per line on a pipe; the start-up line names the node', async () => {
        const redis = [await startRedis(), await startRedis()];
        let rotor;
        try {
            // A soft limit below the hard one: the node raises it to the hard limit.
            rotor = await startWrapped('json', '-S -n 256', {
                config: {
                    workers: 3,
                    engine: { type: 'redis', redis: { address: redis.map((r) => r.address()) } },
                },
            });
            const ms = await scrape(rotor);
            const version = series(ms, 'centrifugo_node_build')[0].labels.version;
            await rotor.stop();
            const lines = jsonLines(rotor);
            const s = startupLine(lines);
            assert.equal(s.version, version);
            assert.equal(s.pid, rotor.proc.pid);
            assert.equal(s.workers, 3);
            assert.equal(s.engine, 'redis');
            assert.equal(s.shards, redis.map((r) => `127.0.0.1:${r.port}`).join(','));
            assert.equal(s.nofile, hardNofile());
            // The shutdown is logged the same way, to the last line.
            assert.equal(lines.at(-1).msg, 'shutdown complete');
        } finally {
            if (rotor && !rotor.exited) await rotor.stop({ check: false });
            for (const r of redis) await r.stop();
        }
    });

    it('a low open-files limit is logged as a warning and named in the start-up line', async () => {
        const rotor = await startWrapped('lownofile', '-n 1024', { config: { workers: 1 } });
        try {
            await sleep(100);
            const lines = jsonLines(rotor);
            const s = startupLine(lines);
            assert.equal(s.nofile, 1024);
            assert.equal(s.engine, 'memory');
            assert.equal(s.shards, undefined);
            const warn = lines.find((o) => o.level === 'warn' && /open files limit is 1024\b/.test(o.msg));
            assert.ok(warn, JSON.stringify(lines));
        } finally {
            await rotor.stop();
        }
    });
});
