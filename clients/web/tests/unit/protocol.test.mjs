// SPDX-License-Identifier: GPL-3.0-or-later
// The app's protocol module against spec/vectors (written by the C++ reference):
// keys, TOTP, request frames, responses and their MACs, fragments, pairing URIs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as p from '../../build/node/protocol.js';
import { hex, toHex, vectors } from './vectors.mjs';

const requests = vectors('requests').cases;
const responses = vectors('responses').cases;
const fragments = vectors('fragments').cases;
const pairing = vectors('pairing');
const raw = (b) => crypto.subtle.exportKey('raw', b).then((k) => toHex(new Uint8Array(k)));

describe('keys and TOTP (requests.json)', () => {
    test('there are cases to check', () => assert.ok(requests.length >= 9));
    for (const c of requests) {
        test(`${c.name}: HKDF keys and TOTP code`, async () => {
            const keys = await p.deriveKeys(hex(c.secret), c.totp.alg, true);
            assert.equal(await raw(keys.request), c.request_key);
            assert.equal(await raw(keys.response), c.response_key);
            assert.equal(await raw(keys.totp), c.secret, 'the TOTP key is the secret itself');
            const { code, step } = await p.totp(keys.totp, c.totp, c.timestamp);
            assert.equal(code, c.totp_code);
            assert.equal(String(code).padStart(c.totp.digits, '0'), c.totp_code_text);
            assert.equal(step, Math.floor(c.timestamp / c.totp.period));
        });
    }
    test('the keys the app stores are not extractable', async () => {
        const keys = await p.deriveKeys(hex(requests[0].secret), 'SHA1');
        for (const k of [keys.request, keys.response, keys.totp]) {
            assert.equal(k.extractable, false);
            await assert.rejects(crypto.subtle.exportKey('raw', k), /not extractable/i);
        }
    });
    test('base32 of every secret is the one in the vector', () => {
        for (const c of requests) assert.equal(p.base32Encode(hex(c.secret)), c.secret_base32);
    });
});

describe('request frames (requests.json)', () => {
    for (const c of requests) {
        test(`${c.name}: the frame is byte for byte the reference`, async () => {
            const keys = await p.deriveKeys(hex(c.secret), c.totp.alg);
            const enc = await p.encodeRequest({
                deviceId: hex(c.device_id),
                counter: BigInt(c.counter),
                timestamp: BigInt(c.timestamp),
                challenge: hex(c.challenge),
                totp: c.totp_code,
                action: c.action,
                args: c.args,
            }, keys.request);
            assert.equal(enc.frame.length, c.frame_len);
            assert.equal(toHex(enc.frame), c.frame);
            assert.equal(toHex(enc.frame.subarray(c.mac_input_len)), c.mac);
            assert.equal(toHex(enc.tag), c.mac.slice(0, 32));
        });
    }
    test('the encoder refuses what the Pi would call malformed', async () => {
        const keys = await p.deriveKeys(hex(requests[0].secret), 'SHA1');
        const base = { deviceId: new Uint8Array(16), counter: 1n, timestamp: 1n, challenge: new Uint8Array(16), totp: 0, action: 'a', args: [] };
        const bad = [
            [{ action: '' }, /not a valid action name/],
            [{ action: '-x' }, /not a valid action name/],
            [{ action: 'a'.repeat(65) }, /not a valid action name/],
            [{ action: 'a b' }, /not a valid action name/],
            [{ action: 'open.toml' }, /not a valid action name/],
            [{ args: Array(9).fill('x') }, /at most 8 arguments/],
            [{ args: ['x'.repeat(129)] }, /argument 1 is longer than 128 bytes/],
            [{ args: ['ok', 'tab\there'] }, /argument 2 contains a control character/],
            [{ args: ['\x7f'] }, /control character/],
            [{ action: 'a'.repeat(64), args: Array(3).fill('x'.repeat(128)) }, /does not fit in 512 bytes/],
            [{ deviceId: new Uint8Array(15) }, /device id must be 16 bytes/],
            [{ challenge: new Uint8Array(17) }, /challenge must be 16 bytes/],
        ];
        for (const [change, re] of bad) {
            await assert.rejects(p.encodeRequest({ ...base, ...change }, keys.request), re, JSON.stringify(change).slice(0, 60));
        }
        // 128-byte arguments and UTF-8 are fine.
        await p.encodeRequest({ ...base, args: ['x'.repeat(128), 'café ☕'] }, keys.request);
    });
});

describe('responses (responses.json)', () => {
    const byName = Object.fromEntries(requests.map((c) => [c.name, c]));
    for (const c of responses) {
        test(`${c.name}: decoded, MAC ${c.response_key ? 'verified' : 'refused (zero MAC)'}`, async () => {
            // The key of the request's pairing; for responses sent without a key the
            // client still verifies with its own key, and must refuse.
            const secretCase = c.request ? byName[c.request] : requests[0];
            const keys = await p.deriveKeys(hex(secretCase.secret), secretCase.totp.alg);
            const r = await p.decodeResponse(hex(c.frame), keys.response);
            assert.equal(r.counter, BigInt(c.counter));
            assert.equal(toHex(r.tag), c.tag);
            assert.equal(r.status, c.status);
            assert.equal(r.statusName, c.status_name);
            assert.equal(r.exitCode, c.exit_code);
            assert.equal(toHex(r.output), c.output_sent);
            assert.equal(r.output.length, c.output_sent_len);
            assert.equal(r.macOk, c.response_key !== '', 'MAC verification');
            if (c.request) {
                const req = byName[c.request];
                const sent = { frame: hex(req.frame), tag: hex(req.mac.slice(0, 32)) };
                assert.equal(p.answers(r, BigInt(req.counter), sent), true);
                assert.equal(p.answers(r, BigInt(req.counter) + 1n, sent), false, 'another counter');
            }
        });
    }
    test('a response with one flipped bit does not verify', async () => {
        const c = responses[0];
        const keys = await p.deriveKeys(hex(requests[0].secret), 'SHA1');
        for (const i of [0 + 2, 26, 40, c.frame_len - 1]) {
            const f = hex(c.frame);
            f[i] ^= 1;
            const r = await p.decodeResponse(f, keys.response);
            assert.equal(r.macOk, false, `bit flipped in byte ${i}`);
        }
    });
    test('a response MACed with another pairing\'s key does not verify', async () => {
        const other = await p.deriveKeys(hex(requests[2].secret), 'SHA1');
        const r = await p.decodeResponse(hex(responses[0].frame), other.response);
        assert.equal(r.macOk, false);
    });
    test('frames breaking section 4 are refused with a reason', async () => {
        const keys = await p.deriveKeys(hex(requests[0].secret), 'SHA1');
        const ok = hex(responses[0].frame);
        const cases = [
            [ok.slice(0, 64), /65\.\.512 bytes, got 64/],
            [new Uint8Array(513), /65\.\.512 bytes, got 513/],
            [Object.assign(ok.slice(), { 0: 2 }), /not a version 1 response/],
            [Object.assign(ok.slice(), { 1: 1 }), /not a version 1 response/],
            [Object.assign(ok.slice(), { 32: 12 }), /output_len 12 does not match/],
            [Object.assign(ok.slice(), { 26: 0x05 }), /0x5 is not a status code/],
        ];
        for (const [f, re] of cases) await assert.rejects(p.decodeResponse(f, keys.response), re);
    });
});

describe('fragments (fragments.json)', () => {
    for (const c of fragments) {
        test(`${c.name}: split like the Pi, reassembled`, () => {
            const parts = p.fragment(hex(c.frame), c.mtu);
            assert.deepEqual(parts.map(toHex), c.fragments);
            const r = new p.Reassembler();
            c.fragments.forEach((f, i) => {
                assert.equal(r.push(hex(f)), i === c.fragments.length - 1 ? 'done' : 'more');
            });
            assert.equal(toHex(r.frame), c.frame);
        });
    }
    const many = fragments.find((c) => c.fragments.length >= 4);
    test('a lost fragment drops the partial frame', () => {
        const r = new p.Reassembler();
        assert.equal(r.push(hex(many.fragments[0])), 'more');
        assert.equal(r.push(hex(many.fragments[2])), 'error');
        assert.equal(r.push(hex(many.fragments[3])), 'error', 'nothing to continue');
        // Index 0 starts over.
        many.fragments.forEach((f, i) => r.push(hex(f)) && i);
        assert.equal(toHex(r.frame), many.frame);
    });
    test('index 0 again starts a new frame', () => {
        const r = new p.Reassembler();
        r.push(hex(many.fragments[0]));
        r.push(hex(many.fragments[1]));
        for (const f of many.fragments) r.push(hex(f));
        assert.equal(toHex(r.frame), many.frame);
    });
    test('more than 512 bytes is an error', () => {
        const r = new p.Reassembler();
        const piece = new Uint8Array(101);
        let state;
        for (let i = 0; i < 6; i++) {
            piece[0] = i;
            state = r.push(piece);
        }
        assert.equal(state, 'error');
    });
});

describe('pairing URIs (pairing.json)', () => {
    const fieldsOf = (x) => ({
        pi_id: x.piId, pi_name: x.piName, device_id: x.deviceId, secret: toHex(x.secret),
        alg: x.totp.alg, digits: x.totp.digits, period: x.totp.period, label: x.label,
    });
    const expected = (f) => { const { secret_base32: _b, ...rest } = f; return rest; };
    for (const c of pairing.valid) {
        test(`valid ${c.name}: produced exactly, both forms parse back`, () => {
            const parsed = p.parsePairing(c.uri);
            assert.deepEqual(fieldsOf(parsed), expected(c.fields));
            assert.equal(p.pairingToUri(parsed), c.uri);
            assert.equal(p.pairingToAppUrl(parsed, pairing.app_url_base), c.app_url);
            assert.deepEqual(fieldsOf(p.parsePairing(c.app_url)), expected(c.fields));
            assert.deepEqual(parsed.actions, []);
        });
    }
    for (const c of pairing.parse) {
        test(`parse ${c.name}`, () => {
            assert.deepEqual(fieldsOf(p.parsePairing(c.input)), expected(c.fields));
        });
    }
    for (const c of pairing.invalid) {
        test(`invalid ${c.name}: refused, naming the problem, without the secret`, () => {
            assert.throws(() => p.parsePairing(c.input), (e) => {
                assert.ok(e instanceof p.ProtocolError);
                assert.ok(e.message.includes(c.error_contains), `${e.message} / ${c.error_contains}`);
                const secret = /secret=([^&]*)/.exec(c.input);
                if (secret && secret[1].length >= 8) assert.ok(!e.message.includes(secret[1]), 'secret in message');
                return true;
            });
        });
    }
    test('the actions hint becomes buttons; invalid names in it are skipped', () => {
        const uri = pairing.valid[0].app_url + '&actions=hello,garage.door,bad%20name,-x';
        assert.deepEqual(p.parsePairing(uri).actions, ['hello', 'garage.door']);
    });
});

describe('Info characteristic', () => {
    test('parsed and the Pi id lower-cased', () => {
        const i = p.parseInfo(new TextEncoder().encode('{"v":1,"name":"kitchen","pi":"712BB146F4C5B37BE010BE1B6A6AD359"}'));
        assert.deepEqual(i, { v: 1, name: 'kitchen', pi: '712bb146f4c5b37be010be1b6a6ad359' });
    });
    test('garbage is a ProtocolError', () => {
        assert.throws(() => p.parseInfo(new Uint8Array([0xff, 0xfe])), /not UTF-8 JSON/);
        assert.throws(() => p.parseInfo(new TextEncoder().encode('{"v":1}')), /lacks v, name or pi/);
    });
});
