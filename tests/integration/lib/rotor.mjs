// Harness: starts a real rotor process on a free loopback port with a JSON config in a
// temp dir, waits for /health, and stops it with SIGTERM (SIGKILL after 5 s).
//
// Every test file starts its own rotor(s), so files can run in parallel (ctest -j).
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync, accessSync, constants } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const HEALTH_TIMEOUT_MS = 10000;
export const KILL_AFTER_MS = 5000;

/** Resolves the rotor binary: $ROTOR_BIN (set by CMake), else ../../build/rotor. */
export function rotorBinary() {
    const bin = process.env.ROTOR_BIN || path.resolve(HERE, '../../../build/rotor');
    if (!existsSync(bin)) {
        throw new Error(
            `rotor binary not found at ${bin}: build it (make build) or set ROTOR_BIN=/path/to/rotor`);
    }
    try {
        accessSync(bin, constants.X_OK);
    } catch {
        throw new Error(`rotor binary ${bin} is not executable`);
    }
    return bin;
}

/** Runs the rotor binary with args and a clean environment plus env; resolves {code,
 * signal, stdout, stderr, timedOut}. A process still running after timeout ms is killed. */
export function runRotorCli(args, { env = {}, cwd, timeout = 5000 } = {}) {
    const clean = {};
    for (const [k, v] of Object.entries(process.env)) {
        if (!k.startsWith('ROTOR_') && !k.startsWith('CENTRIFUGO_')) clean[k] = v;
    }
    return new Promise((resolve, reject) => {
        const proc = spawn(rotorBinary(), args, {
            cwd, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        proc.stdout.on('data', (d) => { stdout += d; });
        proc.stderr.on('data', (d) => { stderr += d; });
        proc.on('error', reject);
        const timer = setTimeout(() => {
            timedOut = true;
            proc.kill('SIGKILL');
        }, timeout);
        proc.on('exit', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr, timedOut });
        });
    });
}

/** A free TCP port on 127.0.0.1, from a probe socket bound to port 0. */
export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls predicate (sync or async) every 20 ms until it returns a truthy value, which is
 * returned. Rejects after timeout ms with msg. */
export async function waitFor(predicate, timeout = 5000, msg = 'condition') {
    const deadline = Date.now() + timeout;
    let lastErr;
    for (;;) {
        try {
            const v = await predicate();
            if (v) return v;
        } catch (e) {
            lastErr = e;
        }
        if (Date.now() >= deadline) {
            const extra = lastErr ? ` (last error: ${lastErr.message})` : '';
            throw new Error(`timed out after ${timeout} ms waiting for ${msg}${extra}`);
        }
        await sleep(20);
    }
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** Compact JWS with an HMAC algorithm (HS256/384/512) from node:crypto. */
export function signJwt(payload, secret, { alg = 'HS256', header = {} } = {}) {
    const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
    const head = b64url(JSON.stringify({ alg, typ: 'JWT', ...header }));
    const body = b64url(typeof payload === 'string' ? payload : JSON.stringify(payload));
    const input = `${head}.${body}`;
    const sig = hash ? b64url(createHmac(hash, secret).update(input).digest()) : '';
    return `${input}.${sig}`;
}

export const nowSec = () => Math.floor(Date.now() / 1000);

function isObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Deep merge of plain objects; arrays and scalars from b replace those of a. */
export function merge(a, b) {
    if (!isObject(a) || !isObject(b)) return b === undefined ? a : b;
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = k in a ? merge(a[k], v) : v;
    return out;
}

/** Namespaces shared by the suite; each test file picks what it needs (SERVER.md §2.2). */
export const NAMESPACES = [
    // Public channels: anyone may subscribe, nothing else.
    { name: 'pub', allow_subscribe_for_client: true, allow_subscribe_for_anonymous: true },
    // Chat: presence, join/leave pushed to everyone, history, subscriber rights.
    {
        name: 'chat', presence: true, join_leave: true, force_push_join_leave: true,
        history_size: 10, history_ttl: '300s', allow_subscribe_for_client: true,
        allow_subscribe_for_anonymous: true, allow_publish_for_subscriber: true,
        allow_publish_for_anonymous: true, allow_presence_for_subscriber: true,
        allow_presence_for_anonymous: true, allow_history_for_subscriber: true,
        allow_history_for_anonymous: true,
    },
    // Subscribe allowed, client publish not (103).
    { name: 'nopub', allow_subscribe_for_client: true, presence: true },
    // Recoverable stream with client history access.
    {
        name: 'hist', history_size: 20, history_ttl: '300s', force_recovery: true,
        allow_subscribe_for_client: true, allow_history_for_client: true,
        allow_publish_for_client: true,
    },
    // Small recoverable stream: history overflows after 3 publications.
    {
        name: 'small', history_size: 3, history_ttl: '300s', force_recovery: true,
        allow_subscribe_for_client: true,
    },
    // Everything allowed for clients but neither history nor presence enabled (108).
    {
        name: 'bare', allow_subscribe_for_client: true, allow_publish_for_client: true,
        allow_history_for_client: true, allow_presence_for_client: true,
    },
    // Token-only channels (no client permissions at all).
    { name: 'priv', presence: true },
    // User-limited channels: user:#u1,u2.
    { name: 'user', allow_user_limited_channels: true },
];

export const HMAC_SECRET = 'integration-test-hmac-secret';
export const API_KEY = 'integration-test-api-key';

/** The base config every test rotor starts from; opts.config is deep-merged over it. */
export function baseConfig() {
    return {
        // RT_TEST_WORKERS=1 (the ASan stage of make test) runs the suite with the single
        // worker that shares the engine's loop and thread.
        workers: Number(process.env.RT_TEST_WORKERS || 2),
        log: { level: process.env.ROTOR_TEST_LOG_LEVEL || 'info' },
        client: { token: { hmac_secret_key: HMAC_SECRET } },
        http_api: { key: API_KEY },
        health: { enabled: true },
        prometheus: { enabled: true },
        channel: { namespaces: NAMESPACES },
        shutdown: { timeout: '5s' },
    };
}

const rotors = new Set();
process.on('exit', () => {
    // A crashed test file must not leave servers behind.
    for (const r of rotors) {
        try {
            r.proc.kill('SIGKILL');
        } catch {
            // already gone
        }
    }
});

export class Rotor {
    constructor({ proc, port, dir, config, bin }) {
        this.proc = proc; // child process
        this.port = port;
        this.dir = dir; // temp dir holding config.json; removed on stop()
        this.config = config; // the config object written to disk
        this.bin = bin;
        this.apiKey = config.http_api?.key ?? API_KEY;
        this.hmacSecret = config.client?.token?.hmac_secret_key ?? HMAC_SECRET;
        this._log = [];
        this.exited = null; // {code, signal} once the process ended
        this._exitWaiters = [];
        this.stopping = false;
        this.clients = new Set(); // objects with close() registered by lib/clients.mjs
        proc.stdout.on('data', (d) => this._log.push(d.toString()));
        proc.stderr.on('data', (d) => this._log.push(d.toString()));
        proc.on('exit', (code, signal) => {
            this.exited = { code, signal };
            rotors.delete(this);
            for (const w of this._exitWaiters) w(this.exited);
            this._exitWaiters = [];
        });
    }

    url(p = '') {
        return `http://127.0.0.1:${this.port}${p}`;
    }

    wsUrl(p = '/connection/websocket') {
        return `ws://127.0.0.1:${this.port}${p}`;
    }

    logs() {
        return this._log.join('');
    }

    /** Last n log lines, for failure reports. */
    logTail(n = 60) {
        const lines = this.logs().split('\n');
        return lines.slice(Math.max(0, lines.length - n - 1)).join('\n');
    }

    /** Connection JWT (HS256 by default). exp defaults to now + 1 h unless the claims set it
     * (pass exp: undefined explicitly to omit it). opts: {secret, alg, header}. */
    makeToken(claims = {}, opts = {}) {
        const c = { ...claims };
        if (!('exp' in claims)) c.exp = nowSec() + 3600;
        if (c.exp === undefined) delete c.exp;
        return signJwt(c, opts.secret ?? this.hmacSecret, opts);
    }

    /** Subscription JWT for user and channel (PROTOCOL.md §7.2). */
    makeSubToken(user, channel, claims = {}, opts = {}) {
        return this.makeToken({ sub: user, channel, ...claims }, opts);
    }

    /** Raw HTTP request against the node: {status, headers, text, json()}. */
    async request(p, { method = 'GET', headers = {}, body } = {}) {
        const res = await fetch(this.url(p), { method, headers, body });
        const text = await res.text();
        return {
            status: res.status,
            headers: res.headers,
            text,
            json() {
                return JSON.parse(text);
            },
        };
    }

    /** POST /api/<method> with X-API-Key. body: object (JSON-encoded) or a string sent as
     * is. Returns {status, headers, text, json()} without judging the status. */
    apiRaw(method, body = {}, { headers = {}, key = this.apiKey } = {}) {
        const h = { 'Content-Type': 'application/json', ...headers };
        if (key !== null) h['X-API-Key'] = key;
        const p = method === '' ? '/api' : `/api/${method}`;
        return this.request(p, {
            method: 'POST',
            headers: h,
            body: typeof body === 'string' ? body : JSON.stringify(body),
        });
    }

    /** POST /api/<method>; returns the parsed JSON reply ({result} or {error}), throws on a
     * non-200 status. */
    async api(method, body = {}, opts = {}) {
        const res = await this.apiRaw(method, body, opts);
        if (res.status !== 200) {
            throw new Error(`api ${method}: HTTP ${res.status}: ${res.text}`);
        }
        return res.json();
    }

    /** Like api() but returns result and throws on an API error. */
    async apiResult(method, body = {}, opts = {}) {
        const reply = await this.api(method, body, opts);
        if (reply.error) {
            throw new Error(`api ${method}: error ${JSON.stringify(reply.error)}`);
        }
        return reply.result;
    }

    waitExit(timeout = 0) {
        if (this.exited) return Promise.resolve(this.exited);
        return new Promise((resolve, reject) => {
            let timer;
            const done = (v) => {
                clearTimeout(timer);
                resolve(v);
            };
            this._exitWaiters.push(done);
            if (timeout > 0) {
                timer = setTimeout(() => {
                    this._exitWaiters = this._exitWaiters.filter((w) => w !== done);
                    reject(new Error(`rotor (pid ${this.proc.pid}) did not exit within ${timeout} ms`));
                }, timeout);
            }
        });
    }

    signal(sig) {
        if (!this.exited) this.proc.kill(sig);
    }

    /** Closes tracked clients, sends SIGTERM, SIGKILL after 5 s. Resolves {code, signal,
     * killed}. With {check: true} (default) throws when the server had crashed before or
     * did not exit with 0 (a sanitizer report, a leak, a hang), including the log tail. */
    async stop({ check = true } = {}) {
        await this.closeClients();
        const crashedBefore = this.exited && !this.stopping;
        this.stopping = true;
        let killed = false;
        if (!this.exited) {
            this.proc.kill('SIGTERM');
            try {
                await this.waitExit(KILL_AFTER_MS);
            } catch {
                killed = true;
                this.proc.kill('SIGKILL');
                await this.waitExit();
            }
        }
        const ex = { ...this.exited, killed };
        try {
            rmSync(this.dir, { recursive: true, force: true });
        } catch {
            // best effort
        }
        if (check) {
            let problem = null;
            if (crashedBefore) problem = `rotor died during the tests (${fmtExit(ex)})`;
            else if (killed) problem = `rotor ignored SIGTERM for ${KILL_AFTER_MS} ms and was killed`;
            else if (ex.code !== 0) problem = `rotor exited with ${fmtExit(ex)} after SIGTERM`;
            if (problem) throw new Error(`${problem}\n--- rotor log (tail) ---\n${this.logTail(80)}`);
        }
        return ex;
    }

    async closeClients() {
        const list = [...this.clients];
        this.clients.clear();
        await Promise.all(list.map((c) => Promise.resolve().then(() => c.close()).catch(() => {})));
    }

    /** Prints the log tail to stderr; used by afterEach hooks when a test failed. */
    dumpLogs(title = '') {
        process.stderr.write(`\n--- rotor log tail ${title} (port ${this.port}) ---\n${this.logTail(80)}\n---\n`);
    }
}

function fmtExit(ex) {
    return ex.signal ? `signal ${ex.signal}` : `exit code ${ex.code}`;
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

async function spawnOnce(bin, config, env, args) {
    const port = await freePort();
    const full = merge(config, { http_server: { address: '127.0.0.1', port } });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-it-'));
    const cfgPath = path.join(dir, 'config.json');
    writeFileSync(cfgPath, JSON.stringify(full, null, 2));
    const proc = spawn(bin, ['-c', cfgPath, ...args], {
        cwd: dir,
        env: cleanEnv(env),
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    const rotor = new Rotor({ proc, port, dir, config: full, bin });
    rotors.add(rotor);
    let spawnErr = null;
    proc.on('error', (e) => {
        spawnErr = e;
    });
    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    for (;;) {
        if (spawnErr) throw new Error(`cannot start ${bin}: ${spawnErr.message}`);
        if (rotor.exited) return { rotor, ok: false };
        try {
            const res = await fetch(rotor.url('/health'), { signal: AbortSignal.timeout(1000) });
            await res.arrayBuffer();
            if (res.status === 200) return { rotor, ok: true };
        } catch {
            // not listening yet
        }
        if (Date.now() >= deadline) {
            rotor.proc.kill('SIGKILL');
            await rotor.waitExit();
            throw new Error(
                `rotor did not answer GET /health with 200 within ${HEALTH_TIMEOUT_MS} ms\n` +
                `--- rotor log ---\n${rotor.logTail(80)}`);
        }
        await sleep(25);
    }
}

/** Starts rotor. opts: {config: object deep-merged over baseConfig() (or a function
 * base => config), env: extra environment, args: extra command-line arguments}. */
export async function startRotor(opts = {}) {
    const bin = rotorBinary();
    const base = baseConfig();
    const config = typeof opts.config === 'function' ? opts.config(base) : merge(base, opts.config ?? {});
    // The probe port can be taken between probing and binding: retry with another one.
    let last;
    for (let attempt = 0; attempt < 3; attempt++) {
        const { rotor, ok } = await spawnOnce(bin, config, opts.env ?? {}, opts.args ?? []);
        if (ok) return rotor;
        last = rotor;
        if (!/address already in use|EADDRINUSE/i.test(rotor.logs())) break;
    }
    // The temp dir stays so the config that failed can be inspected.
    throw new Error(`rotor exited during startup (${fmtExit(last.exited)}): ${bin} -c ` +
        `${path.join(last.dir, 'config.json')}\n--- rotor log ---\n${last.logTail(80) || '(empty)'}`);
}
