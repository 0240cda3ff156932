// A Redis that turns read-only (made a replica, as after a failover the old master is):
// publishes fail with 100 (never a false success), /ready answers 503 naming the reason,
// and both recover once the server is a writable master again (SERVER.md §7.9).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { redisCli, redisEngine, startRedis, waitReady } from './lib/redis.mjs';
import { startRotor } from './lib/rotor.mjs';

describe('read-only Redis', { timeout: 60000 }, () => {
    let redis;
    let rotor;
    before(async () => {
        redis = await startRedis();
        rotor = await startRotor({ config: redisEngine(redis) });
        await waitReady(rotor, 200);
    });
    after(async () => {
        await rotor?.stop();
        await redis?.stop();
    });

    it('publish fails, /ready 503 read-only, both recover after REPLICAOF NO ONE', async () => {
        const ok = await rotor.api('publish', { channel: 'hist:ro', data: { n: 1 } });
        assert.equal(ok.result.offset, 1);
        // A replica of a master that does not exist: read-only, no data changes.
        await redisCli(redis.port, 'REPLICAOF', '127.0.0.1', '1');
        const failed = await rotor.api('publish', { channel: 'hist:ro', data: { n: 2 } });
        assert.equal(failed.error?.code, 100, JSON.stringify(failed));
        const r = await waitReady(rotor, 503, 5000);
        assert.match(r.text, /is read-only/);
        await redisCli(redis.port, 'REPLICAOF', 'NO', 'ONE');
        await waitReady(rotor, 200, 8000);
        const again = await rotor.api('publish', { channel: 'hist:ro', data: { n: 3 } });
        assert.equal(again.result.offset, 2, JSON.stringify(again));
    });
});
