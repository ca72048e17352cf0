// SPDX-License-Identifier: GPL-3.0-or-later
// The app's Web Bluetooth exchange (src/ble.ts) against a fake navigator.bluetooth
// whose Pi checks each request's MAC with the pairing's key and answers with a MACed
// response: by notifications in fragments (ATT MTU 23), or only in Result when it
// offers no notifications; a different Pi's Info stops the exchange before anything
// is written; a remembered Pi comes back through getDevices() without a chooser.
import assert from 'node:assert/strict';
import nodeCrypto from 'node:crypto';
import { beforeEach, describe, test } from 'node:test';

import { IDBFactory } from 'fake-indexeddb';

import { Bluetooth } from '../../build/node/ble.js';
import * as p from '../../build/node/protocol.js';
import { PairingStore } from '../../build/node/storage.js';
import { vectors } from './vectors.mjs';

const pv = vectors('pairing').valid[0]; // garage-pi, SHA1
const hmac = (key, data) => nodeCrypto.createHmac('sha256', key).update(data).digest();

class FakeChar {
    constructor(uuid, props, pi) {
        this.uuid = uuid;
        this.properties = props;
        this.pi = pi;
        this.listeners = [];
        this.value = null;
    }
    addEventListener(type, fn) { if (type === 'characteristicvaluechanged') this.listeners.push(fn); }
    async startNotifications() {
        if (!this.properties.notify) throw Object.assign(new Error('GATT Error: Not supported.'), { name: 'NotSupportedError' });
        this.pi.log.push('subscribe');
        this.notifying = true;
    }
    async readValue() {
        this.pi.log.push(`read ${this.uuid.slice(-4)}`);
        const v = this.pi.read(this.uuid);
        return new DataView(v.buffer, v.byteOffset, v.byteLength);
    }
    async writeValueWithResponse(data) {
        this.pi.log.push(`write ${this.uuid.slice(-4)}`);
        this.pi.write(Buffer.from(data));
    }
    notify(payload) {
        this.value = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
        for (const fn of this.listeners) fn({ target: this });
    }
}

/** A Pi on the other end of the fake link, with the pairing's keys. */
class FakePi {
    constructor({ keys, piId, notify = true }) {
        this.keys = keys; // raw request/response keys (Buffers)
        this.piId = piId;
        this.log = [];
        this.result = Buffer.alloc(0);
        this.chars = Object.fromEntries([
            [p.INFO_UUID, { read: true }], [p.CHALLENGE_UUID, { read: true }],
            [p.COMMAND_UUID, { write: true }], [p.RESULT_UUID, { read: true, notify }],
        ].map(([u, props]) => [u, new FakeChar(u, props, this)]));
        this.connected = false;
        const self = this;
        this.device = {
            id: 'dev-1', name: 'garage-pi',
            addEventListener() {},
            gatt: {
                get connected() { return self.connected; },
                async connect() { self.connected = true; self.log.push('connect'); return this; },
                disconnect() { self.connected = false; },
                async getPrimaryService(uuid) {
                    assert.equal(uuid, p.SERVICE_UUID);
                    return { getCharacteristic: async (u) => self.chars[u] };
                },
            },
        };
    }
    read(uuid) {
        if (uuid === p.INFO_UUID) return Buffer.from(JSON.stringify({ v: 1, name: 'garage-pi', pi: this.piId }));
        if (uuid === p.CHALLENGE_UUID) return (this.challenge = nodeCrypto.randomBytes(16));
        if (uuid === p.RESULT_UUID) return this.result;
        throw new Error('not readable');
    }
    write(frame) {
        const body = frame.subarray(0, frame.length - 32);
        const mac = frame.subarray(frame.length - 32);
        assert.ok(nodeCrypto.timingSafeEqual(hmac(this.keys.request, body), mac), 'the request MAC verifies with the pairing key');
        assert.ok(frame.subarray(34, 50).equals(this.challenge), 'the request carries the challenge just read');
        this.requests = (this.requests || 0) + 1;
        const output = Buffer.from('light is on\n');
        const head = Buffer.alloc(33);
        head[0] = 1;
        head[1] = 2;
        frame.copy(head, 2, 18, 26);              // counter
        mac.copy(head, 10, 0, 16);                // tag
        head[26] = 0;                             // ok
        head.writeInt32BE(0, 27);
        head.writeUInt16BE(output.length, 31);
        const resp = Buffer.concat([head, output]);
        this.result = Buffer.concat([resp, hmac(this.keys.response, resp)]);
        const chr = this.chars[p.RESULT_UUID];
        // The answer comes later, as the daemon's would, in 19-byte fragments.
        if (chr.notifying) setTimeout(() => { for (const f of p.fragment(new Uint8Array(this.result), 23)) chr.notify(f); }, 5);
    }
}

function fakeBluetooth(pi) {
    const calls = { requestDevice: [], getDevices: 0 };
    return {
        calls,
        async requestDevice(opts) { calls.requestDevice.push(opts); return pi.device; },
        async getDevices() { calls.getDevices += 1; return [pi.device]; },
    };
}

let store;
let rec;
let rawKeys;

beforeEach(async () => {
    store = await PairingStore.open(new IDBFactory());
    rec = await store.importPairing(p.parsePairing(pv.app_url), 1);
    const k = await p.deriveKeys(Buffer.from(pv.fields.secret, 'hex'), 'SHA1', true);
    rawKeys = {
        request: Buffer.from(await crypto.subtle.exportKey('raw', k.request)),
        response: Buffer.from(await crypto.subtle.exportKey('raw', k.response)),
    };
});

describe('Bluetooth.trigger', () => {
    test('notifications: chooser filtered by service and name, Info checked, subscribed before the write, answer reassembled and verified', async () => {
        const pi = new FakePi({ keys: rawKeys, piId: pv.fields.pi_id });
        const bt = fakeBluetooth(pi);
        const progress = [];
        const r = await new Bluetooth(store, bt).trigger(rec, 'lights.on', [], (t) => progress.push(t));
        assert.equal(r.macOk, true);
        assert.equal(r.statusName, 'ok');
        assert.equal(Buffer.from(r.output).toString(), 'light is on\n');
        assert.deepEqual(bt.calls.requestDevice, [{ filters: [{ services: [p.SERVICE_UUID], name: 'garage-pi' }] }]);
        assert.deepEqual(pi.log, ['connect', 'read 2901', 'subscribe', 'read 2902', 'write 2903'], 'no Result read: notified');
        const stored = await store.get(rec.id);
        assert.equal(stored.bluetoothId, 'dev-1', 'the chosen device is remembered');
        assert.ok(stored.counter >= Date.now() - 60000);
        assert.ok(progress.some((t) => /Choose “garage-pi”/.test(t)));
    });

    test('without notifications the answer is read from Result', async () => {
        const pi = new FakePi({ keys: rawKeys, piId: pv.fields.pi_id, notify: false });
        const r = await new Bluetooth(store, fakeBluetooth(pi)).trigger(rec, 'lights.on', [], () => {});
        assert.equal(r.macOk, true);
        assert.equal(r.statusName, 'ok');
        assert.deepEqual(pi.log.slice(0, 4), ['connect', 'read 2901', 'read 2902', 'write 2903']);
        assert.ok(pi.log.slice(4).every((x) => x === 'read 2904') && pi.log.length >= 5, pi.log.join(','));
    });

    test('a different Pi is refused before anything is written', async () => {
        const pi = new FakePi({ keys: rawKeys, piId: '00'.repeat(16) });
        await assert.rejects(new Bluetooth(store, fakeBluetooth(pi)).trigger(rec, 'lights.on', [], () => {}),
                             (e) => e.name === 'AppError' && e.msg.code === 'wrong-pi');
        assert.deepEqual(pi.log, ['connect', 'read 2901']);
        assert.equal((await store.get(rec.id)).bluetoothId, '', 'the wrong device is forgotten');
    });

    test('a remembered Pi comes back through getDevices() without a chooser', async () => {
        await store.update(rec.id, (r) => { r.bluetoothId = 'dev-1'; });
        const pi = new FakePi({ keys: rawKeys, piId: pv.fields.pi_id });
        const bt = fakeBluetooth(pi);
        const r = await new Bluetooth(store, bt).trigger(await store.get(rec.id), 'lights.on', [], () => {});
        assert.equal(r.statusName, 'ok');
        assert.equal(bt.calls.getDevices, 1);
        assert.deepEqual(bt.calls.requestDevice, []);
    });
});
