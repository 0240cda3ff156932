// Redis over TLS (SERVER.md §3.2 `rediss://`, the TLS object of §2.4 as engine.redis.tls):
// two rotor nodes reach one redis-server whose TLS port demands client certificates, with
// a throwaway CA made by the openssl CLI. The plaintext port stays open for the harness'
// readiness checks and redis-cli only; rotor is given the TLS port, which speaks nothing
// else. The three PEM forms are all used: server_ca_pem as a file path, cert_pem as raw
// PEM text, key_pem as base64 PEM.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';

import { CentClient } from 'cent.js';

import { connectedClient, subscribed } from './lib/clients.mjs';
import { PREFIX, startCluster, waitReady } from './lib/redis.mjs';
import { NAMESPACES, freePort, runRotorCli, sleep, startRotor, waitFor } from './lib/rotor.mjs';

const REC = {
    name: 'rec', history_size: 100, history_ttl: '300s', force_recovery: true,
    allow_subscribe_for_client: true, allow_history_for_client: true,
};

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, both
 * signed by it, plus an unrelated CA; returns the file paths. */
function makeCerts(dir) {
    const f = (n) => path.join(dir, n);
    const cert = (name, subject, extra) => execFileSync('openssl', ['req', '-x509', '-newkey', 'ec',
        '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`),
        '-out', f(`${name}.crt`), '-days', '2', '-subj', subject, ...extra], { stdio: 'pipe' });
    const signed = ['-addext', 'basicConstraints=critical,CA:FALSE', '-CA', f('ca.crt'), '-CAkey', f('ca.key')];
    cert('ca', '/CN=rotor-it-ca', []);
    cert('server', '/CN=localhost', ['-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', ...signed]);
    cert('client', '/CN=rotor-it-client', signed);
    cert('other', '/CN=rotor-it-other-ca', []);
    return {
        ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'),
        clientCert: f('client.crt'), clientKey: f('client.key'), otherCa: f('other.crt'),
    };
}

const cent = (rotor) => new CentClient({ url: rotor.url('/api'), apiKey: rotor.apiKey });

describe('Redis over TLS', { timeout: 60000 }, () => {
    let dir;
    let certs;
    let tlsPort;
    let cluster;
    let tlsAddress;
    let tlsObject;

    before(async () => {
        dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-tls-it-'));
        certs = makeCerts(dir);
        tlsPort = await freePort();
        tlsAddress = `rediss://127.0.0.1:${tlsPort}`;
        tlsObject = {
            server_ca_pem: certs.ca,
            cert_pem: readFileSync(certs.clientCert, 'utf8'),
            key_pem: Buffer.from(readFileSync(certs.clientKey)).toString('base64'),
        };
        cluster = await startCluster(2, {
            redisArgs: ['--tls-port', String(tlsPort), '--tls-cert-file', certs.serverCert,
                '--tls-key-file', certs.serverKey, '--tls-ca-cert-file', certs.ca,
                '--tls-auth-clients', 'yes'],
            config: {
                engine: { redis: { address: tlsAddress, tls: tlsObject } },
                channel: { namespaces: [...NAMESPACES, REC] },
            },
        });
    });

    afterEach(async (t) => {
        if (!cluster) return;
        if (!t.passed) cluster.dumpLogs(`after failed test "${t.name}"`);
        await cluster.closeClients();
    });

    after(async () => {
        if (cluster) await cluster.stop();
        if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('rotor talks to Redis only through the TLS port', async () => {
        const clients = await cluster.redis[0].lines('CLIENT', 'LIST');
        // Our own redis-cli arrives on the plaintext port; every rotor connection on TLS.
        const tls = clients.filter((l) => l.includes(`laddr=127.0.0.1:${tlsPort}`));
        assert.ok(tls.length >= 2, clients.join('\n')); // command + PUB/SUB per node at least
        const plain = clients.filter((l) => !l.includes(`laddr=127.0.0.1:${tlsPort}`));
        assert.equal(plain.length, 1, plain.join('\n')); // the CLIENT LIST call itself
    });

    it('a centrifuge-js subscriber on A gets a cent.js publish on B', async () => {
        const [A, B] = cluster.nodes;
        const c = await connectedClient(A, 'tls-sub');
        const s = await subscribed(c, 'chat:tls');
        const numsub = await cluster.redis[0].lines('PUBSUB', 'NUMSUB', `${PREFIX}.client.chat:tls`);
        assert.deepEqual(numsub, [`${PREFIX}.client.chat:tls`, '1']);
        const data = { text: 'über TLS ✓', n: 1 };
        const r = await cent(B).publish({ channel: 'chat:tls', data });
        assert.equal(r.offset, 1);
        const p = await s.rec.wait('publication');
        assert.deepEqual(p.data, data);
        assert.equal(p.offset, 1);
    });

    it('history and recovery work over TLS', async () => {
        const [A, B] = cluster.nodes;
        const ch = 'rec:tls';
        const c1 = await connectedClient(A, 'tls-r1');
        const s1 = await subscribed(c1, ch);
        const { epoch } = s1.subscribedCtx.streamPosition;
        assert.equal(s1.subscribedCtx.recoverable, true);
        for (let n = 1; n <= 5; n++) await B.apiResult('publish', { channel: ch, data: { n } });
        const hist = await A.apiResult('history', { channel: ch, limit: -1 });
        assert.deepEqual(hist.publications.map((x) => x.data.n), [1, 2, 3, 4, 5]);
        assert.equal(hist.epoch, epoch);

        const c2 = await connectedClient(B, 'tls-r2');
        const s2 = await subscribed(c2, ch, { since: { offset: 2, epoch } });
        assert.equal(s2.subscribedCtx.recovered, true);
        await s2.rec.wait('publication', () => true, 4000, 3);
        await sleep(200);
        assert.deepEqual(s2.rec.all('publication').map((x) => x.offset), [3, 4, 5]);
    });

    it('a Redis Streams consumer reads over TLS with its own tls object', async () => {
        const stream = 'tls-commands';
        const node = await startRotor({
            config: {
                engine: { type: 'redis', redis: { address: tlsAddress, prefix: PREFIX, tls: tlsObject } },
                channel: { namespaces: NAMESPACES },
                consumers: [{
                    name: 'tls_cmds', enabled: true, type: 'redis_stream',
                    redis_stream: { address: tlsAddress, tls: tlsObject, streams: [stream], consumer_group: 'g' },
                }],
            },
        });
        try {
            await waitReady(node, 200, 10000);
            const redis = cluster.redis[0];
            await waitFor(async () => (await redis.lines('XINFO', 'GROUPS', stream).catch(() => [])).includes('g'),
                5000, 'the consumer group, created over TLS');
            const c = await connectedClient(node, 'tls-cons');
            const s = await subscribed(c, 'chat:tls-cons');
            await redis.cli('XADD', stream, '*', 'method', 'publish', 'payload',
                JSON.stringify({ channel: 'chat:tls-cons', data: { via: 'stream' } }));
            assert.deepEqual((await s.rec.wait('publication')).data, { via: 'stream' });
            // Only the harness' redis-cli is on the plaintext port.
            const clients = await redis.lines('CLIENT', 'LIST');
            assert.equal(clients.filter((l) => !l.includes(`laddr=127.0.0.1:${tlsPort}`)).length, 1, clients.join('\n'));
            c.disconnect();
        } finally {
            await node.stop();
        }
    });

    it('checkconfig refuses a consumer tls object whose CA file is missing, naming the key', async () => {
        const cfg = path.join(dir, 'bad-consumer.json');
        writeFileSync(cfg, JSON.stringify({
            consumers: [{
                name: 'bad', enabled: true, type: 'redis_stream',
                redis_stream: {
                    address: tlsAddress, tls: { ...tlsObject, server_ca_pem: path.join(dir, 'missing.pem') },
                    streams: ['s'], consumer_group: 'g',
                },
            }],
        }));
        const r = await runRotorCli(['checkconfig', '-c', cfg], { cwd: dir });
        assert.equal(r.code, 1, `exit ${r.code}: ${r.stdout}${r.stderr}`);
        assert.match(r.stdout + r.stderr, /consumers\[bad\]\.redis_stream\.tls\.server_ca_pem: neither PEM/);
    });

    it('a node trusting another CA never gets ready and says why', async () => {
        const bad = await startRotor({
            config: {
                engine: {
                    type: 'redis',
                    redis: { address: tlsAddress, prefix: PREFIX, tls: { ...tlsObject, server_ca_pem: certs.otherCa } },
                },
            },
        });
        try {
            await sleep(1500);
            assert.equal((await waitReady(bad, 503, 2000)).status, 503);
            await waitFor(() => /certificate verify failed/.test(bad.logs()), 3000, 'a log line about the certificate');
        } finally {
            await bad.stop({ check: false });
        }
    });
});
