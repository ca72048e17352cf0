// SPDX-License-Identifier: GPL-3.0-or-later
// The pairing store on an IndexedDB implementation from npm (fake-indexeddb): keys
// stored non-extractable and still usable after a reopen, the secret wiped, counters
// strictly increasing and persisted, several Pis, buttons.
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import { IDBFactory } from 'fake-indexeddb';

import * as p from '../../build/node/protocol.js';
import { PairingStore } from '../../build/node/storage.js';
import { hex, toHex, vectors } from './vectors.mjs';

const pv = vectors('pairing');
const req = vectors('requests').cases[0]; // shares the secret of pairing.valid[0]
let factory;

beforeEach(() => {
    factory = new IDBFactory(); // a fresh, empty database per test
});

const uri = (i = 0, extra = '') => pv.valid[i].app_url + extra;

describe('PairingStore', () => {
    test('import keeps non-extractable keys that still compute the reference MAC after a reopen', async () => {
        let s = await PairingStore.open(factory);
        const pairing = p.parsePairing(uri(0, '&actions=lights.on'));
        const rec = await s.importPairing(pairing, 1000);
        assert.ok(pairing.secret.every((b) => b === 0), 'the parsed secret is wiped after import');
        assert.equal(rec.id, `${pv.valid[0].fields.pi_id}:${pv.valid[0].fields.device_id}`);
        s.close();

        s = await PairingStore.open(factory);
        const [back] = await s.list();
        for (const k of Object.values(back.keys)) {
            assert.equal(k.extractable, false);
            await assert.rejects(crypto.subtle.exportKey('raw', k));
        }
        assert.ok(!JSON.stringify(back, (_k, v) => (typeof v === 'bigint' ? String(v) : v)).includes(pv.valid[0].fields.secret_base32));
        // The stored keys give exactly the vector's frame and TOTP code.
        const enc = await p.encodeRequest({
            deviceId: hex(req.device_id), counter: BigInt(req.counter), timestamp: BigInt(req.timestamp),
            challenge: hex(req.challenge), totp: (await p.totp(back.keys.totp, back.totp, req.timestamp)).code,
            action: req.action, args: req.args,
        }, back.keys.request);
        assert.equal(toHex(enc.frame), req.frame);
        const r = await p.decodeResponse(hex(vectors('responses').cases[0].frame), back.keys.response);
        assert.equal(r.macOk, true);
        assert.deepEqual(back.buttons, [{ action: 'lights.on', label: 'lights.on', args: [] }]);
        assert.equal(back.label, "Alice's phone");
        s.close();
    });

    test('counters strictly increase, are at least the time in ms, and survive a reopen', async () => {
        let s = await PairingStore.open(factory);
        const rec = await s.importPairing(p.parsePairing(uri()), 0);
        assert.equal(await s.nextCounter(rec.id, 5000), 5000);
        assert.equal(await s.nextCounter(rec.id, 5000), 5001, 'same millisecond: still larger');
        assert.equal(await s.nextCounter(rec.id, 100), 5002, 'clock went back: still larger');
        const many = await Promise.all([1, 2, 3, 4].map(() => s.nextCounter(rec.id, 0)));
        assert.equal(new Set(many).size, 4, `concurrent taps got distinct counters: ${many}`);
        s.close();
        s = await PairingStore.open(factory);
        assert.equal(await s.nextCounter(rec.id, 0), 5007);
        s.close();
    });

    test('several Pis; importing the same pairing again keeps its state; remove', async () => {
        const s = await PairingStore.open(factory);
        const a = await s.importPairing(p.parsePairing(uri(0)), 1);
        const b = await s.importPairing(p.parsePairing(uri(1)), 2);
        const c = await s.importPairing(p.parsePairing(uri(2)), 3);
        assert.deepEqual((await s.list()).map((r) => r.piName), ['garage-pi', 'Küche Pi ☕', 'p']);
        assert.equal(b.totp.alg, 'SHA256');
        assert.equal(c.totp.period, 15);
        await s.nextCounter(a.id, 42);
        await s.addButton(a.id, { action: 'garage', label: 'Garage door', args: [] });
        const again = await s.importPairing(p.parsePairing(uri(0, '&actions=other')), 99);
        assert.equal(again.counter, 42);
        assert.deepEqual(again.buttons.map((x) => x.label), ['Garage door'], 'buttons kept, hint ignored');
        assert.equal(again.addedAt, 1);
        assert.equal((await s.list()).length, 3);
        await s.remove(b.id);
        assert.deepEqual((await s.list()).map((r) => r.piName), ['garage-pi', 'p']);
        await assert.rejects(s.nextCounter(b.id, 0), /this pairing was removed/);
        s.close();
    });

    test('buttons: invalid action names are refused; removal by index', async () => {
        const s = await PairingStore.open(factory);
        const a = await s.importPairing(p.parsePairing(uri()), 1);
        await assert.rejects(s.addButton(a.id, { action: 'rm -rf', label: '', args: [] }), /not a valid action name/);
        await s.addButton(a.id, { action: 'one', label: '', args: [] });
        await s.addButton(a.id, { action: 'two', label: 'Two', args: ['x'] });
        let r = await s.get(a.id);
        assert.deepEqual(r.buttons, [{ action: 'one', label: 'one', args: [] }, { action: 'two', label: 'Two', args: ['x'] }]);
        r = await s.removeButton(a.id, 0);
        assert.deepEqual(r.buttons.map((b) => b.action), ['two']);
        s.close();
    });
});
