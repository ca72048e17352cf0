// SPDX-License-Identifier: GPL-3.0-or-later
// The app's Web Bluetooth side (src/ble.ts) against a fake Pi that speaks protocol
// version 2 (fake_pi.mjs): pairing by the exchange and its refusals, the catalogue
// in pages, commands sealed and answered, clocks, a changed catalogue at the next
// connection, answers by notifications in fragments or read from Result.
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import { IDBFactory } from 'fake-indexeddb';

import { Bluetooth } from '../../build/node/ble.js';
import { clockNote, describeCommand } from '../../build/node/errors.js';
import * as p from '../../build/node/protocol2.js';
import { PairingStore } from '../../build/node/storage.js';
import { FakePi, PI, fakeBluetooth, linkFor } from './fake_pi.mjs';

const DEV = 'f758a1c9c46769c302b22ca2698027a2';
const CODE = Buffer.from('5d1f0b7a3c9e42d18f6a2b4c0e9d7f31', 'hex');
const ACTIONS = [
    { name: 'door', description: 'Unlock the front door', confirm: true, kind: 'none', maxArgs: 0 },
    { name: 'lights', description: '', confirm: false, kind: 'choices', maxArgs: 1, choices: ['low', 'high'] },
    { name: 'say', description: 'Speak a text', confirm: false, kind: 'free', maxArgs: 1 },
    { name: 'temp', description: 'Set the heating', confirm: false, kind: 'pattern', maxArgs: 1, pattern: '[0-9]{2}' },
];

let store;
let pi;
const noProgress = () => {};

beforeEach(async () => {
    store = await PairingStore.open(new IDBFactory());
    pi = new FakePi();
    pi.addPending(DEV, CODE, ACTIONS.slice());
});

/** Pairs through `bt` and returns the stored record. */
async function paired(bt = new Bluetooth(store, fakeBluetooth(pi))) {
    return bt.pair(linkFor(DEV, CODE), noProgress);
}

describe('pairing by exchange', () => {
    test('chooser by name, Info checked, exchange confirmed, keys stored non-extractable, the catalogue fetched in pages', async () => {
        const nav = fakeBluetooth(pi);
        const link = linkFor(DEV, CODE);
        const progress = [];
        const rec = await new Bluetooth(store, nav).pair(link, (t) => progress.push(t), 1234);
        assert.deepEqual(nav.calls.requestDevice, [{ filters: [{ services: [p.SERVICE_UUID], name: 'garage-pi' }] }]);
        assert.ok(progress.some((t) => /Choose “garage-pi”/.test(t)));
        // Pair (Result read first: a pair refusal's counter is always 0), then two
        // catalogue pages (2 + 2 entries), each with a fresh challenge.
        assert.deepEqual(pi.log, ['connect', 'read 2901', 'subscribe', 'read 2902', 'read 2904', 'write 2903',
                                  'read 2902', 'write 2903', 'read 2902', 'write 2903']);
        assert.deepEqual(pi.frames.map((f) => f[1]), [p.T_PAIR, p.T_CATALOGUE, p.T_CATALOGUE]);
        assert.equal(pi.devices.get(DEV).state, 'active');
        assert.deepEqual(link.code, new Uint8Array(16), 'the code is wiped once the keys exist');

        const stored = await store.get(`${PI.id}:${DEV}`);
        assert.deepEqual(stored.actions, ACTIONS);
        assert.equal(stored.counter, 2, 'one counter per catalogue page');
        assert.equal(stored.piKey, PI.public);
        assert.equal(stored.label, 'Anna');
        assert.equal(stored.bluetoothId, 'dev-1');
        assert.equal(stored.addedAt, 1234);
        assert.equal(rec.id, stored.id);
        const algs = Object.fromEntries(Object.entries(stored.keys).map(([k, v]) => [k, [v.algorithm.name, v.extractable, v.usages.join()]]));
        assert.deepEqual(algs, { request: ['AES-GCM', false, 'encrypt'], response: ['AES-GCM', false, 'decrypt'], totp: ['HMAC', false, 'sign'] });
        const json = JSON.stringify(stored);
        assert.ok(!json.includes(CODE.toString('hex')) && !json.includes(p.base32Encode(CODE)), 'no code in the record');
    });

    test('a refused pair request: specific reasons, nothing stored', async () => {
        const cases = [
            ['code used', () => { pi.devices.get(DEV).state = 'active'; }, 'pair-code_used', /already used[\s\S]*new code/],
            ['expired', () => { pi.devices.get(DEV).expired = true; }, 'pair-code_expired', /expired[\s\S]*new code/],
            ['unknown', () => { pi.devices.delete(DEV); }, 'pair-unknown_device', /does not know/],
            ['revoked', () => { pi.devices.get(DEV).state = 'revoked'; }, 'pair-revoked', /revoked/],
        ];
        for (const [what, arrange, code, re] of cases) {
            pi = new FakePi();
            pi.addPending(DEV, CODE, ACTIONS);
            arrange();
            await assert.rejects(paired(), (e) => {
                assert.equal(e.name, 'AppError', what);
                assert.equal(e.msg.code, code, what);
                assert.match(`${e.msg.title} ${e.msg.detail}`, re, what);
                assert.match(e.msg.detail, /Unauthenticated answer/, what);
                return true;
            });
            assert.deepEqual(await store.list(), [], `${what}: nothing stored`);
        }
    });

    test('a wrong code is refused as bad_mac ("the pairing code is wrong")', async () => {
        const other = Buffer.from(CODE);
        other[0] ^= 0x80;
        await assert.rejects(new Bluetooth(store, fakeBluetooth(pi)).pair(linkFor(DEV, other), noProgress),
                             (e) => e.msg.code === 'pair-bad_mac' && /code is wrong/.test(e.msg.title));
        assert.equal(pi.devices.get(DEV).state, 'pending');
    });

    test('a result whose confirmation differs is not a pairing', async () => {
        pi.forgeConfirm = true;
        await assert.rejects(paired(), (e) => e.msg.code === 'pair-unconfirmed');
        assert.deepEqual(await store.list(), []);
        assert.deepEqual(pi.frames.map((f) => f[1]), [p.T_PAIR], 'no catalogue request after it');
    });

    test('a lost pair result: an authentic catalogue answer confirms the pairing', async () => {
        pi.losePairAnswer = true;
        const link = linkFor(DEV, CODE);
        const rec = await new Bluetooth(store, fakeBluetooth(pi), { answerTimeoutMs: 300 }).pair(link, noProgress);
        assert.deepEqual(rec.actions, ACTIONS);
        assert.equal((await store.list()).length, 1);
        assert.deepEqual(link.code, new Uint8Array(16));
    });

    test('a lost pair result with a Pi that did not pair: nothing stored', async () => {
        pi.losePairAnswer = true;
        const write = pi.write.bind(pi);
        pi.write = async (frame) => {
            if (frame[1] === p.T_PAIR) { pi.frames.push(frame); return; } // the request got lost instead
            return write(frame);
        };
        await assert.rejects(new Bluetooth(store, fakeBluetooth(pi), { answerTimeoutMs: 300 }).pair(linkFor(DEV, CODE), noProgress),
                             (e) => e.msg.code === 'pair-unconfirmed');
        assert.deepEqual(await store.list(), []);
    });

    test('a Pi whose key does not match the link is refused before anything is written', async () => {
        const impostor = new FakePi({ publicKey: '04' + 'ab'.repeat(64) });
        await assert.rejects(new Bluetooth(store, fakeBluetooth(impostor)).pair(linkFor(DEV, CODE), noProgress),
                             (e) => e.msg.code === 'wrong-pi' && /fingerprint/.test(e.msg.detail));
        assert.deepEqual(impostor.frames, []);
        assert.ok(!impostor.log.includes('read 2902'), 'not even a challenge read');
        const otherPi = new FakePi({ piId: '00'.repeat(16) });
        await assert.rejects(new Bluetooth(store, fakeBluetooth(otherPi)).pair(linkFor(DEV, CODE), noProgress),
                             (e) => e.msg.code === 'wrong-pi');
        assert.deepEqual(otherPi.frames, []);
    });

    test('without notifications the pair result is read from Result', async () => {
        pi = new FakePi({ notify: false });
        pi.addPending(DEV, CODE, ACTIONS);
        const rec = await paired();
        assert.equal(rec.actions.length, 4);
        assert.ok(!pi.log.includes('subscribe'));
        assert.ok(pi.log.includes('read 2904'));
    });
});

describe('commands', () => {
    test('sealed with a fresh counter and nonce, answered authentically; two in a row without waiting', async () => {
        const bt = new Bluetooth(store, fakeBluetooth(pi));
        const rec = await paired(bt);
        const before = pi.frames.length;
        const r1 = await bt.command(rec, 'door', [], noProgress);
        const r2 = await bt.command(await store.get(rec.id), 'lights', ['high'], noProgress);
        for (const r of [r1, r2]) {
            assert.equal(r.kind, 'command');
            assert.equal(r.authentic, true);
            assert.equal(r.statusName, 'ok');
        }
        assert.equal(new TextDecoder().decode(r2.output), 'lights ran with high\n');
        assert.deepEqual(describeCommand(r1, 'door').code, 'ok');
        assert.deepEqual(pi.devices.get(DEV).runs, [['door'], ['lights', 'high']]);
        const frames = pi.frames.slice(before);
        assert.equal(frames.length, 2, 'the link stays open: no second catalogue');
        const counters = frames.map((f) => p.decodeRequestHeader(f).header.counter);
        assert.deepEqual(counters, [3n, 4n]);
        assert.equal((await store.get(rec.id)).counter, 4, 'the counter was stored');
        assert.notDeepEqual(frames[0].subarray(28, 40), frames[1].subarray(28, 40), 'a new nonce each time');
    });

    test('the counter is persisted before the frame is written', async () => {
        const bt = new Bluetooth(store, fakeBluetooth(pi));
        const rec = await paired(bt);
        let storedAtWrite = null;
        const write = pi.write.bind(pi);
        pi.write = async (frame) => {
            storedAtWrite = (await store.get(rec.id)).counter;
            return write(frame);
        };
        await bt.command(rec, 'door', [], noProgress);
        assert.equal(BigInt(storedAtWrite), p.decodeRequestHeader(pi.frames.at(-1)).header.counter);
    });

    test('a refusal the Pi sealed names its reason; a plain one is unauthenticated', async () => {
        const bt = new Bluetooth(store, fakeBluetooth(pi));
        const rec = await paired(bt);
        pi.devices.get(DEV).actions = ACTIONS.slice(1); // 'door' withdrawn, link still open
        let r = await bt.command(rec, 'door', [], noProgress);
        assert.deepEqual([r.authentic, r.statusName], [true, 'not_permitted']);
        assert.equal(describeCommand(r, 'door').code, 'not_permitted');
        pi.devices.get(DEV).state = 'revoked';
        r = await bt.command(await store.get(rec.id), 'lights', ['low'], noProgress);
        assert.deepEqual([r.kind, r.authentic, r.statusName], ['refusal', false, 'revoked']);
        const m = describeCommand(r, 'lights');
        assert.equal(m.code, 'unauthenticated');
        assert.match(m.detail, /Unauthenticated answer “revoked”/);
    });

    test('without notifications the answer is read from Result, never the older one it held', async () => {
        pi = new FakePi({ notify: false });
        pi.addPending(DEV, CODE, ACTIONS);
        const bt = new Bluetooth(store, fakeBluetooth(pi));
        const rec = await paired(bt);
        // Result holds the last catalogue page; the command's answer must be its own.
        const r = await bt.command(rec, 'say', ['hi there'], noProgress);
        assert.equal(r.kind, 'command');
        assert.equal(new TextDecoder().decode(r.output), 'say ran with hi there\n');
    });

    test('a new connection fetches the catalogue: buttons follow, a withdrawn action is not sent', async () => {
        await paired();
        pi.drop(); // the page was reloaded: a new Bluetooth, a new connection
        pi.devices.get(DEV).actions = [ACTIONS[2], { name: 'garage', description: 'Open the garage', confirm: false, kind: 'none', maxArgs: 0 }];
        const nav = fakeBluetooth(pi);
        const bt = new Bluetooth(store, nav);
        const seen = [];
        const rec = (await store.list())[0];
        await assert.rejects(bt.command(rec, 'door', [], noProgress, (r) => seen.push(r.actions.map((a) => a.name))),
                             (e) => e.msg.code === 'not-in-catalogue');
        assert.deepEqual(seen, [['say', 'garage']]);
        assert.deepEqual((await store.get(rec.id)).actions.map((a) => a.name), ['say', 'garage']);
        assert.deepEqual(pi.frames.slice(-1).map((f) => f[1]), [p.T_CATALOGUE], 'no command sent');
        assert.equal(nav.calls.getDevices, 1, 'the remembered Pi came back without a chooser');
        assert.deepEqual(nav.calls.requestDevice, []);
        const r = await bt.command(await store.get(rec.id), 'garage', [], noProgress);
        assert.equal(r.statusName, 'ok');
    });

    test('revoked: the first request of a new connection (the catalogue) is refused, told about the command', async () => {
        await paired();
        pi.drop();
        pi.devices.get(DEV).state = 'revoked';
        const rec = (await store.list())[0];
        await assert.rejects(new Bluetooth(store, fakeBluetooth(pi)).command(rec, 'lights', ['low'], noProgress), (e) => {
            assert.equal(e.msg.code, 'unauthenticated');
            assert.equal(e.msg.title, 'Refused: “lights” did not run');
            assert.match(e.msg.detail, /Unauthenticated answer “revoked”/);
            return true;
        });
        assert.deepEqual(pi.frames.slice(-1).map((f) => f[1]), [p.T_CATALOGUE], 'no command sent');
        assert.deepEqual(pi.devices.get(DEV).runs, []);
    });

    test('a Pi whose key changed since pairing is not this pairing\'s Pi', async () => {
        await paired();
        pi.drop();
        pi.publicKey = '04' + 'cd'.repeat(64);
        const rec = (await store.list())[0];
        await assert.rejects(new Bluetooth(store, fakeBluetooth(pi)).command(rec, 'door', [], noProgress),
                             (e) => e.msg.code === 'wrong-pi' && /another key/.test(e.msg.detail));
        assert.equal((await store.get(rec.id)).bluetoothId, '', 'the device is forgotten');
    });
});

describe('clocks', () => {
    test('a Pi without network time 3 h behind', async () => {
        pi = new FakePi({ clock: -3 * 3600, synced: false });
        pi.addPending(DEV, CODE, ACTIONS);
        const bt = new Bluetooth(store, fakeBluetooth(pi));
        await paired(bt);
        const m = clockNote(bt.clock(PI.id));
        assert.equal(m.code, 'pi-clock-behind');
        assert.equal(m.title, "The Pi's clock is 3 h behind (no network time) — it will catch up from this phone's commands");
    });
    test('a Pi with network time and a phone 5 min off', async () => {
        pi = new FakePi({ clock: 300, synced: true });
        pi.addPending(DEV, CODE, ACTIONS);
        const bt = new Bluetooth(store, fakeBluetooth(pi));
        const rec = await paired(bt);
        await bt.command(rec, 'say', [], noProgress);
        const m = clockNote(bt.clock(PI.id));
        assert.equal(m.title, "Your phone's clock is 5 min off");
        assert.match(m.detail, /behind/);
    });
    test('clocks that agree say nothing', async () => {
        const bt = new Bluetooth(store, fakeBluetooth(pi));
        await paired(bt);
        assert.equal(clockNote(bt.clock(PI.id)), null);
    });
});

