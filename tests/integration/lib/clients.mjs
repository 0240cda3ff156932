// Client helpers: centrifuge-js instances wired for Node (ws), an event recorder that
// never misses an event emitted before the test starts waiting, and a raw WebSocket client
// for byte-level and protocol-violation checks, and one-off HTTP requests on fresh connections.
import http from 'node:http';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

import { sleep } from './rotor.mjs';

export { Centrifuge, WebSocket };

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Records every event of the given names. wait() looks at past events first, so a test
 * may start waiting after the event already fired. */
export class Recorder {
    constructor(emitter, names) {
        this.events = []; // {name, ctx, at}
        this._waiters = [];
        for (const name of names) {
            emitter.on(name, (ctx) => {
                const ev = { name, ctx, at: Date.now() };
                this.events.push(ev);
                for (const w of [...this._waiters]) w(ev);
            });
        }
    }

    all(name, pred = () => true) {
        return this.events.filter((e) => e.name === name && pred(e.ctx)).map((e) => e.ctx);
    }

    /** Time (ms) of the n-th (1-based) event `name`, undefined if it did not happen. */
    at(name, n = 1) {
        return this.events.filter((e) => e.name === name)[n - 1]?.at;
    }

    count(name, pred) {
        return this.all(name, pred).length;
    }

    /** Resolves with the ctx of the first (or n-th, 1-based) event `name` matching pred. */
    wait(name, pred = () => true, timeout = 5000, n = 1) {
        const matches = () => this.all(name, pred);
        if (matches().length >= n) return Promise.resolve(matches()[n - 1]);
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this._waiters = this._waiters.filter((w) => w !== check);
                const seen = this.events.map((e) => `${e.name}${fmtCtx(e.ctx)}`).join(', ');
                reject(new Error(`timed out after ${timeout} ms waiting for event '${name}'` +
                    `${n > 1 ? ` #${n}` : ''}; events seen: [${seen}]`));
            }, timeout);
            const check = (ev) => {
                if (ev.name !== name) return;
                const m = matches();
                if (m.length >= n) {
                    clearTimeout(timer);
                    this._waiters = this._waiters.filter((w) => w !== check);
                    resolve(m[n - 1]);
                }
            };
            this._waiters.push(check);
        });
    }

    /** Event `name` must not have happened (or happen within ms). */
    async expectNone(name, ms = 0, pred = () => true) {
        if (ms > 0) await sleep(ms);
        const got = this.all(name, pred);
        if (got.length > 0) {
            throw new Error(`unexpected '${name}' event(s): ${got.map(fmtCtx).join(', ')}`);
        }
    }
}

function fmtCtx(ctx) {
    if (!ctx || typeof ctx !== 'object') return '';
    const parts = [];
    for (const k of ['channel', 'code', 'reason']) if (k in ctx) parts.push(`${k}=${ctx[k]}`);
    return parts.length ? `(${parts.join(' ')})` : '';
}

const CLIENT_EVENTS = ['state', 'connecting', 'connected', 'disconnected', 'error', 'subscribed',
    'subscribing', 'unsubscribed', 'publication', 'join', 'leave', 'message'];
const SUB_EVENTS = ['state', 'subscribing', 'subscribed', 'unsubscribed', 'publication', 'join',
    'leave', 'error'];

/** A centrifuge-js client for rotor (not yet connected) with quick reconnects. Returns the
 * client; client.rec records its events. Closed by rotor.closeClients(). */
export function sdkClient(rotor, opts = {}) {
    const c = new Centrifuge(rotor.wsUrl(), {
        websocket: WebSocket,
        minReconnectDelay: 100,
        maxReconnectDelay: 400,
        timeout: 4000,
        ...opts,
    });
    c.rec = new Recorder(c, CLIENT_EVENTS);
    rotor.clients.add({ close: () => c.disconnect() });
    return c;
}

/** Connects an SDK client for user (token with claims) and waits for `connected`. */
export async function connectedClient(rotor, user, { claims = {}, opts = {} } = {}) {
    const c = sdkClient(rotor, { token: rotor.makeToken({ sub: user, ...claims }), ...opts });
    c.connect();
    c.connectedCtx = await c.rec.wait('connected');
    return c;
}

/** newSubscription + recorder; sub.rec records its events. */
export function newSub(client, channel, opts = {}) {
    const s = client.newSubscription(channel, opts);
    s.rec = new Recorder(s, SUB_EVENTS);
    return s;
}

/** Subscribes and waits for `subscribed`; returns the subscription. */
export async function subscribed(client, channel, opts = {}) {
    const s = newSub(client, channel, opts);
    s.subscribe();
    s.subscribedCtx = await s.rec.wait('subscribed');
    return s;
}

/** Raw JSON-protocol WebSocket client. Every received text message is kept verbatim in
 * frames[]; its lines are parsed into messages[]. */
export class RawClient {
    constructor(ws, { autoPong = false } = {}) {
        this.ws = ws;
        this.autoPong = autoPong;
        this.frames = []; // {text, binary, at}
        this.messages = []; // parsed Reply objects, in order
        this.nextId = 1;
        this._waiters = [];
        this.closed = new Promise((resolve) => {
            ws.on('close', (code, reason) => {
                this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
                resolve(this.closeInfo);
                this._notify();
            });
        });
        ws.on('error', () => {});
        ws.on('message', (data, isBinary) => {
            const text = data.toString();
            this.frames.push({ text, binary: isBinary, at: Date.now() });
            if (!isBinary) {
                for (const line of text.split('\n')) {
                    if (line.trim() === '') continue;
                    let msg;
                    try {
                        msg = JSON.parse(line);
                    } catch {
                        msg = { __unparsable: line };
                    }
                    this.messages.push(msg);
                    if (this.autoPong && isPing(msg)) this.sendRaw('{}');
                }
            }
            this._notify();
        });
    }

    /** Opens a WebSocket to rotor (path/query/protocols/headers optional). */
    static open(rotor, { path = '/connection/websocket', protocols, headers, autoPong = false } = {}) {
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(rotor.wsUrl(path), protocols, { headers });
            const raw = new RawClient(ws, { autoPong });
            rotor.clients.add(raw);
            ws.once('open', () => resolve(raw));
            ws.once('unexpected-response', (req, res) => {
                reject(new Error(`WebSocket upgrade refused: HTTP ${res.statusCode}`));
            });
            ws.once('error', reject);
        });
    }

    _notify() {
        for (const w of [...this._waiters]) w();
    }

    isOpen() {
        return this.ws.readyState === WebSocket.OPEN;
    }

    sendRaw(data, opts = {}) {
        this.ws.send(data, opts);
    }

    /** Sends commands (objects) in one frame joined by '\n'. */
    send(...cmds) {
        this.sendRaw(cmds.map((c) => (typeof c === 'string' ? c : JSON.stringify(c))).join('\n'));
    }

    /** Sends one command with a fresh id and waits for its reply. */
    async command(body, timeout = 4000) {
        const id = this.nextId++;
        this.send({ id, ...body });
        return this.reply(id, timeout);
    }

    reply(id, timeout = 4000) {
        return this.waitMessage((m) => m.id === id, timeout, `reply id=${id}`);
    }

    /** connect command with a token (or none); resolves the Reply. */
    connect(token, extra = {}) {
        const req = { name: 'raw', ...extra };
        if (token) req.token = token;
        return this.command({ connect: req });
    }

    /** Resolves with the first message (past or future) matching pred. */
    waitMessage(pred, timeout = 4000, what = 'message') {
        return this._wait(() => this.messages.find(pred), timeout, what);
    }

    /** Resolves with the first text frame (verbatim) matching pred. */
    waitFrame(pred, timeout = 4000, what = 'frame') {
        return this._wait(() => this.frames.find(pred), timeout, what);
    }

    pushes(channel) {
        return this.messages.filter((m) => m.push && (channel === undefined || m.push.channel === channel));
    }

    waitPush(pred, timeout = 4000, what = 'push') {
        return this.waitMessage((m) => m.push && pred(m.push), timeout, what).then((m) => m.push);
    }

    pings() {
        return this.messages.filter(isPing);
    }

    _wait(find, timeout, what) {
        const found = find();
        if (found) return Promise.resolve(found);
        return new Promise((resolve, reject) => {
            let graceTimer = null;
            const finish = (err, v) => {
                clearTimeout(timer);
                clearTimeout(graceTimer);
                this._waiters = this._waiters.filter((w) => w !== check);
                if (err) reject(err);
                else resolve(v);
            };
            const fail = (why) => new Error(`raw client: ${why} waiting for ${what};` +
                ` close=${JSON.stringify(this.closeInfo ?? null)}; received: ${this.describe()}`);
            const timer = setTimeout(() => finish(fail(`timed out after ${timeout} ms`)), timeout);
            const check = () => {
                const f = find();
                if (f) {
                    finish(null, f);
                } else if (this.closeInfo && graceTimer === null) {
                    // Nothing more can arrive once closed: fail fast instead of timing out.
                    graceTimer = setTimeout(() => {
                        const g = find();
                        if (g) finish(null, g);
                        else finish(fail('connection closed'));
                    }, 20);
                }
            };
            this._waiters.push(check);
            check();
        });
    }

    /** Waits for the close; resolves {code, reason}. */
    async waitClose(timeout = 4000) {
        let timer;
        const t = new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(
                `raw client: connection not closed within ${timeout} ms; received: ${this.describe()}`)), timeout);
        });
        try {
            return await Promise.race([this.closed, t]);
        } finally {
            clearTimeout(timer);
        }
    }

    describe(max = 1500) {
        const s = this.frames.map((f) => (f.binary ? `<binary ${f.text.length}>` : f.text)).join(' | ');
        return s.length > max ? `${s.slice(0, max)}…` : s || '(nothing)';
    }

    close() {
        if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
            this.ws.terminate();
        }
    }
}

/** A server ping: a Reply with no fields at all (PROTOCOL.md §1.1). */
export function isPing(m) {
    return m && typeof m === 'object' && !m.__unparsable && Object.keys(m).length === 0;
}

/** Publishes through the SDK client `pub` and waits until `sub` sees it on channel; proves
 * a node still serves normal clients. */
export async function roundTrip(pubClient, subscription, tag) {
    const data = { probe: tag, at: Date.now() };
    await pubClient.publish(subscription.channel, data);
    await subscription.rec.wait('publication', (p) => p.data && p.data.probe === tag && p.data.at === data.at);
}

/** One request on a fresh TCP connection (no pooling, so the kernel picks a worker for
 * each). Resolves {status, body, type}; an upgrade or a streaming 200 is closed at once. */
export function freshRequest(port, p, { method = 'GET', headers = {}, body } = {}) {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: p, method, headers, agent: false });
        req.on('response', (res) => {
            if (res.statusCode === 200) {
                res.destroy();
                resolve({ status: 200 });
                return;
            }
            let text = '';
            res.on('data', (d) => { text += d; });
            res.on('end', () => resolve({ status: res.statusCode, body: text, type: res.headers['content-type'] }));
        });
        req.on('upgrade', (res, socket) => {
            socket.destroy();
            resolve({ status: res.statusCode });
        });
        req.on('error', reject);
        req.end(body);
    });
}
