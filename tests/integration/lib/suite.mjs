// Per-suite rotor lifecycle for node:test: one server per describe block, clients closed
// after every test, the server log printed when a test failed, and a crash or unclean exit
// of the server reported by the `after` hook.
import { after, afterEach, before } from 'node:test';

import { rotorBinary, startRotor } from './rotor.mjs';

// Fails the whole test file at once, with one clear message, when there is no binary.
rotorBinary();

/** Registers before/afterEach/after hooks in the calling describe() and returns a proxy
 * that forwards to the running Rotor (usable once `before` ran). */
export function useRotor(opts = {}) {
    const holder = { rotor: null };
    before(async () => {
        holder.rotor = await startRotor(opts);
    });
    afterEach(async (t) => {
        const r = holder.rotor;
        if (!r) return;
        if (!t.passed) r.dumpLogs(`after failed test "${t.name}"`);
        await r.closeClients();
        if (r.exited && !r.stopping) {
            r.dumpLogs('(server died)');
            throw new Error(`rotor died during "${t.name}" (exit ${JSON.stringify(r.exited)})`);
        }
    });
    after(async () => {
        if (holder.rotor) await holder.rotor.stop();
    });
    return new Proxy(holder, {
        get(h, prop) {
            if (!h.rotor) throw new Error(`rotor not started (reading ${String(prop)})`);
            const v = h.rotor[prop];
            return typeof v === 'function' ? v.bind(h.rotor) : v;
        },
    });
}
