// Memory per idle connection for every transport. For each transport: starts a fresh rotor
// (127.0.0.1, memory engine, workers 2, log warn, client.insecure, namespace "bench" with
// allow_subscribe_for_client, only that transport's config key turned on), samples VmRSS,
// RssAnon and VmHWM from /proc/<pid>/status, opens N connections (each connected and
// subscribed to one of CHANNELS channels bench:0..), waits until every connection has its
// connect and subscribe reply and /metrics shows centrifugo_node_num_clients = N and
// centrifugo_node_num_subscriptions = N, samples again, closes the clients, stops rotor with
// SIGTERM and checks it exits 0. Prints one table: (loaded - baseline) / N bytes.
//
// Run through tests/bench/idle_transports.sh (which bounds the total time); directly:
//   node tests/bench/idle_transports.mjs ROTOR_BIN
// Environment: N [2000], CHANNELS [100], RATE connects/s [1000], SETTLE s [2],
// TRANSPORTS comma list [all], GRPC_STREAMS_PER_CONN [50] (rotor allows 100 per HTTP/2
// connection), TRANSPORT_TIMEOUT s per transport [60].
//
// Subscriptions: bidirectional transports send connect then subscribe (separate commands,
// as centrifuge-js does); unidirectional ones put the channel in the connect request's subs
// map, which insecure mode accepts (PROTOCOL.md §10.5). Clients answer pings (bidirectional
// only; uni transports get pings they need not answer). The client is this Node process;
// only rotor's memory is measured.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
// The npm packages of the integration tests (npm ci in tests/integration).
const require = createRequire(path.join(repo, 'tests/integration/package.json'));
const WebSocket = require('ws');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const ROTOR = process.argv[2] || process.env.ROTOR_BIN || path.join(repo, 'build/rotor');
const N = int('N', 2000);
const CHANNELS = int('CHANNELS', 100);
const RATE = int('RATE', 1000);
const SETTLE = int('SETTLE', 2);
const GRPC_PER_CONN = int('GRPC_STREAMS_PER_CONN', 50);
const TRANSPORT_TIMEOUT = int('TRANSPORT_TIMEOUT', 60);
const ALL = ['websocket', 'websocket_pb', 'http_stream', 'sse', 'uni_websocket', 'uni_sse',
    'uni_http_stream', 'uni_grpc'];
const TRANSPORTS = process.env.TRANSPORTS ? process.env.TRANSPORTS.split(',') : ALL;

function int(name, def) {
    const v = process.env[name];
    if (v === undefined || v === '') return def;
    if (!/^[0-9]+$/.test(v) || Number(v) < 1) throw new Error(`${name} must be a positive integer`);
    return Number(v);
}
if (N < 2 || N > 15000) throw new Error('N must be 2..15000 (open-files limit 20000 per process)');
for (const t of TRANSPORTS) if (!ALL.includes(t)) throw new Error(`unknown transport ${t}`);
if (GRPC_PER_CONN > 100) throw new Error('GRPC_STREAMS_PER_CONN: rotor allows 100 streams per connection');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const channel = (i) => `bench:${i % CHANNELS}`;

// ---------------------------------------------------------------------------------------
// rotor

/** A free loopback port below the ephemeral range, so the client's sockets cannot take it. */
async function freePort() {
    for (let left = 50; left > 0; left--) {
        const p = 20000 + Math.floor(Math.random() * 10000);
        const ok = await new Promise((resolve) => {
            const s = net.createServer();
            s.once('error', () => resolve(false));
            s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
        });
        if (ok) return p;
    }
    throw new Error('no free port');
}

function status(pid) {
    const out = {};
    for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
        const m = /^(VmRSS|RssAnon|RssFile|VmHWM):\s+(\d+) kB/.exec(line);
        if (m) out[m[1]] = Number(m[2]);
    }
    return out;
}

async function metrics(port) {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    const text = await res.text();
    const get = (name) => {
        const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
        return m ? Number(m[1]) : NaN;
    };
    return {
        clients: get('centrifugo_node_num_clients'),
        subs: get('centrifugo_node_num_subscriptions'),
        channels: get('centrifugo_node_num_channels'),
    };
}

/** Established TCP connections whose server side is one of rotor's ports. */
function tcpCount(ports) {
    const filter = ports.map((p) => `sport = :${p}`).join(' or ');
    try {
        const out = execFileSync('ss', ['-Htn', 'state', 'established', `( ${filter} )`],
            { encoding: 'utf8', maxBuffer: 64 << 20 });
        return out.split('\n').filter((l) => l.trim()).length;
    } catch {
        return NaN;
    }
}

// The running rotor, stopped if this process is told to stop (the wrapper's timeout).
let current = null;
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(sig, () => {
        if (current && current.exitCode === null) current.kill('SIGTERM');
        process.stderr.write(`idle_transports: ${sig}, rotor stopped\n`);
        process.exit(1);
    });
}

async function startRotor(dir, transport, port, grpcPort) {
    const cfg = {
        http_server: { address: '127.0.0.1', port },
        workers: 2,
        log: { level: 'warn' },
        engine: { type: 'memory' },
        client: { insecure: true },
        health: { enabled: true },
        prometheus: { enabled: true },
        channel: { namespaces: [{ name: 'bench', allow_subscribe_for_client: true }] },
        shutdown: { timeout: '5s' },
    };
    const key = transport === 'websocket_pb' ? null : transport === 'websocket' ? null : transport;
    if (key === 'uni_grpc') cfg.uni_grpc = { enabled: true, address: '127.0.0.1', port: grpcPort };
    else if (key) cfg[key] = { enabled: true };
    const file = path.join(dir, `${transport}.json`);
    writeFileSync(file, JSON.stringify(cfg, null, 2));
    const log = [];
    // rotor reads ROTOR_* variables as config: give it none (ROTOR_BIN is ours).
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ROTOR_')));
    const proc = spawn(ROTOR, ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'], env });
    current = proc;
    proc.stdout.on('data', (d) => log.push(d.toString()));
    proc.stderr.on('data', (d) => log.push(d.toString()));
    const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    proc.exitedP = exited;
    proc.log = log;
    for (let i = 0; i < 100; i++) {
        try {
            const r = await fetch(`http://127.0.0.1:${port}/health`);
            if (r.ok) return proc;
        } catch {
            // not yet
        }
        if (proc.exitCode !== null) break;
        await sleep(100);
    }
    proc.kill('SIGKILL');
    throw new Error(`rotor did not answer /health: ${log.join('')}`);
}

async function stopRotor(proc) {
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitedP;
    proc.kill('SIGTERM');
    const r = await Promise.race([proc.exitedP, sleep(10000).then(() => null)]);
    if (r) return r;
    proc.kill('SIGKILL');
    const k = await proc.exitedP;
    return { ...k, killed: true };
}

// ---------------------------------------------------------------------------------------
// Clients. Each open function starts one connection for index i and calls st.ready() once
// it has both its connect and subscribe reply (uni: the connect push with the channel in
// subs), st.fail(msg) on an error or an early close. It returns a close function.

const CONNECT = JSON.stringify({ connect: {}, id: 1 });
const subscribeCmd = (i) => JSON.stringify({ subscribe: { channel: channel(i) }, id: 2 });

/** Handles one JSON reply of a bidirectional session; send(cmdText) sends a command. */
function jsonSession(i, st, send) {
    let got = 0;
    return (text) => {
        if (text === '' || text === '\r') return;
        if (text === '{}') { // server ping
            send('{}');
            st.pings++;
            return;
        }
        let r;
        try {
            r = JSON.parse(text);
        } catch {
            st.fail(`bad JSON ${text.slice(0, 80)}`);
            return;
        }
        if (r.error) {
            st.fail(`error reply ${text.slice(0, 200)}`);
        } else if (r.id === 1 && r.connect) {
            send(subscribeCmd(i), r.connect);
        } else if (r.id === 2 && r.subscribe) {
            if (++got === 1) st.ready();
        } else if (r.push?.disconnect) {
            st.fail(`disconnect push ${text.slice(0, 200)}`);
        }
    };
}

function openWebsocket(port, i, st) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/connection/websocket`, { perMessageDeflate: false });
    const onReply = jsonSession(i, st, (t) => ws.send(t));
    ws.on('open', () => ws.send(CONNECT));
    ws.on('message', (d) => {
        for (const line of d.toString().split('\n')) onReply(line);
    });
    ws.on('error', (e) => st.fail(`ws error ${e.message}`));
    ws.on('close', (code, reason) => st.closed(`ws close ${code} ${reason}`));
    return () => ws.terminate();
}

let pb = null;
function pbTypes() {
    if (!pb) {
        const root = protobuf.loadSync(path.join(repo, 'node/proto/client.proto'));
        pb = {
            Command: root.lookupType('centrifugal.centrifuge.protocol.Command'),
            Reply: root.lookupType('centrifugal.centrifuge.protocol.Reply'),
        };
    }
    return pb;
}

function openWebsocketPb(port, i, st) {
    const { Command, Reply } = pbTypes();
    const ws = new WebSocket(`ws://127.0.0.1:${port}/connection/websocket`, 'centrifuge-protobuf',
        { perMessageDeflate: false });
    const enc = (obj) => Command.encodeDelimited(Command.create(obj)).finish();
    let got = 0;
    ws.on('open', () => {
        if (ws.protocol !== 'centrifuge-protobuf') st.fail(`subprotocol ${ws.protocol}`);
        ws.send(enc({ id: 1, connect: {} }));
    });
    ws.on('message', (d, isBinary) => {
        if (!isBinary) {
            st.fail('text frame on a Protobuf connection');
            return;
        }
        const reader = protobuf.Reader.create(d);
        while (reader.pos < reader.len) {
            const r = Reply.decodeDelimited(reader);
            if (r.error) st.fail(`error reply ${JSON.stringify(r.error)}`);
            else if (r.id === 1 && r.connect) ws.send(enc({ id: 2, subscribe: { channel: channel(i) } }));
            else if (r.id === 2 && r.subscribe) {
                if (++got === 1) st.ready();
            } else if (r.push?.disconnect) st.fail(`disconnect push ${JSON.stringify(r.push)}`);
            else if (!r.id && !r.push) { // empty reply: ping
                ws.send(new Uint8Array([0]));
                st.pings++;
            }
        }
    });
    ws.on('error', (e) => st.fail(`ws error ${e.message}`));
    ws.on('close', (code, reason) => st.closed(`ws close ${code} ${reason}`));
    return () => ws.terminate();
}

// /emulation POSTs go through a small keep-alive pool; it is emptied before the loaded sample.
let emulationAgent = null;
function emulationPost(port, session, node, data, st) {
    const body = JSON.stringify({ session, node, data });
    const req = http.request({
        host: '127.0.0.1', port, path: '/emulation', method: 'POST', agent: emulationAgent,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
        res.resume();
        if (res.statusCode !== 204 && res.statusCode !== 200) st.fail(`/emulation ${res.statusCode}`);
    });
    req.on('error', (e) => st.fail(`/emulation ${e.message}`));
    req.end(body);
}

/** Splits a streamed body into items: lines (HTTP-streaming) or SSE events' data. */
function streamSplitter(sse, onItem) {
    let buf = '';
    return (chunk) => {
        buf += chunk;
        const sep = sse ? '\n\n' : '\n';
        let k;
        while ((k = buf.indexOf(sep)) >= 0) {
            const item = buf.slice(0, k);
            buf = buf.slice(k + sep.length);
            if (!sse) {
                onItem(item);
                continue;
            }
            for (const line of item.split(/\r?\n/)) {
                if (line.startsWith('data: ')) onItem(line.slice(6));
                else if (line.startsWith('data:')) onItem(line.slice(5));
            }
        }
    };
}

/** One long HTTP request whose response is the stream; returns the close function. */
function streamRequest(port, opts, body, st, onText) {
    const req = http.request({ host: '127.0.0.1', port, agent: false, ...opts }, (res) => {
        if (res.statusCode !== 200) {
            st.fail(`${opts.path.split('?')[0]} status ${res.statusCode}`);
            res.resume();
            return;
        }
        res.setEncoding('utf8');
        res.on('data', onText);
        res.on('end', () => st.closed('stream ended'));
        res.on('error', () => st.closed('stream error'));
    });
    req.on('error', (e) => st.fail(`${opts.path.split('?')[0]} ${e.message}`));
    if (body !== null) req.end(body);
    else req.end();
    return () => req.destroy();
}

/** The reply handler of an emulated session: commands after connect go through
 * /emulation with the session and node the connect reply named. */
function emulatedSession(port, i, st) {
    let session = null;
    let node = '';
    return jsonSession(i, st, (t, connect) => {
        if (connect) {
            session = connect.session;
            node = connect.node ?? '';
        }
        if (!session) {
            st.fail('connect reply without session');
            return;
        }
        emulationPost(port, session, node, t, st);
    });
}

function openHttpStream(port, i, st) {
    return streamRequest(port, {
        path: '/connection/http_stream', method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(CONNECT) },
    }, CONNECT, st, streamSplitter(false, emulatedSession(port, i, st)));
}

function openSse(port, i, st) {
    return streamRequest(port, {
        path: `/connection/sse?cf_connect=${encodeURIComponent(CONNECT)}`, method: 'GET',
        headers: { Accept: 'text/event-stream' },
    }, null, st, streamSplitter(true, emulatedSession(port, i, st)));
}

const uniConnect = (i) => JSON.stringify({ subs: { [channel(i)]: {} } });

/** Handles one JSON push of a uni stream. */
function uniPush(i, st) {
    return (text) => {
        if (text === '' || text === '{}' || text === '\r') return; // ping
        let p;
        try {
            p = JSON.parse(text);
        } catch {
            st.fail(`bad JSON ${text.slice(0, 80)}`);
            return;
        }
        if (p.connect) {
            if (p.connect.subs && channel(i) in p.connect.subs) st.ready();
            else st.fail(`connect push without the channel ${text.slice(0, 200)}`);
        } else if (p.disconnect) st.fail(`disconnect ${text.slice(0, 200)}`);
    };
}

function openUniWebsocket(port, i, st) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/connection/uni_websocket?cf_connect=${
        encodeURIComponent(uniConnect(i))}`, { perMessageDeflate: false });
    const onPush = uniPush(i, st);
    ws.on('message', (d) => onPush(d.toString()));
    ws.on('error', (e) => st.fail(`ws error ${e.message}`));
    ws.on('close', (code, reason) => st.closed(`ws close ${code} ${reason}`));
    return () => ws.terminate();
}

function openUniSse(port, i, st) {
    return streamRequest(port, {
        path: `/connection/uni_sse?cf_connect=${encodeURIComponent(uniConnect(i))}`, method: 'GET',
        headers: { Accept: 'text/event-stream' },
    }, null, st, streamSplitter(true, uniPush(i, st)));
}

function openUniHttpStream(port, i, st) {
    const body = uniConnect(i);
    return streamRequest(port, {
        path: '/connection/uni_http_stream', method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, body, st, streamSplitter(false, uniPush(i, st)));
}

let grpcSvc = null;
let grpcClients = [];
function openUniGrpc(grpcPort, i, st) {
    if (!grpcSvc) {
        const def = protoLoader.loadSync(path.join(repo, 'node/proto/unistream.proto'), {
            keepCase: true, longs: Number, enums: String, defaults: false, oneofs: true,
        });
        grpcSvc = grpc.loadPackageDefinition(def).centrifugal.centrifugo.unistream.CentrifugoUniStream;
    }
    const k = Math.floor(i / GRPC_PER_CONN);
    if (!grpcClients[k]) {
        // A local subchannel pool: each client object gets its own HTTP/2 connection.
        grpcClients[k] = new grpcSvc(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(),
            { 'grpc.use_local_subchannel_pool': 1 });
    }
    const call = grpcClients[k].consume({ subs: { [channel(i)]: {} } });
    call.on('data', (p) => {
        if (p.connect) {
            if (p.connect.subs && channel(i) in p.connect.subs) st.ready();
            else st.fail(`connect push without the channel ${JSON.stringify(p)}`);
        } else if (p.disconnect) st.fail(`disconnect ${JSON.stringify(p)}`);
    });
    call.on('error', (e) => {
        if (e.code !== grpc.status.CANCELLED) st.fail(`grpc ${e.code} ${e.details}`);
    });
    call.on('end', () => st.closed('grpc stream ended'));
    return () => call.cancel();
}

const OPEN = {
    websocket: openWebsocket,
    websocket_pb: openWebsocketPb,
    http_stream: openHttpStream,
    sse: openSse,
    uni_websocket: openUniWebsocket,
    uni_sse: openUniSse,
    uni_http_stream: openUniHttpStream,
    uni_grpc: openUniGrpc,
};

// ---------------------------------------------------------------------------------------

async function measure(dir, transport) {
    const t0 = Date.now();
    const deadline = t0 + TRANSPORT_TIMEOUT * 1000;
    const port = await freePort();
    let grpcPort = await freePort();
    while (grpcPort === port) grpcPort = await freePort();
    const row = { transport, n: N, error: null, load: os.loadavg()[0] };
    const rotor = await startRotor(dir, transport, port, grpcPort);
    const closers = [];
    const st = {
        ready: 0, errors: 0, closedCount: 0, pings: 0, firstError: null, measuring: true,
        readyIdx: new Set(),
    };
    emulationAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    grpcClients = [];
    try {
        await sleep(1000);
        const base = status(rotor.pid);
        const baseM = await metrics(port);
        const target = transport === 'uni_grpc' ? grpcPort : port;
        const tStart = Date.now();
        let pace = tStart;
        let paused = 0;
        const HALF = Math.floor(N / 2);
        const allReady = async (n) => {
            while (st.ready < n) {
                if (st.errors || st.closedCount) throw new Error(`client failure: ${st.firstError}`);
                if (Date.now() > deadline - 12000) {
                    throw new Error(`only ${st.ready}/${n} ready in time (${st.firstError ?? 'no error'})`);
                }
                await sleep(50);
            }
            emulationAgent.destroy(); // no idle keep-alive /emulation sockets in a sample
            emulationAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
            let mm = await metrics(port);
            while ((mm.clients !== n || mm.subs !== n) && Date.now() < deadline - 10000) {
                await sleep(100);
                mm = await metrics(port);
            }
        };
        for (let i = 0; i < N; i++) {
            const s = {
                done: false,
                ready() {
                    if (this.done) return;
                    this.done = true;
                    st.ready++;
                },
                fail(msg) {
                    st.errors++;
                    st.firstError ??= `#${i}: ${msg}`;
                },
                closed(msg) {
                    if (!st.measuring) return;
                    st.closedCount++;
                    st.firstError ??= `#${i}: ${msg}`;
                },
                get pings() { return st.pings; },
                set pings(v) { st.pings = v; },
            };
            closers.push(OPEN[transport](target, i, s));
            // Pace at RATE/s, yielding so replies are handled while connecting.
            const due = pace + ((i + 1) * 1000) / RATE;
            const wait = due - Date.now();
            if (wait > 0) await sleep(wait);
            else if (i % 100 === 99) await sleep(0);
            if (Date.now() > deadline - 15000) throw new Error(`only ${i + 1} opened in time`);
            if (i + 1 === HALF) {
                const pauseAt = Date.now();
                // The mid sample: half the connections, idle, for the marginal cost.
                await allReady(HALF);
                await sleep(SETTLE * 1000);
                row.mid = status(rotor.pid);
                row.midM = await metrics(port);
                paused += Date.now() - pauseAt;
                pace = Date.now() - ((i + 1) * 1000) / RATE; // pace on from here
            }
        }
        await allReady(N);
        row.setup = (Date.now() - tStart - paused) / 1000; // without the mid-sample pause
        await sleep(SETTLE * 1000);
        const loaded = status(rotor.pid);
        const m = await metrics(port);
        row.tcp = tcpCount([port, grpcPort]);
        if (st.errors || st.closedCount) throw new Error(`client failure: ${st.firstError}`);
        Object.assign(row, {
            base, loaded, baseM, m,
            rssPer: ((loaded.VmRSS - base.VmRSS) * 1024) / N,
            anonPer: ((loaded.RssAnon - base.RssAnon) * 1024) / N,
            rssMarg: ((loaded.VmRSS - row.mid.VmRSS) * 1024) / (N - HALF),
            anonMarg: ((loaded.RssAnon - row.mid.RssAnon) * 1024) / (N - HALF),
            grpcConns: transport === 'uni_grpc' ? grpcClients.length : null,
            pings: st.pings,
        });
        if (m.clients !== N || m.subs !== N) {
            row.error = `metrics: num_clients=${m.clients} num_subscriptions=${m.subs}, expected ${N}`;
        }
    } catch (e) {
        row.error = e.message;
    } finally {
        st.measuring = false;
        for (const c of closers) {
            try {
                c();
            } catch {
                // already gone
            }
        }
        for (const c of grpcClients) c?.close();
        emulationAgent.destroy();
        await sleep(300);
        row.exit = await stopRotor(rotor);
        row.elapsed = (Date.now() - t0) / 1000;
        const log = rotor.log.join('').split('\n').filter((l) => l.trim() &&
            !/open files limit is|no http_api.key configured|insecure/.test(l));
        row.log = log.slice(0, 10);
    }
    return row;
}

const kib = (v) => (v === undefined ? '-' : String(v));
const fmt = (v) => (v === undefined || Number.isNaN(v) ? '-' : Math.round(v).toString());

async function main() {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-idle-transports.'));
    const rows = [];
    let version = '';
    try {
        version = execFileSync(ROTOR, ['version'], { encoding: 'utf8' }).split('\n')[0];
    } catch {
        version = '(rotor version failed)';
    }
    console.log(`machine   nproc=${os.cpus().length} mem=${(os.totalmem() / 2 ** 30).toFixed(1)}GiB kernel=${os.release()} node=${process.version}`);
    console.log(`rotor     ${version} binary=${ROTOR} workers=2 engine=memory`);
    console.log(`settings  N=${N} CHANNELS=${CHANNELS} RATE=${RATE}/s SETTLE=${SETTLE}s GRPC_STREAMS_PER_CONN=${GRPC_PER_CONN}`);
    try {
        for (const t of TRANSPORTS) {
            const r = await measure(dir, t);
            rows.push(r);
            const ex = r.exit ? `exit=${r.exit.code ?? r.exit.signal}${r.exit.killed ? '(killed)' : ''}` : '';
            process.stderr.write(`${t}: ${r.error ?? `${fmt(r.rssPer)} B/conn VmRSS, ${fmt(r.anonPer)} B/conn RssAnon`} ${ex} ${r.elapsed}s\n`);
        }
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
    console.log('');
    console.log('VmRSS/RssAnon in KiB; Δ/N = (loaded - baseline) / N in bytes; marginal = (loaded - mid) / (N - N/2) in bytes, mid sampled at N/2.');
    console.log('');
    console.log('| transport | N | VmRSS base | VmRSS mid | VmRSS loaded | VmHWM | RssAnon base | RssAnon loaded | **VmRSS Δ/N** | **RssAnon Δ/N** | VmRSS marginal | RssAnon marginal | clients/subs | TCP conns | setup s | load1 | rotor exit |');
    console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
    let ok = true;
    for (const r of rows) {
        const exit = r.exit ? `${r.exit.code ?? r.exit.signal}${r.exit.killed ? ' killed' : ''}` : '-';
        if (r.error || !r.exit || r.exit.code !== 0) ok = false;
        const name = r.transport === 'uni_grpc' ? `uni_grpc (${r.grpcConns ?? '?'} HTTP/2 conns)` : r.transport;
        console.log(`| ${[name, r.n, kib(r.base?.VmRSS), kib(r.mid?.VmRSS), kib(r.loaded?.VmRSS),
            kib(r.loaded?.VmHWM), kib(r.base?.RssAnon), kib(r.loaded?.RssAnon),
            `**${fmt(r.rssPer)}**`, `**${fmt(r.anonPer)}**`, fmt(r.rssMarg), fmt(r.anonMarg),
            r.m ? `${r.m.clients}/${r.m.subs}` : '-', fmt(r.tcp), r.setup?.toFixed(1) ?? '-',
            r.load.toFixed(2), exit].join(' | ')} |`);
    }
    for (const r of rows) {
        if (r.error) console.log(`error ${r.transport}: ${r.error}`);
        if (r.log?.length) console.log(`rotor log ${r.transport}:\n  ${r.log.join('\n  ')}`);
    }
    console.log(`load average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    process.exitCode = ok ? 0 : 1;
}

await main();
