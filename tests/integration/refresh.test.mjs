// Connection token refresh (PROTOCOL.md §3.10): a token granting another set of server-side
// channels than the connect token ends the connection with 3010; the same set refreshes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RawClient } from './lib/clients.mjs';
import { nowSec } from './lib/rotor.mjs';
import { useRotor } from './lib/suite.mjs';

describe('refresh', { timeout: 30000 }, () => {
    const rotor = useRotor();

    it('same token channels: refreshed with the new ttl', async () => {
        const c = await RawClient.open(rotor);
        const r = await c.connect(rotor.makeToken({ sub: 'u1', exp: nowSec() + 60, channels: ['pub:r1', 'pub:r2'] }));
        assert.ok(r.connect.subs['pub:r1'] && r.connect.subs['pub:r2']);
        assert.equal(r.connect.expires, true);
        const ref = await c.command({
            refresh: { token: rotor.makeToken({ sub: 'u1', exp: nowSec() + 600, channels: ['pub:r2', 'pub:r1'] }) },
        });
        assert.equal(ref.refresh.expires, true);
        assert.ok(ref.refresh.ttl > 500 && ref.refresh.ttl <= 600, JSON.stringify(ref));
        c.close();
    });

    it('other token channels: disconnect 3010 insufficient state', async () => {
        const c = await RawClient.open(rotor);
        await c.connect(rotor.makeToken({ sub: 'u2', exp: nowSec() + 60, channels: ['pub:r3'] }));
        c.send({ id: 9, refresh: { token: rotor.makeToken({ sub: 'u2', exp: nowSec() + 600, channels: ['pub:r4'] }) } });
        const { code } = await c.waitClose();
        assert.equal(code, 3010);
    });

    it('token of another user: disconnect 3500', async () => {
        const c = await RawClient.open(rotor);
        await c.connect(rotor.makeToken({ sub: 'u3', exp: nowSec() + 60 }));
        c.send({ id: 9, refresh: { token: rotor.makeToken({ sub: 'other', exp: nowSec() + 600 }) } });
        const { code } = await c.waitClose();
        assert.equal(code, 3500);
    });

    it('expired refresh token: disconnect 3005', async () => {
        const c = await RawClient.open(rotor);
        await c.connect(rotor.makeToken({ sub: 'u4', exp: nowSec() + 60 }));
        c.send({ id: 9, refresh: { token: rotor.makeToken({ sub: 'u4', exp: nowSec() - 5 }) } });
        const { code } = await c.waitClose();
        assert.equal(code, 3005);
    });
});
