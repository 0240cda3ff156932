// Clients for the transports other than the JSON WebSocket: centrifuge-js (JSON and Protobuf
// builds) forced onto one transport, and plain readers for the unidirectional endpoints
// (ws, fetch streaming, eventsource, @grpc/grpc-js) that collect what the server pushes;
// a minimal Protobuf reader for asserting on binary streams.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { Centrifuge as CentrifugePb } from 'centrifuge/build/protobuf';
import { EventSource } from 'eventsource';

import { Centrifuge, Recorder, WebSocket } from './clients.mjs';
import { sleep } from './rotor.mjs';

export { CentrifugePb, EventSource };

const CLIENT_EVENTS = ['connecting', 'connected', 'disconnected', 'error', 'publication',
    'subscribed', 'subscribing', 'unsubscribed', 'join', 'leave', 'message'];

/** centrifuge-js on one transport: 'websocket' | 'http_stream' | 'sse'; pb: Protobuf build. */
/** emulationVia: the node that receives /emulation POSTs (default: the same node). */
export function transportClient(rotor, transport, { pb = false, token, opts = {}, emulationVia } = {}) {
    const Impl = pb ? CentrifugePb : Centrifuge;
    const endpoint = transport === 'websocket' ? rotor.wsUrl()
        : rotor.url(`/connection/${transport}`);
    const c = new Impl([{ transport, endpoint }], {
        websocket: WebSocket,
        fetch: globalThis.fetch,
        readableStream: globalThis.ReadableStream,
        eventsource: EventSource,
        emulationEndpoint: (emulationVia ?? rotor).url('/emulation'),
        minReconnectDelay: 100,
        maxReconnectDelay: 400,
        timeout: 4000,
        token,
        ...opts,
    });
    c.rec = new Recorder(c, CLIENT_EVENTS);
    rotor.clients.add({ close: () => c.disconnect() });
    return c;
}

/** Collects newline-delimited JSON (uni_http_stream) or SSE data lines from a fetch body. */
export class StreamReader {
    constructor(res, { sse = false } = {}) {
        this.res = res;
        this.sse = sse;
        this.messages = [];
        this.raw = '';
        this.ended = false;
        this._pump();
    }

    async _pump() {
        const dec = new TextDecoder();
        let buf = '';
        try {
            for await (const chunk of this.res.body) {
                const text = dec.decode(chunk, { stream: true });
                this.raw += text;
                buf += text;
                const sep = this.sse ? '\n\n' : '\n';
                let i;
                while ((i = buf.indexOf(sep)) >= 0) {
                    const item = buf.slice(0, i);
                    buf = buf.slice(i + sep.length);
                    const line = this.sse ? item.replace(/^\r?\n?/, '') : item;
                    if (!line.trim()) continue;
                    this.messages.push(JSON.parse(this.sse ? line.replace(/^data: /, '') : line));
                }
            }
        } catch {
            // aborted
        }
        this.ended = true;
    }

    async wait(pred, timeout = 4000) {
        const t0 = Date.now();
        for (;;) {
            const m = this.messages.find(pred);
            if (m) return m;
            if (Date.now() - t0 > timeout) {
                throw new Error(`timeout; got ${JSON.stringify(this.messages)}`);
            }
            await sleep(20);
        }
    }

    async waitEnd(timeout = 4000) {
        const t0 = Date.now();
        while (!this.ended) {
            if (Date.now() - t0 > timeout) throw new Error('stream did not end');
            await sleep(20);
        }
    }
}

/** Opens a uni stream with fetch. */
export async function uniStream(rotor, kind, connectRequest, { headers = {} } = {}) {
    const ctrl = new AbortController();
    const res = await fetch(rotor.url(`/connection/${kind}`), {
        method: 'POST',
        body: JSON.stringify(connectRequest),
        headers: { 'Content-Type': 'application/json', ...headers },
        signal: ctrl.signal,
    });
    const r = new StreamReader(res, { sse: kind === 'uni_sse' });
    r.close = () => ctrl.abort();
    rotor.clients.add({ close: () => ctrl.abort() });
    return r;
}

/** A browser-style EventSource (the `eventsource` package) on GET /connection/uni_sse with
 * the connect request in cf_connect. Collects each message's parsed data; closed after the
 * test (EventSource would otherwise reconnect when the stream ends). */
export function uniEventSource(rotor, connectRequest) {
    const url = new URL(rotor.url('/connection/uni_sse'));
    url.searchParams.append('cf_connect', JSON.stringify(connectRequest));
    const es = new EventSource(url.toString());
    const out = { es, messages: [], errors: [], opened: false };
    es.onopen = () => { out.opened = true; };
    es.onmessage = (ev) => out.messages.push(JSON.parse(ev.data));
    es.onerror = (ev) => out.errors.push(ev);
    out.wait = async (pred, timeout = 4000) => {
        const t0 = Date.now();
        for (;;) {
            const m = out.messages.find(pred);
            if (m) return m;
            if (Date.now() - t0 > timeout) {
                throw new Error(`eventsource timeout; got ${JSON.stringify(out.messages)}`);
            }
            await sleep(20);
        }
    };
    out.close = () => es.close();
    rotor.clients.add({ close: () => es.close() });
    return out;
}

/** Splits varint-delimited Protobuf messages (a Protobuf http_stream body). */
export function pbDelimited(buf) {
    const out = [];
    let off = 0;
    while (off < buf.length) {
        const [len, n] = pbVarint(buf, off);
        off += n;
        if (off + len > buf.length) throw new Error(`truncated delimited message at ${off}`);
        out.push(buf.subarray(off, off + len));
        off += len;
    }
    return out;
}

function pbVarint(buf, off) {
    let v = 0;
    for (let i = 0; i < 10; i++) {
        if (off + i >= buf.length) throw new Error('truncated varint');
        const b = buf[off + i];
        v += (b & 0x7f) * 2 ** (7 * i);
        if (b < 0x80) return [v, i + 1];
    }
    throw new Error('varint too long');
}

/** Decodes one Protobuf message into {fieldNumber: value} (varints as numbers, length-
 * delimited fields as Buffers; the last occurrence wins). Enough to walk a Reply. */
export function pbFields(buf) {
    const fields = {};
    let off = 0;
    while (off < buf.length) {
        const [key, n] = pbVarint(buf, off);
        off += n;
        const field = Math.floor(key / 8);
        const type = key % 8;
        if (type === 0) {
            const [v, m] = pbVarint(buf, off);
            fields[field] = v;
            off += m;
        } else if (type === 2) {
            const [len, m] = pbVarint(buf, off);
            off += m;
            fields[field] = buf.subarray(off, off + len);
            off += len;
        } else {
            throw new Error(`unexpected wire type ${type} for field ${field}`);
        }
    }
    return fields;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const UNISTREAM_PROTO = path.resolve(here, '../../../node/proto/unistream.proto');

/** A CentrifugoUniStream client (grpc-js + proto-loader). */
export function grpcClient(port) {
    const def = protoLoader.loadSync(UNISTREAM_PROTO, {
        keepCase: true, longs: Number, enums: String, defaults: false, oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def);
    const Svc = pkg.centrifugal.centrifugo.unistream.CentrifugoUniStream;
    return new Svc(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** Calls Consume with raw request bytes instead of an encoded ConnectRequest, through a
 * generic grpc-js client (the generated one would only send what it can encode). Resolves
 * with the call's final status {code, details} and the messages received. */
export function grpcConsumeRaw(rotor, port, bytes) {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = client.makeServerStreamRequest(
        '/centrifugal.centrifugo.unistream.CentrifugoUniStream/Consume',
        (b) => b, (b) => b, Buffer.from(bytes));
    rotor.clients.add({ close: () => { call.cancel(); client.close(); } });
    const messages = [];
    call.on('data', (m) => messages.push(m));
    call.on('error', () => {}); // the status event carries the code
    return new Promise((resolve) => {
        call.on('status', (s) => {
            client.close();
            resolve({ code: s.code, details: s.details, messages });
        });
    });
}

/** Starts Consume and collects the pushes. */
export function grpcConsume(rotor, client, request) {
    const call = client.consume(request);
    const out = { pushes: [], status: null, error: null, call };
    call.on('data', (p) => out.pushes.push(p));
    call.on('status', (s) => { out.status = s; });
    call.on('error', (e) => { out.error = e; });
    out.wait = async (pred, timeout = 4000) => {
        const t0 = Date.now();
        for (;;) {
            const m = out.pushes.find(pred);
            if (m) return m;
            if (Date.now() - t0 > timeout) {
                throw new Error(`grpc timeout; got ${JSON.stringify(out.pushes)}`);
            }
            await sleep(20);
        }
    };
    rotor.clients.add({ close: () => call.cancel() });
    return out;
}
