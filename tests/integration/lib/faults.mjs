// Fault-injection helpers (issue 7): a paced publish burst through the server API that
// records what every publish answered, a checker that replays what a centrifuge-js
// subscription saw against the acknowledged publications and the history, Redis inside a
// network namespace behind a veth pair (partitions by iptables DROP: no RST, a real black
// hole), and /proc readings (RSS, open fds) of a process.
//
// Nothing here edits the existing lib files; it builds on them.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { connectedClient, subscribed } from './clients.mjs';
import { REDIS_SERVER, pingOnce, waitReady } from './redis.mjs';
import { sleep, waitFor } from './rotor.mjs';

// ---------------------------------------------------------------------------------------
// Publish burst.

/** Outcomes of one API publish:
 *  ok       HTTP 200 with {result: {offset, epoch}}: acknowledged, must never be lost
 *  error    HTTP 200 with {error}: not acknowledged; may or may not have been applied
 *  refused  connection refused before anything was sent: certainly not applied
 *  unknown  the request died on the way (reset, timeout): may or may not have been applied */
export const OUTCOMES = ['ok', 'error', 'refused', 'unknown'];

function classifyFetchError(e) {
    const code = e?.cause?.code ?? e?.code ?? '';
    return code === 'ECONNREFUSED' ? 'refused' : 'unknown';
}

/** One POST /api/publish; resolves a record {n, channel, port, outcome, offset, epoch,
 * error, t0, t1} and never rejects. */
export async function publishOnce(node, channel, n, { timeoutMs = 5000 } = {}) {
    const rec = { n, channel, port: node.port, outcome: 'unknown', t0: Date.now() };
    try {
        const res = await fetch(node.url('/api/publish'), {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'X-API-Key': node.apiKey },
            body: JSON.stringify({ channel, data: { n, ch: channel } }),
            signal: AbortSignal.timeout(timeoutMs),
        });
        const text = await res.text();
        let reply = null;
        try {
            reply = JSON.parse(text);
        } catch {
            // reported below
        }
        if (res.status === 200 && reply?.result && Number.isInteger(reply.result.offset)) {
            rec.outcome = 'ok';
            rec.offset = reply.result.offset;
            rec.epoch = reply.result.epoch;
        } else if (res.status === 200 && reply?.error) {
            rec.outcome = 'error';
            rec.error = reply.error;
        } else {
            rec.outcome = 'unknown';
            rec.error = `HTTP ${res.status}: ${text.slice(0, 200)}`;
        }
    } catch (e) {
        rec.outcome = classifyFetchError(e);
        rec.error = `${e.name}: ${e.cause?.code ?? e.message}`;
    }
    rec.t1 = Date.now();
    return rec;
}

/** Publishes `total` publications spread evenly over `durationMs` with at most
 * `concurrency` in flight, round-robin over channels and over the nodes nodes() returns
 * at the moment of each request (so a restarted node is used again). Publication i has
 * data {n: i, ch}. onProgress(i) runs before publication i is sent (fault schedules hook
 * in there). Resolves the records in n order. */
export async function publishBurst({ nodes, channels, total, durationMs, concurrency = 8, timeoutMs = 5000 }) {
    const records = new Array(total);
    const start = Date.now();
    let next = 0;
    const worker = async () => {
        for (;;) {
            const i = next++;
            if (i >= total) return;
            const due = start + Math.floor((i * durationMs) / total);
            const wait = due - Date.now();
            if (wait > 0) await sleep(wait);
            const list = nodes();
            const node = list[i % list.length];
            records[i] = await publishOnce(node, channels[i % channels.length], i, { timeoutMs });
        }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return records;
}

/** Counts of each outcome in records. */
export function tally(records) {
    const t = Object.fromEntries(OUTCOMES.map((o) => [o, 0]));
    for (const r of records) t[r.outcome]++;
    return t;
}

/** Runs async steps at given times (ms after the call), in order; resolves when all ran.
 * steps: [{at, run}]. */
export async function schedule(steps) {
    const start = Date.now();
    for (const s of steps) {
        const wait = start + s.at - Date.now();
        if (wait > 0) await sleep(wait);
        s.t = Date.now() - start;
        await s.run();
        s.done = Date.now() - start;
    }
    return steps;
}

// ---------------------------------------------------------------------------------------
// History.

/** Whole history of channel (limit -1), throws on an API error. */
export async function fullHistory(node, channel) {
    return node.apiResult('history', { channel, limit: -1 });
}

/** Compares the history of one channel with the publish records. Returns
 * {epoch, top, entries, ackedInEpoch, ackedOtherEpoch, landed: {error, unknown, refused},
 * problems[]}: every acknowledged publication of the history's epoch must be in it at its
 * offset with its data; offsets contiguous up to the top; nothing in history that no
 * publish sent; a refused publish never landed. */
export function checkHistory(hist, records, channel) {
    const problems = [];
    const mine = records.filter((r) => r.channel === channel);
    const byN = new Map(mine.map((r) => [r.n, r]));
    const byOffset = new Map(hist.publications.map((p) => [p.offset, p]));
    const landed = { error: 0, unknown: 0, refused: 0 };
    const offs = hist.publications.map((p) => p.offset);
    for (let i = 1; i < offs.length; i++) {
        if (offs[i] !== offs[i - 1] + 1) problems.push(`${channel}: history offsets not contiguous at ${offs[i - 1]} -> ${offs[i]}`);
    }
    if (offs.length && offs.at(-1) !== hist.offset) problems.push(`${channel}: last history offset ${offs.at(-1)} != top ${hist.offset}`);
    for (const p of hist.publications) {
        const r = byN.get(p.data?.n);
        if (!r) {
            problems.push(`${channel}: history offset ${p.offset} holds ${JSON.stringify(p.data)}, which no publish sent`);
            continue;
        }
        if (r.outcome === 'ok') {
            if (r.offset !== p.offset || r.epoch !== hist.epoch) {
                problems.push(`${channel}: n=${r.n} acked at ${r.epoch}/${r.offset} but in history at ${hist.epoch}/${p.offset}`);
            }
        } else {
            landed[r.outcome]++;
            r.landed = true;
            if (r.outcome === 'refused') problems.push(`${channel}: refused publish n=${r.n} is in history`);
        }
    }
    let ackedInEpoch = 0;
    let ackedOtherEpoch = 0;
    const seenPos = new Map();
    for (const r of mine.filter((x) => x.outcome === 'ok')) {
        const key = `${r.epoch}/${r.offset}`;
        if (seenPos.has(key)) problems.push(`${channel}: n=${r.n} and n=${seenPos.get(key)} both acked at ${key}`);
        seenPos.set(key, r.n);
        if (r.epoch !== hist.epoch) {
            ackedOtherEpoch++;
            continue;
        }
        ackedInEpoch++;
        const p = byOffset.get(r.offset);
        if (!p) problems.push(`${channel}: acked n=${r.n} (${key}) is not in history`);
        else if (p.data?.n !== r.n) problems.push(`${channel}: acked n=${r.n} (${key}) but history has n=${p.data?.n} there`);
    }
    return { epoch: hist.epoch, top: hist.offset, entries: hist.publications.length, ackedInEpoch, ackedOtherEpoch, landed, problems };
}

// ---------------------------------------------------------------------------------------
// Subscriber replay.

/** Replays the recorded events of a centrifuge-js subscription (sub.rec, lib/clients.mjs)
 * against the publish records and returns what it proves:
 *  - every publication is the next offset of the tracked position (no gap, duplicate or
 *    reorder is ever delivered), and acked ones carry the offset and epoch the API returned;
 *  - every acked publication was received, or lies in a range the subscriber was told it
 *    missed: a `subscribed` with recovered:false after which the position jumped (same
 *    epoch: the skipped offsets; new epoch: everything after the old position).
 * The position starts at each `subscribed` streamPosition (a recovered subscribe replies
 * with the client's own offset; recovered publications follow as `publication` events).
 * Returns {received, lossNotices, told2500, resubscribes, recoveredTrue, declaredLost,
 * missing[], problems[], position}. */
export function replaySubscription(sub, records) {
    const channel = sub.channel;
    const mine = records.filter((r) => r.channel === channel);
    const byN = new Map(mine.map((r) => [r.n, r]));
    const problems = [];
    const losses = [];
    const receivedN = new Set();
    let pos = null;
    let subscribes = 0;
    let recoveredTrue = 0;
    for (const ev of sub.rec.events) {
        if (ev.name === 'subscribed') {
            subscribes++;
            const sp = ev.ctx.streamPosition;
            if (!sp) {
                problems.push(`${channel}: subscribed without a stream position`);
                continue;
            }
            if (pos && ev.ctx.recovered === true) {
                recoveredTrue++;
                if (sp.epoch !== pos.epoch || sp.offset !== pos.offset) {
                    problems.push(`${channel}: recovered:true from ${pos.epoch}/${pos.offset} but reply position ${sp.epoch}/${sp.offset}`);
                }
            } else if (pos) {
                losses.push({ epoch: pos.epoch, from: pos.offset, toEpoch: sp.epoch, to: sp.offset });
            }
            pos = { epoch: sp.epoch, offset: sp.offset };
        } else if (ev.name === 'publication') {
            const p = ev.ctx;
            const n = p.data?.n;
            if (!pos) {
                problems.push(`${channel}: publication n=${n} before subscribed`);
                continue;
            }
            if (p.offset !== pos.offset + 1) {
                problems.push(`${channel}: delivered offset ${p.offset} after ${pos.offset} (n=${n})`);
            }
            if (receivedN.has(n)) problems.push(`${channel}: n=${n} delivered twice`);
            receivedN.add(n);
            const r = byN.get(n);
            if (r === undefined) {
                problems.push(`${channel}: delivered n=${n} that no publish sent`);
            } else if (r.outcome === 'ok' && (r.offset !== p.offset || r.epoch !== pos.epoch)) {
                problems.push(`${channel}: n=${n} acked at ${r.epoch}/${r.offset}, delivered at ${pos.epoch}/${p.offset}`);
            }
            pos.offset = p.offset;
        }
    }
    // A notice covers the offsets skipped in the old epoch (all after the old position if
    // the epoch changed) and, on an epoch change, the new epoch's offsets up to the reply's.
    const covered = (r) => losses.some((l) => (l.epoch === r.epoch && r.offset > l.from &&
        (l.toEpoch !== r.epoch || r.offset <= l.to)) ||
        (l.toEpoch === r.epoch && l.epoch !== r.epoch && r.offset <= l.to));
    const missing = [];
    let declaredLost = 0;
    for (const r of mine.filter((x) => x.outcome === 'ok')) {
        if (receivedN.has(r.n)) continue;
        if (covered(r)) declaredLost++;
        else missing.push(r);
    }
    for (const r of missing.slice(0, 10)) {
        problems.push(`${channel}: acked n=${r.n} (${r.epoch}/${r.offset}) never delivered and no loss notice covers it`);
    }
    return {
        channel,
        received: receivedN.size,
        resubscribes: subscribes - 1,
        recoveredTrue,
        lossNotices: losses.length,
        losses,
        told2500: sub.rec.count('subscribing', (x) => x.code === 2500),
        declaredLost,
        missing,
        problems,
        position: pos,
    };
}

/** Client-level reconnect reasons seen by a centrifuge-js client (client.rec): counts of
 * `connecting` events by code (3010 insufficient state among them) and terminal
 * disconnects. */
export function clientReconnects(client) {
    const byCode = {};
    for (const c of client.rec.all('connecting')) byCode[c.code] = (byCode[c.code] ?? 0) + 1;
    return { connecting: byCode, disconnected: client.rec.count('disconnected') };
}

// ---------------------------------------------------------------------------------------
// /proc readings.

/** A field of /proc/<pid>/status in KiB (VmRSS, VmHWM, RssAnon, ...). */
export function procStatusKiB(pid, field = 'VmRSS') {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(m[1]);
}

/** Number of open file descriptors of pid. */
export function fdCount(pid) {
    return readdirSync(`/proc/${pid}/fd`).length;
}

// ---------------------------------------------------------------------------------------
// Network namespaces.

function run(cmd, args, { check = true } = {}) {
    try {
        return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    } catch (e) {
        if (check) throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
        return null;
    }
}

/** Why network namespaces cannot be used here, or null if they can (root, `ip netns add`
 * works, iptables works inside a namespace). */
export function netnsUnavailable() {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) return `not root (uid ${process.getuid()})`;
    const probe = `rtprobe${process.pid}`;
    try {
        run('ip', ['netns', 'add', probe]);
    } catch (e) {
        return `ip netns add failed: ${e.message}`;
    }
    try {
        run('ip', ['netns', 'exec', probe, 'iptables', '-w', '-L', 'INPUT', '-n']);
        return null;
    } catch (e) {
        return `iptables inside a namespace failed: ${e.message}`;
    } finally {
        run('ip', ['netns', 'del', probe], { check: false });
    }
}

const liveNetns = new Set();
const liveNsRedis = new Set();
process.on('exit', () => {
    // A crashed test file must not leave Redis, namespaces or veth pairs behind.
    for (const r of liveNsRedis) {
        try {
            r.proc.kill('SIGKILL');
        } catch {
            // already gone
        }
    }
    for (const n of liveNetns) n.destroySync();
});

/** A network namespace joined to the root namespace by a veth pair on a private /30:
 * hostAddr on the root side, nsAddr inside. Names and the subnet derive from the pid so
 * parallel test files do not collide. */
export class NetNs {
    constructor(tag = 'f') {
        const id = process.pid % 16384;
        this.name = `rt${tag}${process.pid}`;
        this.hostIf = `rth${id}${tag}`.slice(0, 15);
        this.nsIf = `rtn${id}${tag}`.slice(0, 15);
        // 10.200.0.0/14 split in /30s: 65536 subnets, the pid picks one.
        const sub = (process.pid * 7 + tag.charCodeAt(0)) % 65536;
        const base = (10 << 24) | (200 << 16) | (sub << 2);
        const ip = (v) => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
        this.hostAddr = ip(base + 1);
        this.nsAddr = ip(base + 2);
        this.up = false;
    }

    create() {
        this.destroySync(); // leftovers of a crashed run with the same pid
        liveNetns.add(this);
        run('ip', ['netns', 'add', this.name]);
        run('ip', ['link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', this.nsIf]);
        run('ip', ['link', 'set', this.nsIf, 'netns', this.name]);
        run('ip', ['addr', 'add', `${this.hostAddr}/30`, 'dev', this.hostIf]);
        run('ip', ['link', 'set', this.hostIf, 'up']);
        this.exec('ip', ['addr', 'add', `${this.nsAddr}/30`, 'dev', this.nsIf]);
        this.exec('ip', ['link', 'set', this.nsIf, 'up']);
        this.exec('ip', ['link', 'set', 'lo', 'up']);
        this.up = true;
        return this;
    }

    exec(cmd, args, opts) {
        return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
    }

    /** Black-holes everything between the namespace and the host: packets are dropped
     * inside the namespace in both directions, nobody sends a RST or an ICMP error. */
    partition() {
        this.exec('iptables', ['-w', '-A', 'INPUT', '-s', this.hostAddr, '-j', 'DROP']);
        this.exec('iptables', ['-w', '-A', 'OUTPUT', '-d', this.hostAddr, '-j', 'DROP']);
    }

    heal() {
        this.exec('iptables', ['-w', '-F', 'INPUT']);
        this.exec('iptables', ['-w', '-F', 'OUTPUT']);
    }

    /** Removes the veth pair and the namespace (processes inside must be gone first or
     * they keep the namespace alive unnamed). Never throws. */
    destroySync() {
        run('ip', ['link', 'del', this.hostIf], { check: false });
        run('ip', ['netns', 'del', this.name], { check: false });
        liveNetns.delete(this);
        this.up = false;
    }
}

/** redis-server running inside a NetNs, listening on its veth address only. */
export class NsRedis {
    constructor(netns) {
        this.netns = netns;
        this.port = 6300 + (process.pid % 1000);
        this.dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-nsredis-'));
        this.proc = null;
        this._log = [];
        this.exited = null;
    }

    address(query = '') {
        return `redis://${this.netns.nsAddr}:${this.port}${query}`;
    }

    logTail(n = 30) {
        return this._log.join('').split('\n').slice(-n).join('\n');
    }

    async start() {
        const argv = ['netns', 'exec', this.netns.name, REDIS_SERVER, '--port', String(this.port),
            '--bind', this.netns.nsAddr, '--save', '', '--appendonly', 'no', '--dir', this.dir,
            '--daemonize', 'no', '--protected-mode', 'no'];
        this.proc = spawn('ip', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
        liveNsRedis.add(this);
        this.proc.stdout.on('data', (d) => this._log.push(d.toString()));
        this.proc.stderr.on('data', (d) => this._log.push(d.toString()));
        this._exit = new Promise((resolve) => this.proc.on('exit', (code, signal) => {
            this.exited = { code, signal };
            liveNsRedis.delete(this);
            resolve(this.exited);
        }));
        const deadline = Date.now() + 5000;
        while (!(await pingOnce(this.port, 500, this.netns.nsAddr))) {
            if (this.exited) throw new Error(`redis-server in ${this.netns.name} exited: ${this.logTail()}`);
            if (Date.now() > deadline) throw new Error(`redis-server in ${this.netns.name} did not answer PING\n${this.logTail()}`);
            await sleep(20);
        }
        return this;
    }

    /** redis-cli inside the namespace (reaches Redis even while partitioned from the host). */
    cli(...args) {
        return this.netns.exec('redis-cli', ['-h', this.netns.nsAddr, '-p', String(this.port), ...args.map(String)]).replace(/\n$/, '');
    }

    async stop() {
        if (this.proc && !this.exited) {
            this.proc.kill('SIGKILL');
            await this._exit;
        }
        rmSync(this.dir, { recursive: true, force: true });
    }
}

// ---------------------------------------------------------------------------------------
// The acknowledged-publications scenario shared by the fault files.

/** Namespace for the burst: recoverable, history big enough that nothing of a burst is
 * trimmed (so "not in history" can only mean lost). */
export const ACK_NS = {
    name: 'ack', history_size: 10000, history_ttl: '600s', force_recovery: true,
    allow_subscribe_for_client: true, allow_history_for_client: true,
};

/** Connects `perNode` centrifuge-js clients to every node of the cluster and subscribes
 * each to every channel. Returns {clients, subs}. */
export async function subscribeEverywhere(cluster, channels, perNode = 2) {
    const clients = [];
    const subs = [];
    for (const [i, node] of cluster.nodes.entries()) {
        for (let k = 0; k < perNode; k++) {
            const c = await connectedClient(node, `ack-${i}-${k}`,
                { opts: { minReconnectDelay: 100, maxReconnectDelay: 300 } });
            c.label = `node${i}/client${k}`;
            clients.push(c);
            for (const ch of channels) {
                const s = await subscribed(c, ch);
                s.label = `${c.label}/${ch}`;
                subs.push(s);
            }
        }
    }
    return { clients, subs };
}

/** After the faults: waits until every node is ready, publishes one marker per channel
 * (appended to records; it must succeed) and waits until every subscription's replayed
 * position reached its channel's marker — received, or skipped by a loss notice (a
 * subscriber on a lost epoch learns it at the first publication of the new one). */
export async function settle(cluster, subs, channels, records, timeout = 15000) {
    for (const n of cluster.nodes) await waitReady(n, 200, 10000);
    const markers = new Map();
    let n = records.length;
    for (const ch of channels) {
        const m = await publishOnce(cluster.nodes[0], ch, n++);
        if (m.outcome !== 'ok') throw new Error(`marker publish on ${ch} after recovery failed: ${JSON.stringify(m)}`);
        records.push(m);
        markers.set(ch, m);
    }
    const behind = () => subs.filter((s) => {
        const m = markers.get(s.channel);
        const p = replaySubscription(s, records).position;
        return !(p && p.epoch === m.epoch && p.offset >= m.offset);
    });
    try {
        await waitFor(() => behind().length === 0, timeout, 'every subscriber at its channel marker');
    } catch (e) {
        const list = behind().map((s) => `${s.label} at ${JSON.stringify(replaySubscription(s, records).position)} state=${s.state}`);
        throw new Error(`${e.message}: ${list.join('; ')} markers=${JSON.stringify([...markers.values()].map((m) => [m.channel, m.epoch, m.offset]))}`);
    }
    await sleep(200); // a late duplicate would show up here
    return markers;
}

/** Checks history and every subscription; returns {history[], subs[], clients[], problems[]}
 * with the numbers for the report. */
export async function verifyAcked(node, channels, records, subs, clients) {
    const problems = [];
    const history = [];
    for (const ch of channels) {
        const h = checkHistory(await fullHistory(node, ch), records, ch);
        history.push({ channel: ch, ...h });
        problems.push(...h.problems);
    }
    const subReports = subs.map((s) => {
        const r = replaySubscription(s, records);
        problems.push(...r.problems.map((p) => `${s.label}: ${p}`));
        return { label: s.label, ...r };
    });
    const clientReports = clients.map((c) => ({ label: c.label, state: c.state, ...clientReconnects(c) }));
    for (const c of clientReports) {
        if (c.state !== 'connected') problems.push(`${c.label} ended ${c.state}`);
        if (c.disconnected) problems.push(`${c.label} was disconnected for good`);
    }
    return { history, subs: subReports, clients: clientReports, problems };
}

/** One-line summaries for t.diagnostic. */
export function describeRun(records, v, steps = []) {
    const lines = [];
    const t = tally(records);
    const landed = { error: 0, unknown: 0, refused: 0 };
    for (const r of records) if (r.outcome !== 'ok' && r.landed) landed[r.outcome]++;
    lines.push(`publishes: ${records.length} sent, ok=${t.ok} error=${t.error} (landed ${landed.error}) ` +
        `unknown=${t.unknown} (landed ${landed.unknown}) refused=${t.refused} (landed ${landed.refused})`);
    const errs = {};
    for (const r of records) if (r.outcome !== 'ok') errs[JSON.stringify(r.error)] = (errs[JSON.stringify(r.error)] ?? 0) + 1;
    if (Object.keys(errs).length) lines.push(`errors: ${Object.entries(errs).map(([k, c]) => `${k} x${c}`).join(', ')}`);
    for (const s of steps) lines.push(`fault: ${s.name} at ${s.t} ms (done ${s.done} ms)`);
    for (const h of v.history) {
        lines.push(`history ${h.channel}: epoch=${h.epoch} top=${h.top} entries=${h.entries} acked-in-epoch=${h.ackedInEpoch} ` +
            `acked-in-older-epochs=${h.ackedOtherEpoch}`);
    }
    const agg = { received: 0, told2500: 0, lossNotices: 0, declaredLost: 0, recoveredTrue: 0, resubscribes: 0 };
    for (const s of v.subs) for (const k of Object.keys(agg)) agg[k] += s[k];
    lines.push(`subscriptions: ${v.subs.length}, delivered=${agg.received}, resubscribes=${agg.resubscribes} ` +
        `(recovered:true ${agg.recoveredTrue}, recovered:false ${agg.lossNotices}), unsubscribe-2500=${agg.told2500}, ` +
        `acked publications declared missed=${agg.declaredLost}`);
    const codes = {};
    for (const c of v.clients) for (const [k, n] of Object.entries(c.connecting)) codes[k] = (codes[k] ?? 0) + n;
    lines.push(`client reconnects by code: ${JSON.stringify(codes)} (3010 = insufficient state)`);
    return lines;
}
