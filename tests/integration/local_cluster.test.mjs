// deploy/local-cluster under test (issue 5): Redis, three rotor nodes and nginx as
// processes on free loopback ports. centrifuge-js clients on WebSocket, HTTP-streaming
// and SSE connect through nginx and are spread over the nodes; publications made through
// the API of any node reach all of them; one node drains on SIGTERM (/ready 503 before it
// stops listening), its clients get 3001, reconnect through nginx to the others and
// recover every publication exactly once, in order; `stop` leaves no process behind.
// The same topology behind HAProxy (deploy/haproxy/haproxy.cfg): its /ready health check
// takes a draining node out of rotation before the node stops listening.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { WebSocket, newSub } from './lib/clients.mjs';
import {
    API_KEY, HMAC_SECRET, NAMESPACES, baseConfig, freePort, merge, rotorBinary, signJwt, nowSec,
    sleep, waitFor,
} from './lib/rotor.mjs';
import { StreamReader, transportClient } from './lib/transports.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCRIPT = path.resolve(HERE, '../../deploy/local-cluster');

const DRAIN_DELAY_MS = 1500;
const SHUTDOWN_TIMEOUT_MS = 10000;
// Recoverable stream, long enough that nothing the test publishes falls out of it.
const LC = {
    name: 'lc', history_size: 1000, history_ttl: '300s', force_recovery: true,
    allow_subscribe_for_client: true,
};

const countBy = (xs) => xs.reduce((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {});
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** Runs deploy/local-cluster; resolves {code, out} (stdout and stderr together). */
function runScript(args, env) {
    return new Promise((resolve, reject) => {
        const p = spawn(SCRIPT, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d) => { out += d; });
        p.stderr.on('data', (d) => { out += d; });
        p.on('error', reject);
        p.on('exit', (code) => resolve({ code, out }));
    });
}

/** Distinct free ports (a probe can hand out the same port twice in a row). */
async function freePorts(n) {
    const set = new Set();
    while (set.size < n) set.add(await freePort());
    return [...set];
}

/** The process is gone (no /proc entry) or a zombie waiting for its reaper. */
function gone(pid) {
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return /^\d+ \(.*\) [ZX]/.test(stat);
    } catch {
        return true;
    }
}

/** PIDs whose parent is pid (nginx workers of the master). */
function childrenOf(pid) {
    const out = [];
    for (const e of readdirSync('/proc')) {
        if (!/^\d+$/.test(e)) continue;
        try {
            const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
            const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
            if (Number(fields[1]) === pid) out.push(Number(e));
        } catch {
            // exited meanwhile
        }
    }
    return out;
}

/** GET on a fresh connection (no keep-alive: a closed listener shows as ECONNREFUSED,
 * not as a reset of a reused socket). Resolves the status code or the error code. */
function freshGet(port, p) {
    return new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: 1000 }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
        });
        req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
        req.on('error', (e) => resolve(e.code ?? e.message));
    });
}

/** Nothing listens on port any more. */
function refused(port) {
    return new Promise((resolve) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        sock.on('connect', () => {
            sock.destroy();
            resolve(false);
        });
        sock.on('error', (e) => resolve(e.code === 'ECONNREFUSED'));
    });
}

/** One node of the cluster, reached directly on its own port. */
class Node {
    constructor(name, port, pid) {
        this.name = name;
        this.port = port;
        this.pid = pid;
    }

    url(p) {
        return `http://127.0.0.1:${this.port}${p}`;
    }

    async apiResult(method, body = {}) {
        const res = await fetch(this.url(`/api/${method}`), {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY },
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(3000),
        });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`${this.name} api ${method}: HTTP ${res.status} ${text}`);
        const reply = JSON.parse(text);
        if (reply.error) throw new Error(`${this.name} api ${method}: ${text}`);
        return reply.result;
    }

    /** An unlabelled series of this node's own /metrics. */
    async metric(name) {
        const text = await (await fetch(this.url('/metrics'), { signal: AbortSignal.timeout(2000) })).text();
        const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
        if (!m) throw new Error(`${this.name}: no ${name} in /metrics`);
        return Number(m[1]);
    }

    numClients() {
        return this.metric('centrifugo_node_num_clients');
    }
}

/** Connects a client through the balancer, subscribes it to ch and finds the node that
 * holds it (the one whose own client count went up). Resolves {client, sub, node}. */
async function connectOne(h, transport, user, ch) {
    const before = await Promise.all(h.nodes.map((n) => n.numClients()));
    const client = h.client(transport, user);
    client.connect();
    await client.rec.wait('connected', () => true, 5000);
    const sub = newSub(client, ch);
    sub.subscribe();
    sub.firstCtx = await sub.rec.wait('subscribed', () => true, 5000);
    assert.equal(sub.firstCtx.recoverable, true);
    const node = await waitFor(async () => {
        const now = await Promise.all(h.nodes.map((n) => n.numClients()));
        const grown = now.map((v, k) => v - before[k]);
        const k = grown.findIndex((d) => d === 1);
        return k >= 0 && grown.reduce((a, b) => a + b, 0) === 1 ? k + 1 : 0;
    }, 5000, `${user} (${transport}) to show up in one node's metrics`) - 1;
    return { client, sub, node };
}

/** Publishes {n} to ch through the given nodes in turn, one at a time, from state.n + 1 on,
 * until stop() (pushed to h.background too); state.n is the last acknowledged one. */
function startPublisher(h, nodes, ch, state) {
    let running = true;
    let error = null;
    const loop = (async () => {
        let k = 0;
        try {
            while (running) {
                await nodes[k++ % nodes.length].apiResult('publish', { channel: ch, data: { n: state.n + 1 } });
                state.n++;
                await sleep(30);
            }
        } catch (e) {
            error = e;
        }
    })();
    const stop = async () => {
        running = false;
        await loop;
        if (error) throw new Error(`publishing through ${nodes.map((x) => x.name)} failed: ${error.message}`);
    };
    h.background.push(() => stop().catch(() => {}));
    return stop;
}

/** Every subscription received 1..total exactly once, in order, with offsets 1..total. */
async function expectAll(subs, labels, total) {
    await Promise.all(subs.map((s, i) => s.rec.wait('publication', () => true, 10000, total)
        .catch((e) => { throw new Error(`${labels[i]}: ${e.message.slice(0, 300)}`); })));
    await sleep(300);
    for (const [i, s] of subs.entries()) {
        const got = s.rec.all('publication');
        assert.deepEqual(got.map((p) => p.data.n), range(1, total), `${labels[i]} data`);
        assert.deepEqual(got.map((p) => p.offset), range(1, total), `${labels[i]} offsets`);
    }
}

/** node:test lifecycle of one local cluster behind lbName (nginx | haproxy), started by
 * the script in `before` and stopped by it in `after`, which also checks that no process
 * (nginx workers included) and no listening port is left. Returns a holder filled in by
 * `before`: {dir, env, lb, nodes, pids, clients, background, logs()}. */
function useLocalCluster(lbName, { drainDelayMs = DRAIN_DELAY_MS } = {}) {
    const h = {
        dir: null,
        env: null,
        lbPort: 0,
        redisPort: 0,
        nodes: [],
        pids: {}, // name -> pid, as written by the script
        children: [], // processes forked by the balancer (nginx workers)
        clients: [], // everything with disconnect(), closed in `after`
        background: [], // stops loops a failed test must not leave running
    };
    h.lb = {
        url: (p = '') => `http://127.0.0.1:${h.lbPort}${p}`,
        wsUrl: (p = '/connection/websocket') => `ws://127.0.0.1:${h.lbPort}${p}`,
        clients: new Set(),
    };
    h.names = ['redis', 'node1', 'node2', 'node3', lbName];
    h.logs = () => {
        const d = h.dir && path.join(h.dir, 'log');
        if (!d || !existsSync(d)) return '(no logs)';
        return readdirSync(d).map((f) => {
            const lines = readFileSync(path.join(d, f), 'utf8').split('\n');
            return `--- ${f} (tail) ---\n${lines.slice(-40).join('\n')}`;
        }).join('\n');
    };
    h.script = (...args) => runScript([...args, '--dir', h.dir], h.env);
    h.client = (transport, user) => {
        const c = transportClient(h.lb, transport, {
            token: signJwt({ sub: user, exp: nowSec() + 3600 }, HMAC_SECRET),
            opts: { minReconnectDelay: 100, maxReconnectDelay: 500 },
        });
        h.clients.push(c);
        return c;
    };

    before(async () => {
        h.dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-lc-'));
        const [lbPort, redisPort, ...nodePorts] = await freePorts(5);
        h.lbPort = lbPort;
        h.redisPort = redisPort;
        const config = merge(baseConfig(), {
            channel: { namespaces: [...NAMESPACES, LC] },
            http_stream: { enabled: true },
            sse: { enabled: true },
            uni_websocket: { enabled: true },
            uni_http_stream: { enabled: true },
            shutdown: { timeout: `${SHUTDOWN_TIMEOUT_MS}ms`, drain_delay: `${drainDelayMs}ms` },
        });
        const cfgPath = path.join(h.dir, 'rotor.json');
        writeFileSync(cfgPath, JSON.stringify(config, null, 2));
        h.env = {};
        for (const [k, v] of Object.entries(process.env)) {
            // Inherited ROTOR_* / CENTRIFUGO_* would reach the nodes and override the config.
            if (k.startsWith('ROTOR_') || k.startsWith('CENTRIFUGO_') || k.startsWith('LOCAL_CLUSTER_')) continue;
            h.env[k] = v;
        }
        Object.assign(h.env, {
            ROTOR_BIN: rotorBinary(),
            LOCAL_CLUSTER_LB: lbName,
            LOCAL_CLUSTER_PORT: String(lbPort),
            LOCAL_CLUSTER_REDIS_PORT: String(redisPort),
            LOCAL_CLUSTER_NODE_PORTS: nodePorts.join(' '),
            LOCAL_CLUSTER_STOP_TIMEOUT: '12',
        });
        const r = await runScript(['start', '--dir', h.dir, '--config', cfgPath], h.env);
        assert.equal(r.code, 0, `start failed:\n${r.out}\n${h.logs()}`);
        for (const name of h.names) {
            h.pids[name] = Number(readFileSync(path.join(h.dir, 'run', `${name}.pid`), 'utf8'));
        }
        h.nodes = nodePorts.map((p, i) => new Node(`node${i + 1}`, p, h.pids[`node${i + 1}`]));
        h.children = childrenOf(h.pids[lbName]);
    });

    afterEach(async (t) => {
        for (const stop of h.background.splice(0)) await stop();
        if (!t.passed) process.stderr.write(`\n${h.logs()}\n`);
    });

    after(async () => {
        for (const c of h.clients) c.disconnect();
        if (!h.dir) return;
        const r = await h.script('stop');
        const all = [...Object.values(h.pids), ...h.children];
        let left = [];
        await waitFor(() => {
            left = all.filter((p) => !gone(p));
            return left.length === 0;
        }, 3000, 'every process to be gone').catch(() => {});
        const st = await h.script('status');
        const problems = [];
        if (r.code !== 0) problems.push(`stop exited with ${r.code}:\n${r.out}`);
        if (left.length) problems.push(`processes left after stop: ${left.join(' ')}`);
        if (st.code !== 3) problems.push(`status after stop exited with ${st.code} (want 3):\n${st.out}`);
        for (const p of [h.lbPort, h.redisPort, ...h.nodes.map((n) => n.port)]) {
            if (!(await refused(p))) problems.push(`port ${p} still accepts connections after stop`);
        }
        if (problems.length) process.stderr.write(`\n${h.logs()}\n`);
        for (const pid of left) {
            try {
                process.kill(pid, 'SIGKILL'); // reported above; not left for the next run
            } catch {
                // gone meanwhile
            }
        }
        rmSync(h.dir, { recursive: true, force: true });
        assert.deepEqual(problems, []);
    });
    return h;
}

describe('deploy/local-cluster: three nodes behind nginx', { timeout: 100000 }, () => {
    rotorBinary();
    const h = useLocalCluster('nginx');

    it('status lists every process running; nginx answers /health and /ready itself', async () => {
        const st = await h.script('status');
        assert.equal(st.code, 0, st.out);
        for (const name of ['redis', 'node1', 'node2', 'node3', 'nginx']) {
            assert.match(st.out, new RegExp(`^${name} +running +pid ${h.pids[name]} `, 'm'));
        }
        const health = await fetch(h.lb.url('/health'));
        assert.equal(health.status, 200);
        assert.deepEqual(await health.json(), {});
        assert.equal((await fetch(h.lb.url('/ready'))).status, 200);
        // Metrics are per node, not through the balancer.
        assert.equal((await fetch(h.lb.url('/metrics'))).status, 404);
        const info = await h.nodes[0].apiResult('info');
        assert.deepEqual(info.nodes.map((n) => n.name).sort(), ['node1', 'node2', 'node3']);
    });

    it('unidirectional WebSocket and HTTP-streaming through nginx', async () => {
        const token = signJwt({ sub: 'uni', channels: ['pub:lc-uni'], exp: nowSec() + 3600 }, HMAC_SECRET);
        const ws = new WebSocket(h.lb.wsUrl(`/connection/uni_websocket?cf_connect=${encodeURIComponent(
            JSON.stringify({ token }))}`));
        const msgs = [];
        ws.on('message', (d) => msgs.push(JSON.parse(d.toString())));
        ws.on('error', () => {});
        h.clients.push({ disconnect: () => ws.terminate() });
        const ctrl = new AbortController();
        h.clients.push({ disconnect: () => ctrl.abort() });
        const res = await fetch(h.lb.url('/connection/uni_http_stream'), {
            method: 'POST', body: JSON.stringify({ token }), signal: ctrl.signal,
        });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('x-accel-buffering'), 'no');
        const stream = new StreamReader(res);
        await waitFor(() => msgs.some((m) => m.connect), 5000, 'uni_websocket connect push');
        await stream.wait((m) => m.connect, 5000);
        // Each publication reaches both at once: nothing sits in a proxy buffer.
        for (const [k, node] of h.nodes.entries()) {
            await node.apiResult('publish', { channel: 'pub:lc-uni', data: { k } });
            await waitFor(() => msgs.some((m) => m.pub?.data?.k === k), 2000, `uni_websocket pub ${k}`);
            await stream.wait((m) => m.pub?.data?.k === k, 2000);
        }
        ws.terminate();
        ctrl.abort();
        // Gone from the nodes too (nginx closed its side), so later counts start clean.
        await waitFor(async () => (await Promise.all(h.nodes.map((x) => x.numClients()))).every((v) => v === 0),
            5000, 'the unidirectional clients to leave every node');
    });

    it('clients spread over the nodes; a draining node\'s clients move and recover without loss', async (t) => {
        const ch = 'lc:feed';
        // Mixed so that every node gets a WebSocket and a streaming client when nginx
        // hands them out in turn.
        const transports = ['websocket', 'http_stream', 'sse', 'http_stream', 'sse', 'websocket'];
        const where = []; // client index -> node index
        const clients = [];
        const subs = [];
        for (const [i, transport] of transports.entries()) {
            const { client, sub, node } = await connectOne(h, transport, `lc-${i}`, ch);
            clients.push(client);
            subs.push(sub);
            where.push(node);
        }
        const perNode = h.nodes.map((_, k) => where.filter((w) => w === k).length);
        assert.ok(perNode.every((n) => n >= 1), `clients per node: ${perNode}`);
        // The info API (node registry in Redis) agrees once the nodes have published it.
        await waitFor(async () => {
            const info = await h.nodes[1].apiResult('info');
            const byName = Object.fromEntries(info.nodes.map((n) => [n.name, n.num_clients]));
            return h.nodes.every((n, k) => byName[n.name] === perNode[k]);
        }, 10000, `info to report ${perNode} clients on node1..3`);

        // Emulation without sticky sessions: the streaming clients' commands went as
        // /emulation POSTs to whichever node nginx picked, all answered.
        const emulation = () => [...readFileSync(path.join(h.dir, 'log', 'nginx.log'), 'utf8')
            .matchAll(/"POST \/emulation HTTP\/1\.1" (\d+) .*upstream=(\S+)/g)].map((m) => ({ status: Number(m[1]), upstream: m[2] }));
        const posts = emulation();
        const streaming = transports.filter((tr) => tr !== 'websocket').length;
        assert.ok(posts.length >= streaming, `only ${posts.length} /emulation POSTs in nginx's log`);
        assert.deepEqual(posts.filter((x) => x.status >= 300), [], 'failed /emulation POSTs');
        const forwarded = await Promise.all(h.nodes.map((x) => x.metric('rotor_emulation_forwarded_total')));

        // Through the API of each node, and through nginx's /api.
        const state = { n: 0 };
        for (const node of h.nodes) await node.apiResult('publish', { channel: ch, data: { n: ++state.n } });
        {
            const res = await fetch(h.lb.url('/api/publish'), {
                method: 'POST',
                headers: { 'X-API-Key': API_KEY },
                body: JSON.stringify({ channel: ch, data: { n: ++state.n } }),
            });
            assert.equal(res.status, 200, await res.text());
        }
        await Promise.all(subs.map((s) => s.rec.wait('publication', () => true, 5000, state.n)));

        // Drain the node with both a WebSocket and a streaming client if there is one.
        const mixed = (k) => new Set(where.flatMap((w, i) => (w === k ? [transports[i] === 'websocket'] : []))).size;
        const victim = [0, 1, 2].sort((a, b) => mixed(b) - mixed(a) || perNode[b] - perNode[a])[0];
        const V = h.nodes[victim];
        const survivors = h.nodes.filter((_, k) => k !== victim);
        const moved = where.flatMap((w, i) => (w === victim ? [i] : []));
        const stayed = where.flatMap((w, i) => (w === victim ? [] : [i]));

        // Publications keep coming through the other nodes during the whole drain.
        const stopPublisher = startPublisher(h, survivors, ch, state);
        await sleep(150);

        // /ready of the victim, polled directly: 503 must come before the refusal.
        const readyLog = [];
        let polling = true;
        const poller = (async () => {
            while (polling) {
                const status = await freshGet(V.port, '/ready');
                readyLog.push({ t: Date.now(), status }); // when the answer (or error) came
                if (typeof status !== 'number') return;
                await sleep(20);
            }
        })();
        h.background.push(async () => {
            polling = false;
            await poller;
        });
        const t0 = Date.now();
        const nAtSignal = state.n;
        process.kill(V.pid, 'SIGTERM');

        await waitFor(() => gone(V.pid), SHUTDOWN_TIMEOUT_MS + 2000, `${V.name} to exit`);
        const exitedAfter = Date.now() - t0;
        const publishedDuringDrain = state.n - nAtSignal;
        polling = false;
        await poller;
        const first503 = readyLog.find((r) => r.status === 503);
        const refusedAt = readyLog.find((r) => typeof r.status !== 'number');
        const trace = readyLog.map((r) => `${r.t - t0}:${r.status}`).join(' ');
        assert.ok(first503, `/ready never answered 503: ${trace}`);
        assert.ok(first503.t - t0 < DRAIN_DELAY_MS / 2, `/ready 503 only after ${first503.t - t0} ms: ${trace}`);
        assert.ok(readyLog.slice(0, readyLog.indexOf(first503)).every((r) => r.status === 200), trace);
        assert.ok(readyLog.slice(readyLog.indexOf(first503) + 1).every((r) => r.status === 503 || r === refusedAt),
            `/ready after the first 503: ${trace}`);
        assert.ok(refusedAt, `${V.name} never stopped listening before it exited: ${trace}`);
        // Refused, or reset when the connection sat in the accept queue as it closed.
        assert.ok(['ECONNREFUSED', 'ECONNRESET'].includes(refusedAt.status), trace);
        assert.ok(refusedAt.t - t0 >= DRAIN_DELAY_MS - 100,
            `${V.name} stopped listening ${refusedAt.t - t0} ms after SIGTERM, before drain_delay: ${trace}`);
        assert.ok(exitedAfter < SHUTDOWN_TIMEOUT_MS, `${V.name} exited ${exitedAfter} ms after SIGTERM`);
        assert.match(readFileSync(path.join(h.dir, 'log', `${V.name}.log`), 'utf8'), /shutdown complete/);

        // The victim's clients got 3001 and are back, through nginx, on the other nodes,
        // with their subscription recovered; the others never noticed.
        for (const i of moved) {
            const c = clients[i];
            const why = await c.rec.wait('connecting', (x) => x.code === 3001, 5000)
                .catch((e) => { throw new Error(`client ${i} (${transports[i]}) on ${V.name}: ${e.message}; where ${where}`); });
            assert.equal(why.reason, 'shutdown');
            await c.rec.wait('connected', () => true, 10000, 2);
            const again = await subs[i].rec.wait('subscribed', () => true, 10000, 2);
            assert.equal(again.wasRecovering, true, `client ${i} (${transports[i]})`);
            assert.equal(again.recovered, true, `client ${i} (${transports[i]})`);
            assert.equal(again.streamPosition.epoch, subs[i].firstCtx.streamPosition.epoch);
        }
        for (const i of stayed) {
            assert.equal(clients[i].rec.count('connecting', (x) => x.code === 3001), 0,
                `client ${i} on a surviving node was disconnected`);
        }
        await waitFor(async () => {
            const counts = await Promise.all(survivors.map((s) => s.numClients()));
            return counts.reduce((a, b) => a + b, 0) === clients.length;
        }, 5000, `the survivors to hold all ${clients.length} clients`);

        // A little more live traffic after the move, then every client has everything.
        await sleep(300);
        await stopPublisher();
        const total = state.n;
        await expectAll(subs, transports.map((tr, i) => `client ${i} (${tr})`), total);
        assert.ok(moved.length >= 1);
        assert.ok(publishedDuringDrain >= 10, `only ${publishedDuringDrain} publications during the drain`);
        t.diagnostic(`clients per node ${perNode}; drained ${V.name} holding ` +
            `${moved.map((i) => transports[i]).join(', ')}; ${total} publications, ` +
            `${publishedDuringDrain} during the drain; /ready 503 after ${first503.t - t0} ms, ` +
            `listener closed after ${refusedAt.t - t0} ms, exit after ${exitedAfter} ms; /emulation POSTs ` +
            `by upstream ${JSON.stringify(countBy(emulation().map((x) => x.upstream)))}, forwarded per node ${forwarded}`);

        const st = await h.script('status');
        assert.equal(st.code, 1, `status with one node down: ${st.out}`);
        assert.match(st.out, new RegExp(`^${V.name} +stopped`, 'm'));
    });
});

describe('deploy/local-cluster: the same behind HAProxy', { timeout: 100000 }, () => {
    // Longer than HAProxy's fall * inter (2 s) so the check sees the 503 before the close.
    const DRAIN_MS = 4000;
    const h = useLocalCluster('haproxy', { drainDelayMs: DRAIN_MS });

    it('HAProxy answers /health and /ready, and only routes the client endpoints', async () => {
        const st = await h.script('status');
        assert.equal(st.code, 0, st.out);
        assert.match(st.out, new RegExp(`^haproxy +running +pid ${h.pids.haproxy} `, 'm'));
        const health = await fetch(h.lb.url('/health'));
        assert.equal(health.status, 200);
        assert.deepEqual(await health.json(), {});
        assert.equal((await fetch(h.lb.url('/ready'))).status, 200);
        assert.equal((await fetch(h.lb.url('/metrics'))).status, 404);
        const res = await fetch(h.lb.url('/api/info'), { method: 'POST', headers: { 'X-API-Key': API_KEY }, body: '{}' });
        assert.equal(res.status, 200, await res.text());
    });

    it('a draining node fails the /ready check: new clients go elsewhere, its own move and recover', async (t) => {
        const ch = 'lc:ha';
        const transports = ['websocket', 'sse', 'http_stream', 'websocket', 'sse', 'http_stream'];
        const where = [];
        const clients = [];
        const subs = [];
        const labels = [];
        for (const [i, transport] of transports.entries()) {
            const { client, sub, node } = await connectOne(h, transport, `ha-${i}`, ch);
            clients.push(client);
            subs.push(sub);
            where.push(node);
            labels.push(`client ${i} (${transport})`);
        }
        const perNode = h.nodes.map((_, k) => where.filter((w) => w === k).length);
        assert.ok(perNode.every((n) => n >= 1), `clients per node: ${perNode}`);
        const state = { n: 0 };
        for (const node of h.nodes) await node.apiResult('publish', { channel: ch, data: { n: ++state.n } });
        await Promise.all(subs.map((s) => s.rec.wait('publication', () => true, 5000, state.n)));

        const victim = perNode.indexOf(Math.max(...perNode));
        const V = h.nodes[victim];
        const survivors = h.nodes.filter((_, k) => k !== victim);
        const moved = where.flatMap((w, i) => (w === victim ? [i] : []));
        const stopPublisher = startPublisher(h, survivors, ch, state);
        await sleep(150);
        const t0 = Date.now();
        process.kill(V.pid, 'SIGTERM');

        // Once the check has seen the 503 (2 failures, 1 s apart), new clients land on
        // the other nodes only, and are served (no 3001 from the draining node).
        await sleep(2600);
        assert.equal(gone(V.pid), false, `${V.name} already exited`);
        const vBefore = await V.numClients();
        for (const [j, transport] of ['websocket', 'sse', 'websocket'].entries()) {
            const { client, sub, node } = await connectOne(h, transport, `ha-late-${j}`, ch);
            assert.notEqual(node, victim, `late ${transport} client sent to the draining ${V.name}`);
            assert.equal(client.rec.count('connecting', (x) => x.code === 3001), 0);
            subs.push(sub);
            labels.push(`late client ${j} (${transport})`);
        }
        assert.ok(Date.now() - t0 < DRAIN_MS - 200, 'the late clients came after the drain delay: slow machine');
        assert.equal(await V.numClients(), vBefore);

        await waitFor(() => gone(V.pid), SHUTDOWN_TIMEOUT_MS + 2000, `${V.name} to exit`);
        for (const i of moved) {
            await clients[i].rec.wait('connecting', (x) => x.code === 3001, 5000);
            const again = await subs[i].rec.wait('subscribed', () => true, 10000, 2);
            assert.equal(again.recovered, true, labels[i]);
        }
        await sleep(300);
        await stopPublisher();
        // The late clients subscribed mid-stream: they must have everything from their
        // first position on; the others everything from 1.
        const early = subs.slice(0, transports.length);
        await expectAll(early, labels, state.n);
        for (const [j, s] of subs.slice(transports.length).entries()) {
            const from = s.firstCtx.streamPosition.offset + 1;
            await s.rec.wait('publication', () => true, 10000, state.n - from + 1);
            await sleep(100);
            assert.deepEqual(s.rec.all('publication').map((p) => p.data.n), range(from, state.n),
                labels[transports.length + j]);
        }
        t.diagnostic(`clients per node ${perNode}; drained ${V.name} holding ` +
            `${moved.map((i) => transports[i]).join(', ')}; ${state.n} publications`);
    });
});
