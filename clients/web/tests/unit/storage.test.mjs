// SPDX-License-Identifier: GPL-3.0-or-later
// The pairing store on an IndexedDB implementation from npm (fake-indexeddb): keys
// stored non-extractable and still usable after a reopen, counters strictly
// increasing and persisted, the catalogue stored, version 1 records dropped.
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import { IDBFactory } from 'fake-indexeddb';

import * as p from '../../build/node/protocol2.js';
import { DB_NAME, PairingStore } from '../../build/node/storage.js';
import { hex, toHex, vectors } from './vectors.mjs';

const keysV = vectors('keys');
const minimal = vectors('requests').cases.find((c) => c.name === 'minimal');
let factory;

beforeEach(() => {
    factory = new IDBFactory(); // a fresh, empty database per test
});

async function record(n, secretHex = keysV.device[0].secret) {
    return {
        id: `pi${n}:dev${n}`, piId: `pi${n}`, piName: `pi ${n}`, piKey: '04' + 'ab'.repeat(64), deviceId: minimal.device_id,
        label: '', totp: { alg: 'SHA1', digits: 6, period: 30 }, keys: await p.deviceKeys(hex(secretHex), 'SHA1'),
        counter: 0, actions: [], catalogueAt: 0, bluetoothId: '', addedAt: n,
    };
}

describe('PairingStore', () => {
    test('non-extractable keys survive a reopen and still seal the vector frame', async () => {
        let s = await PairingStore.open(factory);
        await s.put(await record(1, minimal.secret));
        s.close();
        s = await PairingStore.open(factory);
        const [back] = await s.list();
        for (const k of Object.values(back.keys)) {
            assert.equal(k.extractable, false);
            await assert.rejects(crypto.subtle.exportKey('raw', k));
        }
        const code = (await p.totp(back.keys.totp, back.totp, minimal.timestamp)).code;
        assert.equal(code, minimal.totp_code);
        const frame = await p.sealCommand(back.keys, hex(minimal.device_id), BigInt(minimal.counter), {
            timestamp: BigInt(minimal.timestamp), challenge: hex(minimal.challenge), totp: code, action: minimal.action, args: minimal.args,
        }, hex(minimal.nonce));
        assert.equal(toHex(frame), minimal.frame);
        s.close();
    });

    test('counters go up by one, concurrent taps get distinct ones, and they survive a reopen', async () => {
        let s = await PairingStore.open(factory);
        const rec = await record(1);
        await s.put(rec);
        assert.equal(await s.nextCounter(rec.id), 1);
        assert.equal(await s.nextCounter(rec.id), 2);
        const many = await Promise.all([1, 2, 3, 4].map(() => s.nextCounter(rec.id)));
        assert.deepEqual([...many].sort(), [3, 4, 5, 6], `distinct counters: ${many}`);
        s.close();
        s = await PairingStore.open(factory);
        assert.equal(await s.nextCounter(rec.id), 7);
        await s.remove(rec.id);
        await assert.rejects(s.nextCounter(rec.id), /this pairing was removed/);
        s.close();
    });

    test('the catalogue is stored with its time; several Pis in the order they were added', async () => {
        const s = await PairingStore.open(factory);
        await s.put(await record(2));
        await s.put(await record(1));
        const actions = [{ name: 'lights', description: 'Lights', confirm: true, kind: 'choices', maxArgs: 1, choices: ['low', 'high'] }];
        const r = await s.setCatalogue('pi2:dev2', actions, 99);
        assert.deepEqual(r.actions, actions);
        assert.equal(r.catalogueAt, 99);
        assert.deepEqual((await s.list()).map((x) => x.piName), ['pi 1', 'pi 2']);
        s.close();
    });

    test('a version 1 database is upgraded and its pairings dropped', async () => {
        await new Promise((resolve, reject) => {
            const req = factory.open(DB_NAME, 1);
            req.onupgradeneeded = () => {
                req.result.createObjectStore('pairings', { keyPath: 'id' }).put({ id: 'old', piName: 'v1 pi', buttons: [] });
            };
            req.onsuccess = () => { req.result.close(); resolve(); };
            req.onerror = () => reject(req.error);
        });
        const s = await PairingStore.open(factory);
        assert.deepEqual(await s.list(), []);
        s.close();
    });
});
