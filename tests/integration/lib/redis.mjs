// Redis for the multi-node tests: real redis-server processes on free loopback ports in
// temp dirs (killed and restarted on the same port with the same data dir), redis-cli
// calls, MONITOR capture, and rotor clusters on top of them (several nodes sharing one or
// more Redis shards, nodes killed with SIGKILL and restarted on their own port).
//
// Every test file starts its own redis-server(s); nothing here touches a shared Redis.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before } from 'node:test';

import { HEALTH_TIMEOUT_MS, Rotor, freePort, merge, rotorBinary, sleep, startRotor, waitFor } from './rotor.mjs';

export const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';
export const REDIS_CLI = process.env.REDIS_CLI || 'redis-cli';
export const REDIS_START_TIMEOUT_MS = 5000;
/** A started node must report /ready 200 (connected to every shard) within this. */
export const STARTUP_READY_MS = 5000;
/** Key prefix the tests configure explicitly (also rotor's default, SERVER.md §7.1). */
export const PREFIX = 'rotor';

const live = new Set(); // child processes (redis-server, MONITOR, respawned rotors)
process.on('exit', () => {
    // A crashed test file must not leave servers behind.
    for (const p of live) {
        try {
            p.kill('SIGKILL');
        } catch {
            // already gone
        }
    }
});

function track(proc) {
    live.add(proc);
    proc.on('exit', () => live.delete(proc));
    return proc;
}

/** One RESP PING over a fresh TCP connection; resolves true on +PONG, false otherwise. */
export function pingOnce(port, timeout = 500, host = '127.0.0.1') {
    return new Promise((resolve) => {
        const sock = net.connect({ host, port });
        let buf = '';
        const done = (v) => {
            clearTimeout(timer);
            sock.destroy();
            resolve(v);
        };
        const timer = setTimeout(() => done(false), timeout);
        sock.on('connect', () => sock.write('PING\r\n'));
        sock.on('data', (d) => {
            buf += d.toString();
            // "-LOADING ..." while an AOF is replayed: not ready yet.
            if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
        });
        sock.on('error', () => done(false));
    });
}

export class RedisServer {
    /** opts: {port, dir, persist: AOF with appendfsync always (data survives SIGKILL),
     * args: extra redis-server arguments}. Use startRedis(). */
    constructor({ port, dir, persist = false, args = [] }) {
        this.port = port;
        this.dir = dir; // data dir, kept across restarts, removed by stop()
        this.persist = persist;
        this.args = args;
        this.proc = null;
        this.exited = null;
        this._log = [];
        this.starts = 0;
    }

    /** redis://127.0.0.1:<port>, the form rotor's engine.redis.address takes. */
    address() {
        return `redis://127.0.0.1:${this.port}`;
    }

    logs() {
        return this._log.join('');
    }

    logTail(n = 30) {
        const lines = this.logs().split('\n');
        return lines.slice(Math.max(0, lines.length - n - 1)).join('\n');
    }

    running() {
        return this.proc !== null && this.exited === null;
    }

    /** Spawns redis-server on this.port with this.dir and waits until it answers PING. */
    async start() {
        if (this.running()) throw new Error(`redis on port ${this.port} is already running`);
        const persistence = this.persist
            ? ['--appendonly', 'yes', '--appendfsync', 'always']
            : ['--appendonly', 'no'];
        const argv = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '',
            ...persistence, '--dir', this.dir, '--daemonize', 'no', '--protected-mode', 'no',
            ...this.args];
        const proc = track(spawn(REDIS_SERVER, argv, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] }));
        this.proc = proc;
        this.exited = null;
        this.starts++;
        this._log.push(`=== start #${this.starts}: ${REDIS_SERVER} ${argv.join(' ')}\n`);
        proc.stdout.on('data', (d) => this._log.push(d.toString()));
        proc.stderr.on('data', (d) => this._log.push(d.toString()));
        let spawnErr = null;
        proc.on('error', (e) => {
            spawnErr = e;
        });
        this._exit = new Promise((resolve) => {
            proc.on('exit', (code, signal) => {
                if (this.proc === proc) this.exited = { code, signal };
                resolve({ code, signal });
            });
        });
        const deadline = Date.now() + REDIS_START_TIMEOUT_MS;
        for (;;) {
            if (spawnErr) throw new Error(`cannot start ${REDIS_SERVER}: ${spawnErr.message}`);
            if (this.exited) {
                throw new Error(`redis-server exited during startup (${JSON.stringify(this.exited)})\n` +
                    this.logTail());
            }
            if (await pingOnce(this.port)) return this;
            if (Date.now() >= deadline) {
                proc.kill('SIGKILL');
                throw new Error(`redis-server did not answer PING within ${REDIS_START_TIMEOUT_MS} ms\n` +
                    this.logTail());
            }
            await sleep(20);
        }
    }

    /** Sends sig (SIGKILL by default: no shutdown, no save) and waits for the exit. */
    async kill(sig = 'SIGKILL') {
        if (!this.running()) return this.exited;
        this.proc.kill(sig);
        return this._exit;
    }

    /** Starts again on the same port with the same data dir (kills a running one first). */
    async restart() {
        if (this.running()) await this.kill();
        // The listening socket dies with the process; bind can still race its teardown.
        for (let attempt = 0; ; attempt++) {
            try {
                return await this.start();
            } catch (e) {
                if (attempt >= 3 || !/Address already in use/i.test(this.logs())) throw e;
                await sleep(200);
            }
        }
    }

    /** Stops the server and removes the data dir. */
    async stop() {
        if (this.running()) {
            this.proc.kill('SIGTERM');
            const timer = setTimeout(() => this.proc && this.proc.kill('SIGKILL'), 3000);
            await this._exit;
            clearTimeout(timer);
        }
        try {
            rmSync(this.dir, { recursive: true, force: true });
        } catch {
            // best effort
        }
    }

    cli(...args) {
        return redisCli(this.port, ...args);
    }

    /** Non-empty output lines of a redis-cli call (arrays print one element a line). */
    async lines(...args) {
        return (await this.cli(...args)).split('\n').filter((l) => l !== '');
    }

    /** Starts a MONITOR capture; see Monitor. */
    monitor() {
        return Monitor.start(this.port);
    }
}

/** Starts a redis-server on a free loopback port in a new temp dir. opts as RedisServer
 * (port optional). */
export async function startRedis(opts = {}) {
    for (let attempt = 0; ; attempt++) {
        const port = opts.port ?? (await freePort());
        const dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-redis-'));
        const r = new RedisServer({ ...opts, port, dir });
        try {
            return await r.start();
        } catch (e) {
            // The probed port can be taken before redis binds it: try another one.
            rmSync(dir, { recursive: true, force: true });
            if (opts.port !== undefined || attempt >= 2 || !/Address already in use/i.test(r.logs())) throw e;
        }
    }
}

/** Runs redis-cli against 127.0.0.1:port with args (no shell; binary-safe arguments) and
 * resolves its stdout without the final newline. Rejects when redis-cli fails or Redis
 * answers with an error reply (-e). */
export function redisCli(port, ...args) {
    return new Promise((resolve, reject) => {
        const argv = ['-h', '127.0.0.1', '-p', String(port), '-e', ...args.map(String)];
        const p = spawn(REDIS_CLI, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => {
            out += d;
        });
        p.stderr.on('data', (d) => {
            err += d;
        });
        p.on('error', reject);
        p.on('exit', (code) => {
            if (code === 0) resolve(out.replace(/\n$/, ''));
            else reject(new Error(`redis-cli -p ${port} ${args.join(' ')}: exit ${code}: ${(err || out).trim()}`));
        });
    });
}

/** Splits one MONITOR line (`<ts> [<db> <addr>] "CMD" "arg" ...`) into
 * {ts, db, addr, args}, args unescaped (\" \\ \n \r \t \xHH), or null if it is not one. */
export function parseMonitorLine(line) {
    const m = /^(\d+\.\d+) \[(\d+) ([^\]]*)\] (.*)$/.exec(line);
    if (!m) return null;
    const args = [];
    const s = m[4];
    let i = 0;
    while (i < s.length) {
        if (s[i] === ' ') {
            i++;
            continue;
        }
        if (s[i] !== '"') return null;
        i++;
        let a = '';
        while (i < s.length && s[i] !== '"') {
            if (s[i] === '\\' && i + 1 < s.length) {
                const c = s[i + 1];
                if (c === 'x' && i + 3 < s.length) {
                    a += String.fromCharCode(parseInt(s.slice(i + 2, i + 4), 16));
                    i += 4;
                    continue;
                }
                a += { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' }[c] ?? c;
                i += 2;
                continue;
            }
            a += s[i++];
        }
        i++; // closing quote
        args.push(a);
    }
    return { ts: Number(m[1]), db: Number(m[2]), addr: m[3], args };
}

/** MONITOR capture through redis-cli: every command Redis executes after start() resolved
 * is in commands() ({ts, db, addr, args}; args[0] upper-cased). */
export class Monitor {
    constructor(proc) {
        this.proc = proc;
        this._cmds = [];
        this._waiters = [];
        this._rest = '';
        this.closed = new Promise((resolve) => proc.on('exit', resolve));
    }

    static start(port, timeout = 3000) {
        const proc = track(spawn(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), 'MONITOR'],
            { stdio: ['ignore', 'pipe', 'pipe'] }));
        const mon = new Monitor(proc);
        return new Promise((resolve, reject) => {
            let ok = false;
            const timer = setTimeout(() => {
                proc.kill('SIGKILL');
                reject(new Error(`MONITOR on port ${port} did not start within ${timeout} ms`));
            }, timeout);
            proc.stdout.on('data', (d) => {
                const text = mon._rest + d.toString();
                const lines = text.split('\n');
                mon._rest = lines.pop();
                for (const line of lines) {
                    if (!ok && line.trim() === 'OK') {
                        // Redis acknowledges MONITOR before streaming: from here nothing is missed.
                        ok = true;
                        clearTimeout(timer);
                        resolve(mon);
                        continue;
                    }
                    const c = parseMonitorLine(line);
                    if (c) {
                        if (c.args.length) c.args[0] = c.args[0].toUpperCase();
                        mon._cmds.push(c);
                    }
                }
                for (const w of [...mon._waiters]) w();
            });
            proc.on('error', (e) => {
                clearTimeout(timer);
                reject(e);
            });
            proc.on('exit', () => {
                if (!ok) {
                    clearTimeout(timer);
                    reject(new Error(`MONITOR on port ${port} exited before starting`));
                }
            });
        });
    }

    commands(pred = () => true) {
        return this._cmds.filter(pred);
    }

    /** Commands whose arguments include s exactly (a key, a channel name). */
    mentioning(s) {
        return this.commands((c) => c.args.includes(s));
    }

    /** Resolves with the first captured command matching pred (past or future). */
    wait(pred, timeout = 3000, what = 'command') {
        const found = () => this._cmds.find(pred);
        if (found()) return Promise.resolve(found());
        return new Promise((resolve, reject) => {
            const check = () => {
                const f = found();
                if (!f) return;
                clearTimeout(timer);
                this._waiters = this._waiters.filter((w) => w !== check);
                resolve(f);
            };
            const timer = setTimeout(() => {
                this._waiters = this._waiters.filter((w) => w !== check);
                const seen = this._cmds.slice(-20).map((c) => c.args.slice(0, 4).join(' ')).join(' | ');
                reject(new Error(`MONITOR: timed out after ${timeout} ms waiting for ${what}; last: ${seen}`));
            }, timeout);
            this._waiters.push(check);
        });
    }

    clear() {
        this._cmds = [];
    }

    async stop() {
        this.proc.kill('SIGTERM');
        await this.closed;
    }
}

// ---------------------------------------------------------------------------------------
// Hashing of channels to shards (SERVER.md §3.13), to check where keys land.

const MASK64 = (1n << 64n) - 1n;

/** FNV-1a 64-bit of the UTF-8 bytes of s, as a BigInt. */
export function fnv1a64(s) {
    let h = 14695981039346656037n;
    for (const b of Buffer.from(s, 'utf8')) {
        h ^= BigInt(b);
        h = (h * 1099511628211n) & MASK64;
    }
    return h;
}

/** Jump consistent hash of a 64-bit key over n buckets, with the spec's floating point. */
export function jumpHash(key, n) {
    let b = -1n;
    let j = 0n;
    let k = key;
    while (j < BigInt(n)) {
        b = j;
        k = (k * 2862933555777941757n + 1n) & MASK64;
        j = BigInt(Math.trunc(Number(b + 1n) * (2147483648.0 / Number((k >> 33n) + 1n))));
    }
    return Number(b);
}

/** Index of the shard owning channel among n shards. */
export const shardOf = (channel, n) => jumpHash(fnv1a64(channel), n);

// ---------------------------------------------------------------------------------------
// rotor clusters.

/** engine config for rotor nodes on the given Redis shards (RedisServer or address
 * strings; one string when there is a single shard, else an array). */
export function redisEngine(shards, redisOpts = {}) {
    const list = (Array.isArray(shards) ? shards : [shards]).map((s) => (typeof s === 'string' ? s : s.address()));
    return {
        engine: {
            type: 'redis',
            redis: { address: list.length === 1 ? list[0] : list, prefix: PREFIX, ...redisOpts },
        },
    };
}

function cleanEnv(extra) {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
        // Inherited ROTOR_* / CENTRIFUGO_* would override the test config (SERVER.md §2.5).
        if (k.startsWith('ROTOR_') || k.startsWith('CENTRIFUGO_')) continue;
        env[k] = v;
    }
    return { ...env, ...extra };
}

/** SIGKILLs a rotor node (no shutdown: no leave, no `shutdown` control command) and waits
 * for it to be gone. Marked as stopping so the harness does not report it as a crash. */
export async function killRotor(rotor) {
    rotor.stopping = true;
    rotor.killedOnPurpose = true;
    if (!rotor.exited) rotor.proc.kill('SIGKILL');
    await rotor.waitExit();
}

/** Starts a new process for a stopped node: same binary, same config (so the same port),
 * fresh temp dir. The old node's tracked clients move to the new one (an SDK client keeps
 * reconnecting to the same URL). Resolves the new Rotor once /health answers 200. */
export async function respawnRotor(old, { env = {}, args = [] } = {}) {
    if (!old.exited) throw new Error(`rotor on port ${old.port} is still running`);
    let lastLog = '';
    for (let attempt = 0; attempt < 10; attempt++) {
        const dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-it-'));
        const cfgPath = path.join(dir, 'config.json');
        writeFileSync(cfgPath, JSON.stringify(old.config, null, 2));
        const proc = track(spawn(old.bin, ['-c', cfgPath, ...args],
            { cwd: dir, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] }));
        const r = new Rotor({ proc, port: old.port, dir, config: old.config, bin: old.bin });
        r.clients = old.clients;
        r.generation = (old.generation ?? 0) + 1;
        const deadline = Date.now() + HEALTH_TIMEOUT_MS;
        let ok = false;
        while (!r.exited && Date.now() < deadline) {
            try {
                const res = await fetch(r.url('/health'), { signal: AbortSignal.timeout(1000) });
                await res.arrayBuffer();
                // Answering on the port is not enough: it must be this process (the port
                // is ours, nothing else should hold it, but do not trust that blindly).
                if (res.status === 200 && !r.exited) {
                    ok = true;
                    break;
                }
            } catch {
                // not listening yet
            }
            await sleep(25);
        }
        if (ok) return r;
        lastLog = r.logTail(80);
        if (!r.exited) {
            proc.kill('SIGKILL');
            await r.waitExit();
            throw new Error(`respawned rotor did not answer /health within ${HEALTH_TIMEOUT_MS} ms\n${lastLog}`);
        }
        rmSync(dir, { recursive: true, force: true });
        // The old sockets' teardown can still hold the port for a moment.
        if (!/address already in use|EADDRINUSE/i.test(lastLog)) break;
        await sleep(200);
    }
    throw new Error(`rotor could not be restarted on port ${old.port}\n--- rotor log ---\n${lastLog}`);
}

/** Polls `info` on rotor until it lists exactly n nodes; resolves the node list. */
export async function waitNodes(rotor, n, timeout = 5000) {
    let last = null;
    try {
        return await waitFor(async () => {
            const r = await rotor.apiResult('info');
            last = r.nodes;
            return r.nodes.length === n ? r.nodes : null;
        }, timeout, `info on port ${rotor.port} to list ${n} nodes`);
    } catch (e) {
        throw new Error(`${e.message}; last nodes: ${JSON.stringify(last?.map((x) => x.name))}`);
    }
}

/** GET /ready: {status, body (parsed JSON or null), text, contentType}. */
export async function ready(rotor) {
    const res = await fetch(rotor.url('/ready'), { signal: AbortSignal.timeout(2000) });
    const text = await res.text();
    let body = null;
    try {
        body = JSON.parse(text);
    } catch {
        // reported by the caller
    }
    return { status: res.status, body, text, contentType: res.headers.get('content-type') };
}

/** Polls /ready on rotor until it answers status; resolves the last answer. */
export async function waitReady(rotor, status, timeout = 10000) {
    let last = null;
    try {
        return await waitFor(async () => {
            last = await ready(rotor);
            return last.status === status ? last : null;
        }, timeout, `/ready on port ${rotor.port} to answer ${status}`);
    } catch (e) {
        throw new Error(`${e.message}; last: ${last ? `${last.status} ${last.text}` : 'none'}`);
    }
}

/** Several rotor nodes on shared Redis shards. nodes[i] is replaced by restart(i). */
export class Cluster {
    constructor(redis, nodes, opts) {
        this.redis = redis; // RedisServer[] (shards, in address order)
        this.nodes = nodes; // Rotor[]
        this.opts = opts;
        this.retired = []; // killed/replaced Rotor objects, stopped at the end
    }

    node(i) {
        return this.nodes[i];
    }

    /** SIGKILLs node i (it stays in nodes[] as a dead process until restart(i)). */
    async kill(i) {
        await killRotor(this.nodes[i]);
    }

    /** Restarts node i on its port (killing it first if still running); resolves once
     * its /ready answers 200 (Redis connections up). */
    async restart(i) {
        const old = this.nodes[i];
        if (!old.exited) await killRotor(old);
        const r = await respawnRotor(old, { env: this.opts.env, args: this.opts.args });
        this.retired.push(old);
        this.nodes[i] = r;
        await waitReady(r, 200, STARTUP_READY_MS);
        return r;
    }

    /** Starts one more node with the cluster's config (extra deep-merged). */
    async add(extra = {}) {
        const r = await startRotor({ ...this.opts, config: merge(this.opts.config, extra) });
        this.nodes.push(r);
        return r;
    }

    all() {
        return [...this.nodes, ...this.retired];
    }

    async closeClients() {
        const seen = new Set();
        for (const r of this.all()) {
            if (seen.has(r.clients)) continue;
            seen.add(r.clients);
            await r.closeClients();
        }
    }

    dumpLogs(title = '') {
        for (const [i, r] of this.nodes.entries()) r.dumpLogs(`node ${i} ${title}`);
        for (const [i, s] of this.redis.entries()) {
            process.stderr.write(`\n--- redis shard ${i} (port ${s.port}) log tail ${title} ---\n${s.logTail()}\n---\n`);
        }
    }

    /** Nodes that died without a kill() from the test. */
    crashed() {
        return this.nodes.filter((r) => r.exited && !r.stopping);
    }

    /** Stops every node (SIGTERM, clean exit required unless it was killed on purpose)
     * and every Redis. Throws the first problem after everything was stopped. */
    async stop() {
        await this.closeClients();
        const problems = [];
        for (const r of this.all()) {
            try {
                await r.stop({ check: !r.killedOnPurpose });
            } catch (e) {
                problems.push(e);
            }
        }
        for (const s of this.redis) await s.stop();
        if (problems.length) throw problems[0];
    }
}

/** Starts the Redis shards and n rotor nodes on them. opts: {shards: number of Redis
 * servers [1], persist, redisArgs, redisOpts (engine.redis extras), config (deep-merged
 * over baseConfig() after the engine), env, args}. */
export async function startCluster(n, opts = {}) {
    rotorBinary();
    const nshards = opts.shards ?? 1;
    const redis = [];
    try {
        for (let i = 0; i < nshards; i++) {
            redis.push(await startRedis({ persist: opts.persist, args: opts.redisArgs ?? [] }));
        }
        const config = merge(redisEngine(redis, opts.redisOpts), opts.config ?? {});
        const ropts = { config, env: opts.env ?? {}, args: opts.args ?? [] };
        const nodes = await Promise.all(Array.from({ length: n }, () => startRotor(ropts)));
        const cluster = new Cluster(redis, nodes, ropts);
        try {
            // /health answers before the Redis connections are up; tests start from ready.
            await Promise.all(nodes.map((r) => waitReady(r, 200, STARTUP_READY_MS)));
        } catch (e) {
            cluster.dumpLogs('(not ready)');
            await cluster.stop().catch(() => {});
            throw e;
        }
        return cluster;
    } catch (e) {
        for (const s of redis) await s.stop();
        throw e;
    }
}

/** node:test lifecycle for a describe block: one cluster for the block (started in
 * `before`), clients closed after every test, logs of every node and Redis printed when a
 * test failed, an unexpected node crash fails the test, a clean exit is required at the
 * end. Returns a holder whose .c is the Cluster once `before` ran. */
export function useCluster(n, opts = {}) {
    const holder = { c: null };
    before(async () => {
        holder.c = await startCluster(n, opts);
    });
    afterEach(async (t) => {
        const c = holder.c;
        if (!c) return;
        if (!t.passed) c.dumpLogs(`after failed test "${t.name}"`);
        await c.closeClients();
        const dead = c.crashed();
        if (dead.length) {
            c.dumpLogs('(node died)');
            for (const r of dead) {
                // Reported here, once: the final stop() must not report it again.
                r.stopping = true;
                r.killedOnPurpose = true;
            }
            throw new Error(`rotor node(s) on port(s) ${dead.map((r) => r.port).join(', ')} died during "${t.name}"`);
        }
    });
    after(async () => {
        if (holder.c) await holder.c.stop();
    });
    return holder;
}
