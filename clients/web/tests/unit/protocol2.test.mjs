// SPDX-License-Identifier: GPL-3.0-or-later
// The app's protocol version 2 module against every case of spec/vectors (written
// by the C++ reference, checked by the Python one too): keys and TOTP, the pairing
// exchange, request frames, responses bound to their request, the catalogue, links
// and the frames a Pi refuses. The Pi's half of a frame is played here with plain
// WebCrypto and the vectors' raw keys.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as p from '../../build/node/protocol2.js';
import { hex, toHex, vectors } from './vectors.mjs';

const keysV = vectors('keys');
const pairV = vectors('pair');
const requests = vectors('requests').cases;
const responses = vectors('responses').cases;
const catalogueV = vectors('catalogue');
const links = vectors('links');
const malformed = vectors('malformed');

const subtle = crypto.subtle;
const utf8 = (s) => new TextEncoder().encode(s);
const concat = (...parts) => new Uint8Array(Buffer.concat(parts.map((x) => Buffer.from(x))));
const importAes = (keyHex, usage) => subtle.importKey('raw', hex(keyHex), 'AES-GCM', false, [usage]);
const rawKeysOf = (secretHex) => keysV.device.find((d) => d.secret === secretHex);
const deviceA = keysV.device[0];
const deviceB = keysV.device[1];
/** Asserts a ProtocolError whose message (not its "ProtocolError: " form) matches. */
const refuses = (fn, re, what) => assert.throws(fn, (e) => e instanceof p.ProtocolError && (re instanceof RegExp ? re.test(e.message) : re(e)), what);

/** Asserts that a derived non-extractable AES key is the vector's raw key (one seals, the other opens). */
async function assertSameKey(derived, expectedHex) {
    const iv = new Uint8Array(12);
    const probe = utf8('which key is this?');
    let opened;
    if (derived.usages.includes('encrypt')) {
        const ct = await subtle.encrypt({ name: 'AES-GCM', iv }, derived, probe);
        opened = await subtle.decrypt({ name: 'AES-GCM', iv }, await importAes(expectedHex, 'decrypt'), ct);
    } else {
        const ct = await subtle.encrypt({ name: 'AES-GCM', iv }, await importAes(expectedHex, 'encrypt'), probe);
        opened = await subtle.decrypt({ name: 'AES-GCM', iv }, derived, ct);
    }
    assert.deepEqual(new Uint8Array(opened), probe);
}

async function assertNotExtractable(keys) {
    for (const k of Object.values(keys)) {
        assert.equal(k.extractable, false);
        await assert.rejects(subtle.exportKey('raw', k), /not extractable/i);
    }
}

/** The Pi's side: seals a response to `requestFrame` (its last 16 bytes bind it). */
async function piSeal(type, keyHex, counter, requestFrame, plaintext, nonce = new Uint8Array(12).fill(7)) {
    const header = new Uint8Array(24);
    const dv = new DataView(header.buffer);
    header[0] = 2;
    header[1] = type;
    dv.setUint16(2, 24 + plaintext.length + 16);
    dv.setBigUint64(4, BigInt(counter));
    header.set(nonce, 12);
    const aad = concat(header, requestFrame.subarray(requestFrame.length - 16));
    const sealed = await subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad }, await importAes(keyHex, 'encrypt'), plaintext);
    return concat(header, new Uint8Array(sealed));
}

/** status || pi_time || flags || rest, as every sealed response plaintext starts. */
function responsePlain(status, piTime, synced, rest = new Uint8Array(0)) {
    const head = new Uint8Array(10);
    head[0] = status;
    new DataView(head.buffer).setBigInt64(1, BigInt(piTime));
    head[9] = synced ? 1 : 0;
    return concat(head, rest);
}

const inputsOf = (c) => ({
    timestamp: BigInt(c.timestamp), challenge: hex(c.challenge), totp: c.totp_code,
    ...(c.type === 'command' ? { action: c.action, args: c.args } : { first: c.first }),
});
const seal = (keys, c, nonce) => (c.type === 'command' ? p.sealCommand : p.sealCatalogue)(
    keys, hex(c.device_id), BigInt(c.counter), inputsOf(c), nonce);

// ---------------------------------------------------------------------------

describe('keys and TOTP (keys.json)', () => {
    for (const d of keysV.device) {
        test(`${d.name}: request and response keys are the HKDF outputs`, async () => {
            const keys = await p.deviceKeys(hex(d.secret), 'SHA1');
            await assertSameKey(keys.request, d.request_key);
            await assertSameKey(keys.response, d.response_key);
            await assertNotExtractable(keys);
        });
    }
    test('the key check can fail: another device\'s key is not this one', async () => {
        const keys = await p.deviceKeys(hex(deviceA.secret), 'SHA1');
        await assert.rejects(assertSameKey(keys.request, deviceB.request_key));
        await assert.rejects(assertSameKey(keys.response, deviceA.request_key));
    });
    test('pair request and response keys of the code', async () => {
        const keys = await p.pairKeys(hex(keysV.pair.code));
        await assertSameKey(keys.request, keysV.pair.pair_request_key);
        await assertSameKey(keys.response, keysV.pair.pair_response_key);
        await assertNotExtractable(keys);
    });
    for (const c of keysV.totp) {
        test(`TOTP ${c.totp.alg}, ${c.totp.digits} digits, ${c.totp.period} s`, async () => {
            const keys = await p.deviceKeys(hex(c.secret), c.totp.alg);
            const { code, step } = await p.totp(keys.totp, c.totp, c.time);
            assert.equal(step, c.step);
            assert.equal(code, c.code);
            assert.equal(String(code).padStart(c.totp.digits, '0'), c.code_text);
        });
    }
});

describe('statuses', () => {
    test('version 1 codes without reused_totp, plus code_used and code_expired', () => {
        const names = Object.fromEntries(Object.entries(p.STATUS).map(([b, s]) => [Number(b), s.name]));
        assert.deepEqual(names, {
            0x00: 'ok', 0x01: 'action_failed', 0x02: 'action_timeout', 0x03: 'action_busy',
            0x04: 'action_start_failed', 0x10: 'malformed', 0x11: 'unknown_version',
            0x12: 'unknown_device', 0x13: 'revoked', 0x14: 'bad_mac', 0x15: 'stale_timestamp',
            0x16: 'bad_totp', 0x18: 'replayed', 0x19: 'rate_limited', 0x1a: 'unknown_action',
            0x1b: 'not_permitted', 0x1c: 'bad_arguments', 0x1d: 'code_used', 0x1e: 'code_expired',
            0x1f: 'internal',
        });
        for (const s of Object.values(p.STATUS)) assert.ok(s.message.length > 10, s.name);
    });
});

// ---------------------------------------------------------------------------

const pairLink = () => ({
    piId: pairV.pi_id, piKeyFingerprint: pairV.pi_key_fingerprint, piName: 'Garage',
    deviceId: pairV.device_id, code: hex(pairV.code), totp: { alg: 'SHA1', digits: 6, period: 30 }, label: '',
});
const pairInfo = (over = {}) => p.parseInfo(utf8(JSON.stringify({
    v: 2, name: 'Garage', pi: pairV.pi_id, pk: pairV.pi_public, time: 1700000005, synced: false, ...over,
})));

describe('Info characteristic', () => {
    test('parsed: the Pi id lower-cased, its key as bytes, its clock', () => {
        const i = p.parseInfo(utf8(`{"v":2,"name":"Garage","pi":"${pairV.pi_id.toUpperCase()}","pk":"${pairV.pi_public}","time":1700000005,"synced":true}`));
        assert.deepEqual(i, { v: 2, name: 'Garage', pi: pairV.pi_id, pk: hex(pairV.pi_public), time: 1700000005, synced: true });
    });
    test('anything else is a ProtocolError naming the field', () => {
        const good = { v: 2, name: 'Garage', pi: pairV.pi_id, pk: pairV.pi_public, time: 1, synced: false };
        const cases = [
            [new Uint8Array([0xff, 0xfe]), /not UTF-8 JSON/],
            [utf8('[1'), /not UTF-8 JSON/],
            [utf8('null'), /not UTF-8 JSON/],
            [utf8(JSON.stringify({ ...good, v: 1 })), /protocol version 1, not 2/],
            [utf8(JSON.stringify({ ...good, name: 3 })), /lacks its name/],
            [utf8(JSON.stringify({ ...good, pi: 'x'.repeat(32) })), /'pi' must be 32 hex digits/],
            [utf8(JSON.stringify({ ...good, pk: pairV.pi_public.slice(2) })), /'pk' must be 130 hex digits/],
            [utf8(JSON.stringify({ ...good, time: 1.5 })), /'time' must be a whole number/],
            [utf8(JSON.stringify({ ...good, synced: 'yes' })), /'synced' must be true or false/],
        ];
        for (const [bytes, re] of cases) refuses(() => p.parseInfo(bytes), re, re.source);
    });
});

describe('pairing exchange (pair.json)', () => {
    test('the link carries the code in base32', () => {
        assert.ok(p.linkQuery(pairLink()).includes(`&code=${pairV.code_base32}&`));
    });
    test('the fingerprint of the Pi key', async () => {
        assert.equal(await p.keyFingerprint(hex(pairV.pi_public)), pairV.pi_key_fingerprint);
    });
    test('both sides compute the same shared X', async () => {
        const phone = await p.importP256PrivateKeyForTests(hex(pairV.phone_private));
        const pi = await p.importP256PrivateKeyForTests(hex(pairV.pi_private));
        assert.equal(toHex(phone.publicRaw), pairV.phone_public);
        assert.equal(toHex(pi.publicRaw), pairV.pi_public);
        assert.equal(phone.privateKey.extractable, false);
        assert.equal(toHex(await p.sharedX(phone.privateKey, hex(pairV.pi_public))), pairV.shared_x);
        assert.equal(toHex(await p.sharedX(pi.privateKey, hex(pairV.phone_public))), pairV.shared_x);
    });
    test('transcript, secret and confirmation', async () => {
        const t = await p.pairTranscript(hex(pairV.pi_id), hex(pairV.device_id), hex(pairV.pi_public), hex(pairV.phone_public));
        assert.equal(toHex(t), pairV.transcript);
        const { secret, confirm } = await p.pairSecret(hex(pairV.shared_x), hex(pairV.code), t);
        assert.equal(toHex(secret), pairV.secret);
        assert.equal(toHex(confirm), pairV.confirm);
    });
    test('the whole exchange: request byte for byte, result confirmed, keys made, secrets wiped', async () => {
        const link = pairLink();
        const ex = await p.startPairingWithFixedKeyForTests(link, pairInfo(), hex(pairV.phone_private));
        assert.equal(toHex(ex.phonePublic), pairV.phone_public);
        assert.equal(toHex(ex.transcript), pairV.transcript);
        const req = await ex.sealRequest(hex(pairV.challenge), hex(pairV.request_nonce));
        assert.equal(toHex(req), pairV.request);
        const h = p.decodeRequestHeader(req);
        assert.equal(h.header.type, p.T_PAIR);
        assert.equal(h.header.counter, 0n);
        assert.equal(toHex(await p.openRequest(req, await importAes(keysV.pair.pair_request_key, 'decrypt'))),
                     pairV.request_plaintext);

        const { response, confirmed } = await ex.openResult(hex(pairV.response), req);
        assert.equal(confirmed, true);
        assert.equal(response.kind, 'pair');
        assert.equal(response.authentic, true);
        assert.equal(response.statusName, pairV.response_status);
        assert.equal(response.piTime, BigInt(pairV.response_pi_time));
        assert.equal(response.synced, pairV.response_synced);
        assert.equal(toHex(response.confirm), pairV.confirm);
        assert.equal(response.message, pairV.response_message);

        // The raw buffers (private fields, reachable from JS) are zeroed, not just dropped.
        const held = [ex.z, ex.secret, ex.confirm];
        assert.equal(toHex(held[0]), pairV.shared_x);
        assert.equal(toHex(held[1]), pairV.secret);
        const keys = await ex.keys();
        for (const b of held) assert.deepEqual(b, new Uint8Array(32));
        await assertNotExtractable(keys);
        // S is device A's secret: the keys are its keys.
        assert.equal(pairV.secret, deviceA.secret);
        await assertSameKey(keys.request, deviceA.request_key);
        await assertSameKey(keys.response, deviceA.response_key);
        const minimal = requests.find((c) => c.name === 'minimal');
        assert.equal((await p.totp(keys.totp, minimal.totp, minimal.timestamp)).code, minimal.totp_code);
        assert.equal(toHex(await seal(keys, minimal, hex(minimal.nonce))), minimal.frame);
        // Z, S, the confirmation and the code are zeros now; the attempt is over.
        assert.deepEqual(link.code, new Uint8Array(16));
        for (const field of ['z', 'secret', 'confirm', 'ephemeral']) assert.equal(ex[field], null, field);
        await assert.rejects(ex.keys(), /attempt is over/);
        await assert.rejects(ex.sealRequest(hex(pairV.challenge)), /attempt is over/);
    });
    test('a wrong Pi or a key that does not match the fingerprint is refused before anything is sent', async () => {
        const scalar = hex(pairV.phone_private);
        await assert.rejects(p.startPairingWithFixedKeyForTests(pairLink(), pairInfo({ pi: '00'.repeat(16) }), scalar),
                             (e) => e instanceof p.ProtocolError && /id is not the one in the pairing link/.test(e.message));
        await assert.rejects(p.startPairingWithFixedKeyForTests(pairLink(), pairInfo({ pk: pairV.phone_public }), scalar),
                             /does not match the pairing link's fingerprint/);
        // A fingerprint that matches bytes that are not a point.
        const notPoint = '04' + 'ff'.repeat(64);
        const link = { ...pairLink(), piKeyFingerprint: await p.keyFingerprint(hex(notPoint)) };
        await assert.rejects(p.startPairingWithFixedKeyForTests(link, pairInfo({ pk: notPoint }), scalar),
                             /not an uncompressed P-256 point/);
    });
    test('a result that does not open, or confirms something else, does not confirm', async () => {
        const ex = await p.startPairingWithFixedKeyForTests(pairLink(), pairInfo(), hex(pairV.phone_private));
        const req = await ex.sealRequest(hex(pairV.challenge), hex(pairV.request_nonce));
        const flipped = hex(pairV.response);
        flipped[30] ^= 1;
        let r = await ex.openResult(flipped, req);
        assert.equal(r.confirmed, false);
        assert.deepEqual(r.response, { kind: 'unopened', type: 0x83, authentic: false, counter: 0n });
        const otherRequest = req.slice();
        otherRequest[otherRequest.length - 1] ^= 1;
        r = await ex.openResult(hex(pairV.response), otherRequest);
        assert.equal(r.response.authentic, false, 'bound to the request it answers');
        // Authentic (the code's key) but a confirmation from another secret.
        const wrong = hex(pairV.confirm);
        wrong[0] ^= 1;
        const forged = await piSeal(0x83, keysV.pair.pair_response_key, 0, req, responsePlain(0, 1, true, concat(wrong, utf8('paired'))));
        r = await ex.openResult(forged, req);
        assert.equal(r.response.authentic, true);
        assert.equal(r.confirmed, false);
        // A sealed refusal: authentic, nothing to confirm.
        const used = await piSeal(0x83, keysV.pair.pair_response_key, 0, req, responsePlain(0x1d, 1, true, utf8('the code was used')));
        r = await ex.openResult(used, req);
        assert.equal(r.confirmed, false);
        assert.equal(r.response.statusName, 'code_used');
        assert.equal(r.response.confirm, null);
        assert.equal(r.response.message, 'the code was used');
        // The plain refusal: never authentic.
        r = await ex.openResult(hex('02ff000d00000000000000001d'), req);
        assert.deepEqual(r, { confirmed: false, response: { kind: 'refusal', type: 0xff, authentic: false, counter: 0n, status: 0x1d, statusName: 'code_used' } });
        ex.wipe();
        await assert.rejects(ex.keys(), /attempt is over/);
    });
    test('the production path: a fresh non-extractable key each time, and a Pi that agrees', async () => {
        const pi = await p.importP256PrivateKeyForTests(hex(pairV.pi_private));
        const link = pairLink();
        const ex = await p.startPairing(link, pairInfo());
        const again = await p.startPairing(pairLink(), pairInfo());
        assert.notEqual(toHex(ex.phonePublic), toHex(again.phonePublic));
        assert.equal(ex.phonePublic.length, 65);
        assert.equal(ex.ephemeral.extractable, false);
        // The Pi derives S from its side.
        const challenge = new Uint8Array(16).fill(9);
        const req = await ex.sealRequest(challenge);
        const plain = await p.openRequest(req, await importAes(keysV.pair.pair_request_key, 'decrypt'));
        assert.deepEqual(plain, concat(challenge, ex.phonePublic));
        const t = await p.pairTranscript(hex(pairV.pi_id), hex(pairV.device_id), hex(pairV.pi_public), ex.phonePublic);
        const piSide = await p.pairSecret(await p.sharedX(pi.privateKey, ex.phonePublic), hex(pairV.code), t);
        const resp = await piSeal(0x83, keysV.pair.pair_response_key, 0, req, responsePlain(0, 5, true, concat(piSide.confirm, utf8('paired as Anna'))));
        assert.equal((await ex.openResult(resp, req)).confirmed, true);
        const keys = await ex.keys();
        // The Pi's request key from its S opens the phone's command.
        const base = await subtle.importKey('raw', piSide.secret, 'HKDF', false, ['deriveKey']);
        const piRequestKey = await subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: utf8('bluezscript-v2'), info: utf8('bluezscript v2 request') },
                                                    base, { name: 'AES-GCM', length: 256 }, false, ['decrypt']);
        const cmd = await p.sealCommand(keys, hex(pairV.device_id), 1n, { timestamp: 5n, challenge, totp: 1, action: 'hello', args: [] });
        const body = p.decodeCommandBody(await p.openRequest(cmd, piRequestKey));
        assert.equal(body.body.action, 'hello');
        assert.deepEqual(link.code, new Uint8Array(16));
    });
});

// ---------------------------------------------------------------------------

describe('request frames (requests.json)', () => {
    for (const c of requests) {
        test(`${c.name}: plaintext and frame byte for byte`, async () => {
            const keys = await p.deviceKeys(hex(c.secret), c.totp.alg);
            const { code } = await p.totp(keys.totp, c.totp, c.timestamp);
            assert.equal(code, c.totp_code);
            const plain = c.type === 'command' ? p.commandPlaintext(inputsOf(c)) : p.cataloguePlaintext(inputsOf(c));
            assert.equal(toHex(plain), c.plaintext);
            const frame = await seal(keys, c, hex(c.nonce));
            assert.equal(frame.length, c.frame_len);
            assert.equal(toHex(frame), c.frame);
            const h = p.decodeRequestHeader(frame);
            assert.equal(h.error, undefined);
            assert.equal(h.header.type, c.type === 'command' ? p.T_COMMAND : p.T_CATALOGUE);
            assert.equal(h.header.counter, BigInt(c.counter));
            assert.equal(toHex(h.header.deviceId), c.device_id);
            const opened = await p.openRequest(frame, await importAes(rawKeysOf(c.secret).request_key, 'decrypt'));
            assert.equal(toHex(opened), c.plaintext);
            if (c.type === 'command') {
                const d = p.decodeCommandBody(opened);
                assert.deepEqual(d.body, { ...inputsOf(c), challenge: hex(c.challenge) });
            }
        });
    }
    test('without a nonce each frame gets a fresh random one', async () => {
        const c = requests[0];
        const keys = await p.deviceKeys(hex(c.secret), 'SHA1');
        const a = await seal(keys, c);
        const b = await seal(keys, c);
        assert.notEqual(toHex(a.subarray(28, 40)), toHex(b.subarray(28, 40)));
        assert.notEqual(toHex(a.subarray(28, 40)), c.nonce);
        const key = await importAes(deviceA.request_key, 'decrypt');
        assert.equal(toHex(await p.openRequest(a, key)), c.plaintext);
        assert.equal(toHex(await p.openRequest(b, key)), c.plaintext);
    });
    test('the encoder refuses what the Pi would call malformed', async () => {
        const keys = await p.deviceKeys(hex(deviceA.secret), 'SHA1');
        const base = { timestamp: 1n, challenge: new Uint8Array(16), totp: 0, action: 'a', args: [] };
        const dev = new Uint8Array(16);
        const bad = [
            [{ action: '' }, /not a valid action name/],
            [{ action: ' ights.on' }, /not a valid action name/],
            [{ action: 'a'.repeat(65) }, /not a valid action name/],
            [{ action: 'x.toml' }, /not a valid action name/],
            [{ args: Array(9).fill('x') }, /at most 8 arguments/],
            [{ args: ['x'.repeat(129)] }, /argument 1 is longer than 128 bytes/],
            [{ args: ['ok', 'new\nline'] }, /argument 2 contains a control character/],
            [{ args: ['\x7f'] }, /control character/],
            [{ action: 'a'.repeat(64), args: Array(4).fill('x'.repeat(128)) }, /does not fit in 512 bytes/],
            [{ challenge: new Uint8Array(17) }, /challenge must be 16 bytes/],
            [{ totp: 2 ** 32 }, /32 bits/],
            [{ timestamp: 2n ** 63n }, /timestamp out of range/],
        ];
        for (const [change, re] of bad) {
            await assert.rejects(p.sealCommand(keys, dev, 1n, { ...base, ...change }), re, Object.keys(change).join());
        }
        await assert.rejects(p.sealCommand(keys, new Uint8Array(15), 1n, base), /device id must be 16 bytes/);
        await assert.rejects(p.sealCommand(keys, dev, -1n, base), /counter out of range/);
        await assert.rejects(p.sealCommand(keys, dev, 1n, base, new Uint8Array(8)), /nonce must be 12 bytes/);
        await assert.rejects(p.sealCatalogue(keys, dev, 1n, { ...base, first: 256 }), /first must be 0\.\.255/);
        // 128-byte arguments and UTF-8 are fine.
        await p.sealCommand(keys, dev, 1n, { ...base, args: ['x'.repeat(128), 'café ☕'] });
    });
});

// ---------------------------------------------------------------------------

describe('responses (responses.json)', () => {
    const requestOf = Object.fromEntries(requests.map((c) => [c.name, c]));
    const entries = catalogueV.entries;
    for (const c of responses) {
        test(`${c.name}: ${c.type === 'refusal' ? 'a plain refusal, never authentic' : 'opened, bound to its request'}`, async () => {
            if (c.type === 'refusal') {
                const keys = await p.deviceKeys(hex(deviceA.secret), 'SHA1');
                const r = await p.openResponse(hex(c.frame), keys.response, hex(requests[0].frame));
                assert.deepEqual(r, { kind: 'refusal', type: 0xff, authentic: false, counter: BigInt(c.counter),
                                      status: hex(c.frame)[12], statusName: c.status });
                return;
            }
            const req = requestOf[c.request];
            const keys = await p.deviceKeys(hex(req.secret), req.totp.alg);
            const r = await p.openResponse(hex(c.frame), keys.response, hex(req.frame));
            assert.equal(r.authentic, true);
            assert.equal(r.kind, req.type);
            assert.equal(r.counter, BigInt(req.counter));
            assert.equal(r.statusName, c.status);
            assert.equal(r.piTime, BigInt(c.pi_time));
            assert.equal(r.synced, c.synced);
            if (c.type === 'command_result') {
                assert.equal(r.exitCode, c.exit_code);
                assert.equal(r.output.length, c.output_sent_len);
                assert.equal(toHex(r.output), toHex(utf8(c.output).subarray(0, c.output_sent_len)));
            } else {
                assert.deepEqual(r.page, p.decodeCatalogue(hex(c.rest)));
                assert.equal(r.page.total, entries.length);
            }
            // Another request, or another device's key: it does not open, and nothing else is given.
            const other = hex(req.frame);
            other[other.length - 1] ^= 1;
            const unbound = await p.openResponse(hex(c.frame), keys.response, other);
            assert.deepEqual(unbound, { kind: 'unopened', type: r.type, authentic: false, counter: r.counter });
            const otherKeys = await p.deviceKeys(hex(req.secret === deviceA.secret ? deviceB.secret : deviceA.secret), 'SHA1');
            assert.equal((await p.openResponse(hex(c.frame), otherKeys.response, hex(req.frame))).authentic, false);
        });
    }
    test('the test\'s own Pi seals exactly like the reference', async () => {
        const c = responses.find((x) => x.name === 'action-failed');
        const req = requests.find((x) => x.name === c.request);
        const rest = new Uint8Array(4);
        new DataView(rest.buffer).setInt32(0, c.exit_code);
        const plain = responsePlain(0x01, c.pi_time, c.synced, concat(rest, utf8(c.output)));
        assert.equal(toHex(await piSeal(0x81, rawKeysOf(req.secret).response_key, req.counter, hex(req.frame), plain, hex(c.nonce))), c.frame);
    });
    test('one flipped bit in the counter, nonce, body or tag: not authentic', async () => {
        const c = responses.find((x) => x.name === 'ok');
        const req = hex(requests.find((x) => x.name === c.request).frame);
        const keys = await p.deviceKeys(hex(deviceA.secret), 'SHA1');
        for (const i of [1, 4, 11, 12, 23, 24, 30, c.frame.length / 2 - 1]) {
            const f = hex(c.frame);
            f[i] ^= i === 1 ? 0x03 : 1; // byte 1: 0x81 -> 0x82, another response type
            const r = await p.openResponse(f, keys.response, req);
            assert.equal(r.authentic, false, `bit flipped in byte ${i}`);
            assert.equal(r.kind, 'unopened');
        }
    });
    test('bytes that are not a version 2 response are refused with a reason', async () => {
        const keys = await p.deviceKeys(hex(deviceA.secret), 'SHA1');
        const req = hex(requests[0].frame);
        const ok = hex(responses[0].frame);
        const cases = [
            [ok.slice(0, 12), /13\.\.512 bytes, not 12/],
            [new Uint8Array(513), /13\.\.512 bytes, not 513/],
            [Object.assign(ok.slice(), { 0: 1 }), /protocol version 1, expected 2/],
            [Object.assign(ok.slice(), { 3: 0x40 }), /length field says 64 bytes; the frame is 65/],
            [Object.assign(ok.slice(), { 1: 0x01 }), /frame type 1 is not a response/],
            [hex('02ff000d000000000000000117'), /status byte 0x17 is not a version 2 status/],
            [hex('02ff000e00000000000000011400'), /not a valid plain refusal/],
            [hex('0281001a0000000000000001000000000000000000000000ffff'), /sealed response of 26 bytes/],
        ];
        for (const [f, re] of cases) await assert.rejects(p.openResponse(f, keys.response, req), re);
    });
    test('authentic responses that break a rule are refused, not shown', async () => {
        const keys = await p.deviceKeys(hex(deviceA.secret), 'SHA1');
        const req = hex(requests[0].frame);
        const key = deviceA.response_key;
        const cases = [
            [0x81, responsePlain(0x17, 1, true, new Uint8Array(4)), /status byte 0x17/],
            [0x81, responsePlain(0, 1, true, new Uint8Array(3)), /shorter than its exit code/],
            [0x82, responsePlain(0, 1, true, hex('000000ff')), /1 bytes after the last catalogue entry/],
            [0x83, responsePlain(0, 1, true, new Uint8Array(31)), /shorter than its confirmation/],
        ];
        for (const [type, plain, re] of cases) {
            await assert.rejects(p.openResponse(await piSeal(type, key, 1, req, plain), keys.response, req), re);
        }
        // The output is the rest of the body, whatever bytes it holds.
        const r = await p.openResponse(await piSeal(0x81, key, 1, req, responsePlain(1, -5, false, hex('fffffffd00ff'))), keys.response, req);
        assert.equal(r.exitCode, -3);
        assert.equal(r.piTime, -5n);
        assert.equal(toHex(r.output), '00ff');
    });
});

// ---------------------------------------------------------------------------

/** The description as the Pi sends it: cut to 100 bytes at a character boundary. */
function cutDescription(s) {
    const b = utf8(s);
    if (b.length <= 100) return s;
    let end = 100;
    while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
    return new TextDecoder().decode(b.subarray(0, end));
}
const expectedEntry = (e) => ({
    name: e.name, description: cutDescription(e.description), confirm: e.confirm, kind: e.kind, maxArgs: e.max_args,
    ...(e.pattern !== undefined ? { pattern: e.pattern } : {}),
    ...(e.choices !== undefined ? { choices: e.choices } : {}),
});

describe('catalogue (catalogue.json)', () => {
    for (const e of catalogueV.entries) {
        test(`entry ${e.name}: decoded from its bytes`, () => {
            const page = p.decodeCatalogue(concat(hex('010001'), hex(e.bytes)));
            assert.deepEqual(page, { total: 1, first: 0, entries: [expectedEntry(e)] });
        });
    }
    test('the long description really was cut inside the vector', () => {
        const note = catalogueV.entries.find((e) => e.name === 'note');
        assert.ok(utf8(note.description).length > 100);
        assert.equal(utf8(expectedEntry(note).description).length, 99, 'cut before the 2-byte é');
    });
    for (const pg of catalogueV.pages) {
        test(`page from ${pg.first}: total, first and its entries`, () => {
            const page = p.decodeCatalogue(hex(pg.rest));
            assert.equal(page.total, catalogueV.entries.length);
            assert.equal(page.first, pg.first);
            assert.deepEqual(page.entries, catalogueV.entries.slice(pg.first).map(expectedEntry));
        });
    }
    test('pages that break a rule are refused with the entry and the rule', () => {
        const entry = (name, desc, flags, kind, max, tail = '') =>
            toHex(concat([name.length], utf8(name), [utf8(desc).length], utf8(desc), [flags, kind, max], hex(tail)));
        const cases = [
            ['0100', /shorter than its 3-byte head/],
            ['010102' + entry('a', '', 0, 0, 0), /entries past its total/],
            ['010001' + entry('-a', '', 0, 0, 0), /entry 0: bad action name/],
            ['010001' + entry('x.toml', '', 0, 0, 0), /entry 0: bad action name/],
            ['010001' + entry('a', 'x'.repeat(101), 0, 0, 0), /entry 0: bad description/],
            ['010001' + '0161' + '02c328' + '000000', /entry 0: bad description/],
            ['010001' + entry('a', '', 0, 4, 0), /bad flags or argument kind/],
            ['010001' + entry('a', '', 0, 1, 9), /bad flags or argument kind/],
            ['010001' + entry('a', '', 0, 2, 1, '00'), /bad pattern/],
            ['010001' + entry('a', '', 0, 2, 1, '0561'), /bad pattern/],
            ['010001' + entry('a', '', 0, 3, 1, '00'), /bad choice count/],
            ['010001' + entry('a', '', 0, 3, 1, '09'), /bad choice count/],
            ['010001' + entry('a', '', 0, 3, 1, '0100'), /bad choice/],
            ['010001' + entry('a', '', 0, 3, 1, '0121' + '61'.repeat(33)), /bad choice/],
            ['020002' + entry('a', '', 0, 0, 0), /entry 1: bad action name/],
            ['010001' + entry('a', '', 0, 0, 0) + '00', /1 bytes after the last catalogue entry/],
        ];
        for (const [rest, re] of cases) {
            assert.throws(() => p.decodeCatalogue(hex(rest)), (e) => e instanceof p.ProtocolError && re.test(e.message), rest);
        }
        assert.deepEqual(p.decodeCatalogue(hex('010001' + entry('a', '', 1, 3, 1, '0101' + '61'))).entries[0].choices, ['a']);
    });
});

// ---------------------------------------------------------------------------

describe('pairing links (links.json)', () => {
    const fieldsOf = (l) => ({
        pi: l.piId, pk: l.piKeyFingerprint, name: l.piName, dev: l.deviceId, code: toHex(l.code),
        alg: l.totp.alg, digits: l.totp.digits, period: l.totp.period, label: l.label,
    });
    for (const c of links.valid) {
        test(`valid: produced exactly, both forms parse back (${c.fields.name})`, () => {
            const parsed = p.parseLink(c.uri);
            assert.deepEqual(fieldsOf(parsed), c.fields);
            assert.equal(p.linkToUri(parsed), c.uri);
            assert.equal(p.linkToAppUrl(parsed, links.app_url_base), c.app_url);
            assert.equal(p.linkToAppUrl(parsed, links.app_url_base + '#old'), c.app_url);
            assert.deepEqual(fieldsOf(p.parseLink(c.app_url)), c.fields);
        });
    }
    for (const c of links.parse) {
        test(`parse: ${c.why}`, () => {
            assert.deepEqual(fieldsOf(p.parseLink(c.input)), c.fields);
        });
    }
    for (const c of links.invalid) {
        test(`invalid: refused with '${c.error_contains}', never showing the code`, () => {
            assert.throws(() => p.parseLink(c.input), (e) => {
                assert.ok(e instanceof p.ProtocolError);
                assert.ok(e.message.includes(c.error_contains), `${e.message} / ${c.error_contains}`);
                const code = /code=([^&]*)/.exec(c.input);
                if (code && code[1].length >= 8) assert.ok(!e.message.includes(code[1].slice(0, 8)), 'code in message');
                return true;
            });
        });
    }
    const base = links.valid[0].uri;
    const withName = (raw) => base.replace(/name=[^&]*/, `name=${raw}`);
    test('a name given raw (not percent-encoded) reads as its UTF-8, astral characters too', () => {
        assert.equal(p.parseLink(withName('Garage Pi ☕')).piName, 'Garage Pi ☕');
        assert.equal(p.parseLink(withName('Car 🚗')).piName, 'Car 🚗');
        assert.equal(p.parseLink(withName('%F0%9F%9A%97 %E2%98%95')).piName, '🚗 ☕');
    });
    test('percent-decoding: + is a plus, escapes in either case', () => {
        assert.equal(p.parseLink(withName('a+b%2b%2Bc')).piName, 'a+b++c');
    });
    test('name and label faults are named', () => {
        const cases = [
            [withName('%'), /^name: '%' not followed by two hex digits$/],
            [withName('ab%4'), /^name: '%' not followed by two hex digits$/],
            [withName('%C3%28'), /^name: not valid UTF-8$/],
            [withName('a\uD800'), /^name: not valid UTF-8$/],
            [withName('%E2%81%A6x'), /^name: .*control character at position 1/],
            [withName('%C2%85x'), /^name: .*control character/],
            [withName('%20Garage'), /^name: .*must not start or end with a space/],
            [withName('🚗'.repeat(65)), /^name: device name must be 1 to 64 characters long \(got 65\)/],
            [base.replace(/label=[^&]*/, 'label=%20'), /^label: .*space/],
        ];
        for (const [input, re] of cases) refuses(() => p.parseLink(input), re, input);
        assert.equal(p.parseLink(withName('🚗'.repeat(64))).piName.length, 128, '64 code points fit');
        const pct = (cp) => encodeURIComponent(String.fromCodePoint(cp));
        for (const cp of [0x00, 0x1f, 0x7f, 0x9f, 0x061c, 0x200e, 0x200f, 0x2028, 0x202e, 0x2066, 0x2069]) {
            refuses(() => p.parseLink(withName(`a${pct(cp)}b`)), (e) => {
                assert.match(e.message, /^name: device name 'a\\(x|u\{)[0-9a-f]+\}?b' contains a control character at position 2$/);
                return true;
            }, cp.toString(16));
        }
        for (const cp of [0x7e, 0xa0, 0x061b, 0x200d, 0x2027, 0x202f, 0x2065, 0x206a]) {
            assert.equal(p.parseLink(withName(`a${pct(cp)}b`)).piName, `a${String.fromCodePoint(cp)}b`, cp.toString(16));
        }
        assert.equal(p.parseLink(base.replace(/label=[^&]*/, 'label=')).label, '', 'an empty label is none');
    });
    test('alg, digits and period default to SHA1, 6 and 30; their bounds', () => {
        const bare = base.replace(/&alg=[^&]*&digits=[^&]*&period=[^&]*/, '');
        assert.deepEqual(p.parseLink(bare).totp, { alg: 'SHA1', digits: 6, period: 30 });
        const withTotp = (alg, digits, period) => base.replace('alg=SHA1&digits=6&period=30', `alg=${alg}&digits=${digits}&period=${period}`);
        assert.deepEqual(p.parseLink(withTotp('Sha512', '8', '300')).totp, { alg: 'SHA512', digits: 8, period: 300 });
        assert.deepEqual(p.parseLink(withTotp('SHA256', '7', '15')).totp, { alg: 'SHA256', digits: 7, period: 15 });
        for (const [a, d, per, re] of [['SHA1', '5', '30', /^digits/], ['SHA1', '9', '30', /^digits/], ['SHA1', '+6', '30', /^digits/],
                                       ['SHA1', '6', '301', /^period/], ['SHA1', '6', '+30', /^period/], ['SHA1', '6', '', /^period/],
                                       ['SHA1', '6', '3e1', /^period/], ['MD5', '6', '30', /^alg/], ['', '6', '30', /^alg/],
                                       ['\u017fha1', '6', '30', /^alg/], ['SHA1 ', '6', '30', /^alg/]]) {
            refuses(() => p.parseLink(withTotp(a, d, per)), re, `${a} ${d} ${per}`);
        }
    });
    test('the code: padding, a wrong character or set low bits are refused without echoing it', () => {
        // Case-insensitive for ASCII only: 'ı' and 'ſ' upper-case to I and S in Unicode.
        for (const code of ['LUPQW6R4TZBNDD3KFNGA5HL7G1', 'LUPQW6R4TZBNDD3KFNGA5H\u01317GE',
                            'LUPQW6R4TZBNDD3KFNGA5HL7\u017fE', 'LUPQW6R4TZBNDD3KFNGA5HL7G=', 'LUPQW6R4TZBNDD3KFNGA5HL7GB', '%4CUPQW6R4TZBNDD3KFNGA5HL7GE']) {
            assert.throws(() => p.parseLink(base.replace(/code=[^&]*/, `code=${code}`)), (e) =>
                /^code: /.test(e.message) && !e.message.includes('UPQW6R4'), code);
        }
    });
    test('a second known key is refused even when an unknown key repeats freely', () => {
        assert.doesNotThrow(() => p.parseLink(base + '&x=1&x=2'));
        refuses(() => p.parseLink(base + '&v=2'), /^v: given twice$/);
    });
});

// ---------------------------------------------------------------------------

describe('frames a Pi refuses (malformed.json)', () => {
    for (const c of malformed.header) {
        test(`header ${c.name}: ${c.status} from the clear header`, () => {
            const d = p.decodeRequestHeader(hex(c.frame));
            assert.equal(d.header, undefined);
            assert.equal(d.status, c.status);
            assert.ok(d.error.length > 0);
        });
    }
    for (const c of malformed.body) {
        test(`body ${c.name}: authenticates, and its plaintext is malformed`, async () => {
            assert.equal(malformed.secret, deviceA.secret);
            // 'short' is 76 bytes, under the 87 of the smallest command, so a Pi's
            // header check already refuses it (plain malformed) before opening it.
            const d = p.decodeRequestHeader(hex(c.frame));
            if (d.error) assert.equal(d.status, 'malformed');
            else assert.equal(d.header.type, p.T_COMMAND);
            const plain = await p.openRequest(hex(c.frame), await importAes(deviceA.request_key, 'decrypt'));
            assert.equal(toHex(plain), c.plaintext);
            assert.equal(c.status, 'malformed');
            assert.ok(p.decodeCommandBody(plain).error, 'refused by the plaintext rules');
        });
    }
    test('a request under another key does not open', async () => {
        const plain = await p.openRequest(hex(malformed.body[0].frame), await importAes(deviceB.request_key, 'decrypt'));
        assert.equal(plain, null);
    });
});

// ---------------------------------------------------------------------------
// Result fragments: the rule version 1 had, unchanged (spec/vectors/fragments.json).

describe('fragments (fragments.json)', () => {
    const fragments = vectors('fragments').cases;
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
    test('a lost fragment drops the partial frame; index 0 starts over', () => {
        const r = new p.Reassembler();
        assert.equal(r.push(hex(many.fragments[0])), 'more');
        assert.equal(r.push(hex(many.fragments[2])), 'error');
        assert.equal(r.push(hex(many.fragments[3])), 'error', 'nothing to continue');
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
