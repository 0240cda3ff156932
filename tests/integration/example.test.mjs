// The README example (example.mjs) against a node configured like `make run`: the file
// config genconfig writes plus the DEV_ENV variables of the Makefile, read from there so
// the two cannot drift apart.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startRotor, signJwt, nowSec } from './lib/rotor.mjs';

function makeRunEnv() {
    const mk = readFileSync(new URL('../../Makefile', import.meta.url), 'utf8');
    const block = mk.split('DEV_ENV =')[1].split('\n\n')[0];
    const env = {};
    for (const m of block.matchAll(/(ROTOR_[A-Z_]+)=(\S+)/g))
        env[m[1]] = m[2];
    return env;
}

describe('README example', () => {
    let rotor;
    after(async () => rotor && rotor.stop());

    it('receives its own publication on a node configured like make run', async () => {
        const env = makeRunEnv();
        assert.ok(Object.keys(env).length >= 5, 'DEV_ENV found in the Makefile');
        rotor = await startRotor({
            config: () => ({ client: { token: { hmac_secret_key: 'readme-secret' } },
                             http_api: { key: 'readme-key' } }),
            env,
        });
        const token = signJwt({ sub: 'alice', exp: nowSec() + 600 }, 'readme-secret');
        const child = spawn(process.execPath, ['example.mjs'], {
            env: { ...process.env, TOKEN: token, ROTOR_WS: rotor.wsUrl() },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { out += d; });
        const code = await new Promise((resolve) => child.on('exit', resolve));
        assert.equal(code, 0, out);
        assert.match(out, /received \{ text: 'hello' \}/);
    });
});
