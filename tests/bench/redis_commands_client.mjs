// Client side of redis_commands.sh: one raw JSON-protocol WebSocket client and one server
// API publish, each action bracketed by `ECHO phase:<name>` markers sent to Redis, so the
// MONITOR log can be split into the commands each action caused.
//
// Usage: node redis_commands_client.mjs ROTOR_PORT REDIS_PORT API_KEY
// Phases: connect, subscribe (positioned, channel hist:1 with history and presence),
// publish (API, hist:1, delivered to the subscriber), publish-nohist (API, plain:1),
// recover (unsubscribe, then subscribe again with recover from the position seen),
// disconnect (close while subscribed; waits for the delayed PUB/SUB unsubscribe, >= 1 s),
// idle (1 s), subscribe-2 (a second client subscribes to hist:2), then prints HOLDING and
// waits until rotor, stopped by the caller, closes that connection (shutdown phase).
// Exits non-zero if a reply is an error or does not arrive within 5 s.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../integration/package.json', import.meta.url));
const WebSocket = require('ws');

const [rotorPort, redisPort, apiKey] = process.argv.slice(2);
if (!apiKey) {
    console.error('usage: node redis_commands_client.mjs ROTOR_PORT REDIS_PORT API_KEY');
    process.exit(2);
}
const SETTLE_MS = 400; // async follow-ups of an action (presence add, SUBSCRIBE) land by then

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mark = (name) => execFileSync('redis-cli', ['-p', redisPort, 'ECHO', `phase:${name}`]);

async function phase(name, fn) {
    mark(name);
    const r = await fn();
    await sleep(SETTLE_MS);
    return r;
}

function withTimeout(p, what) {
    return Promise.race([
        p,
        new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: no reply in 5 s`)), 5000)),
    ]);
}

class Client {
    constructor(ws) {
        this.ws = ws;
        this.waiters = new Map(); // id -> resolve
        this.pushes = [];
        this.pushWaiter = null;
        ws.on('message', (buf) => {
            for (const line of buf.toString().split('\n')) {
                if (!line) continue;
                const msg = JSON.parse(line);
                if (Object.keys(msg).length === 0) { // server ping
                    ws.send('{}');
                } else if (msg.id && this.waiters.has(msg.id)) {
                    this.waiters.get(msg.id)(msg);
                    this.waiters.delete(msg.id);
                } else if (msg.push) {
                    this.pushes.push(msg.push);
                    if (this.pushWaiter) this.pushWaiter();
                }
            }
        });
        this.nextId = 1;
    }

    static open(port) {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/connection/websocket`);
        return withTimeout(new Promise((res, rej) => {
            ws.once('open', () => res(new Client(ws)));
            ws.once('error', rej);
        }), 'websocket open');
    }

    async call(method, params) {
        const id = this.nextId++;
        const reply = await withTimeout(new Promise((res) => {
            this.waiters.set(id, res);
            this.ws.send(JSON.stringify({ id, [method]: params }));
        }), method);
        if (reply.error) throw new Error(`${method}: ${JSON.stringify(reply.error)}`);
        return reply[method];
    }

    waitPublication(channel) {
        const found = () => this.pushes.find((p) => p.channel === channel && p.pub);
        if (found()) return Promise.resolve(found());
        return withTimeout(new Promise((res) => {
            this.pushWaiter = () => {
                if (found()) res(found());
            };
        }), 'publication push');
    }
}

async function apiPublish(channel) {
    const resp = await fetch(`http://127.0.0.1:${rotorPort}/api/publish`, {
        method: 'POST',
        headers: { 'X-API-Key': apiKey },
        body: JSON.stringify({ channel, data: { text: 'hello' } }),
    });
    const body = await resp.json();
    if (resp.status !== 200 || body.error) throw new Error(`publish: ${JSON.stringify(body)}`);
    return body.result;
}

const log = (what, v) => console.log(`${what.padEnd(16)} ${JSON.stringify(v)}`);

try {
    const c = await phase('connect', async () => {
        const cl = await Client.open(rotorPort);
        log('connect reply', await cl.call('connect', {}));
        return cl;
    });
    const sub = await phase('subscribe', () =>
        c.call('subscribe', { channel: 'hist:1', positioned: true, recoverable: true }));
    log('subscribe reply', sub);
    await phase('publish', async () => {
        log('publish result', await apiPublish('hist:1'));
        log('push received', await c.waitPublication('hist:1'));
    });
    await phase('publish-nohist', async () => log('publish result', await apiPublish('plain:1')));
    await phase('recover', async () => {
        await c.call('unsubscribe', { channel: 'hist:1' });
        const r = await c.call('subscribe', {
            channel: 'hist:1', positioned: true, recoverable: true, recover: true,
            epoch: sub.epoch, offset: sub.offset ?? 0,
        });
        log('recover reply', r);
    });
    await phase('disconnect', async () => {
        c.ws.close(1000);
        await new Promise((r) => c.ws.once('close', r));
        await sleep(1500); // the node drops its PUB/SUB subscription >= 1 s after the last subscriber
    });
    mark('idle');
    await sleep(1000);
    // A second client stays subscribed while rotor shuts down: the shell sends SIGTERM
    // after HOLDING, and this phase shows what the node tells Redis when it leaves.
    const c2 = await phase('subscribe-2', async () => {
        const cl = await Client.open(rotorPort);
        await cl.call('connect', {});
        await cl.call('subscribe', { channel: 'hist:2', positioned: true });
        return cl;
    });
    mark('shutdown');
    const closed = new Promise((r) => c2.ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
    console.log('HOLDING');
    log('close at shutdown', await withTimeout(closed, 'close at shutdown'));
} catch (e) {
    console.error(`redis_commands_client: ${e.message}`);
    process.exit(1);
}
