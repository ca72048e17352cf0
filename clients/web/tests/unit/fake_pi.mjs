// SPDX-License-Identifier: GPL-3.0-or-later
// A Pi for the app's unit tests: plays bluezscriptd's side of protocol version 2
// (docs/protocol.md) over a fake navigator.bluetooth, built on the app's
// own protocol2 module and plain WebCrypto: Info, single-use challenges, pair
// requests (pending devices with one-time codes), catalogue pages and commands,
// sealed answers bound to the request, plain refusals. Answers come as Result
// notifications in fragments, or only in Result when notifications are off.
import assert from 'node:assert/strict';
import nodeCrypto from 'node:crypto';

import * as p from '../../build/node/protocol2.js';
import { hex, vectors } from './vectors.mjs';

const pairV = vectors('pair');
const subtle = crypto.subtle;
const utf8 = (s) => new TextEncoder().encode(s);
const concat = (...parts) => new Uint8Array(Buffer.concat(parts.map((x) => Buffer.from(x))));
const SALT0 = utf8('bluezscript-v2');

/** AES-GCM keys of the Pi's side: it opens requests and seals responses. */
async function piKeys(ikm, requestInfo, responseInfo) {
    const base = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveKey']);
    const derive = (info, usage) => subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: SALT0, info: utf8(info) },
                                                     base, { name: 'AES-GCM', length: 256 }, false, [usage]);
    return { open: await derive(requestInfo, 'decrypt'), seal: await derive(responseInfo, 'encrypt') };
}

export const PI = { id: pairV.pi_id, public: pairV.pi_public, private: pairV.pi_private, name: 'garage-pi' };

/** A pairing link for device `dev` with `code` of the fake Pi. */
export function linkFor(dev, code, over = {}) {
    return p.parseLink(p.linkToAppUrl({
        piId: PI.id, piKeyFingerprint: pairV.pi_key_fingerprint, piName: PI.name, deviceId: dev, code: new Uint8Array(code),
        totp: { alg: 'SHA1', digits: 6, period: 30 }, label: 'Anna', ...over,
    }, 'https://garage-pi.local:8443/app/'));
}

class FakeChar {
    constructor(uuid, props, pi) {
        this.uuid = uuid;
        this.properties = props;
        this.pi = pi;
        this.listeners = [];
        this.value = null;
        this.notifying = false;
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
        await this.pi.write(new Uint8Array(data));
    }
    notify(payload) {
        this.value = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
        for (const fn of this.listeners) fn({ target: this });
    }
}

export class FakePi {
    /**
     * `notify`: Result notifications offered; `clock`: the Pi's time is the phone's
     * plus this many seconds; `synced`: its clock is synchronised; `pageSize`:
     * catalogue entries per page.
     */
    constructor({ notify = true, clock = 0, synced = true, pageSize = 2, publicKey = PI.public, piId = PI.id } = {}) {
        this.notifyOn = notify;
        this.clockOffset = clock;
        this.synced = synced;
        this.pageSize = pageSize;
        this.publicKey = publicKey;
        this.piId = piId;
        this.log = [];
        this.frames = [];   // every request frame written
        this.devices = new Map();
        this.result = new Uint8Array(0);
        this.challenge = null;
        this.forgeConfirm = false;
        this.losePairAnswer = false; // the pair result never reaches the phone
        this.chars = Object.fromEntries([
            [p.INFO_UUID, { read: true }], [p.CHALLENGE_UUID, { read: true }],
            [p.COMMAND_UUID, { write: true }], [p.RESULT_UUID, { read: true, notify }],
        ].map(([u, props]) => [u, new FakeChar(u, props, this)]));
        this.connected = false;
        this.disconnectHandlers = [];
        const self = this;
        this.device = {
            id: 'dev-1', name: PI.name,
            addEventListener(type, fn) { if (type === 'gattserverdisconnected') self.disconnectHandlers.push(fn); },
            gatt: {
                get connected() { return self.connected; },
                async connect() { self.connected = true; self.log.push('connect'); return this; },
                disconnect() { self.drop(); },
                async getPrimaryService(uuid) {
                    assert.equal(uuid, p.SERVICE_UUID);
                    return { getCharacteristic: async (u) => self.chars[u] };
                },
            },
        };
    }

    /** The link drops (the Pi forgets the challenge and the last result). */
    drop() {
        this.connected = false;
        this.challenge = null;
        this.result = new Uint8Array(0);
        this.chars[p.RESULT_UUID].notifying = false;
        this.chars[p.RESULT_UUID].listeners = [];
        for (const fn of this.disconnectHandlers.splice(0)) fn();
    }

    now() { return Math.floor(Date.now() / 1000) + this.clockOffset; }

    /** A pending device with its one-time code (16 bytes) and the actions it may run. */
    addPending(dev, code, actions = []) {
        this.devices.set(dev, { state: 'pending', code: new Uint8Array(code), expired: false, actions, counter: 0n, runs: [] });
    }

    read(uuid) {
        if (uuid === p.INFO_UUID) {
            return utf8(JSON.stringify({ v: 2, name: PI.name, pi: this.piId, pk: this.publicKey, time: this.now(), synced: this.synced }));
        }
        if (uuid === p.CHALLENGE_UUID) return (this.challenge = new Uint8Array(nodeCrypto.randomBytes(16)));
        if (uuid === p.RESULT_UUID) return this.result;
        throw new Error('not readable');
    }

    async answer(frame) {
        this.result = frame;
        const chr = this.chars[p.RESULT_UUID];
        // The answer comes a little later, as the daemon's would, in 19-byte fragments.
        if (chr.notifying) setTimeout(() => { for (const f of p.fragment(frame, 23)) chr.notify(f); }, 5);
    }

    refuse(counter, status) {
        const f = new Uint8Array(13);
        f[0] = 2;
        f[1] = 0xff;
        new DataView(f.buffer).setUint16(2, 13);
        new DataView(f.buffer).setBigUint64(4, counter);
        f[12] = Number(Object.entries(p.STATUS).find(([, s]) => s.name === status)[0]);
        return this.answer(f);
    }

    async seal(type, key, counter, request, status, rest) {
        const head = new Uint8Array(10);
        head[0] = Number(Object.entries(p.STATUS).find(([, s]) => s.name === status)[0]);
        new DataView(head.buffer).setBigInt64(1, BigInt(this.now()));
        head[9] = this.synced ? 1 : 0;
        const plain = concat(head, rest);
        const nonce = new Uint8Array(nodeCrypto.randomBytes(12));
        const header = new Uint8Array(24);
        const dv = new DataView(header.buffer);
        header[0] = 2;
        header[1] = type;
        dv.setUint16(2, 24 + plain.length + 16);
        dv.setBigUint64(4, counter);
        header.set(nonce, 12);
        const aad = concat(header, request.subarray(request.length - 16));
        const sealed = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad }, key, plain));
        return this.answer(concat(header, sealed));
    }

    /** The challenge of this link, used once. */
    takeChallenge(got) {
        const ok = this.challenge !== null && Buffer.from(got).equals(Buffer.from(this.challenge));
        this.challenge = null;
        return ok;
    }

    async write(frame) {
        this.frames.push(frame);
        const h = p.decodeRequestHeader(frame);
        if (!h.header) return this.refuse(0n, h.status);
        const { type, counter } = h.header;
        const dev = Buffer.from(h.header.deviceId).toString('hex');
        const d = this.devices.get(dev);
        if (type === p.T_PAIR) {
            if (!d) return this.refuse(0n, 'unknown_device');
            if (d.state === 'active') return this.refuse(0n, 'code_used');
            if (d.state === 'revoked') return this.refuse(0n, 'revoked');
            const keys = await piKeys(d.code, 'bluezscript v2 pair request', 'bluezscript v2 pair response');
            const plain = await p.openRequest(frame, keys.open);
            if (!plain) return this.refuse(0n, 'bad_mac');
            if (!this.takeChallenge(plain.subarray(0, 16))) return this.seal(0x83, keys.seal, 0n, frame, 'replayed', new Uint8Array(0));
            if (d.expired) return this.refuse(0n, 'code_expired');
            const e = plain.slice(16);
            const pi = await p.importP256PrivateKeyForTests(hex(PI.private));
            const z = await p.sharedX(pi.privateKey, e);
            const t = await p.pairTranscript(hex(PI.id), hex(dev), hex(PI.public), e);
            const { secret, confirm } = await p.pairSecret(z, d.code, t);
            d.state = 'active';
            d.keys = await piKeys(secret, 'bluezscript v2 request', 'bluezscript v2 response');
            d.totp = (await p.deviceKeys(secret, 'SHA1')).totp;
            if (this.forgeConfirm) confirm[0] ^= 1;
            if (this.losePairAnswer) return undefined;
            return this.seal(0x83, keys.seal, 0n, frame, 'ok', concat(confirm, utf8('paired as Anna')));
        }
        if (!d || d.state === 'pending') return this.refuse(counter, 'unknown_device');
        if (d.state === 'revoked') return this.refuse(counter, 'revoked');
        const plain = await p.openRequest(frame, d.keys.open);
        if (!plain) return this.refuse(counter, 'bad_mac');
        const rt = type === p.T_COMMAND ? 0x81 : 0x82;
        const sealed = (status, rest = new Uint8Array(rt === 0x81 ? 4 : 3)) => this.seal(rt, d.keys.seal, counter, frame, status, rest);
        if (counter <= d.counter) return sealed('replayed');
        d.counter = counter;
        if (!this.takeChallenge(plain.subarray(8, 24))) return sealed('replayed');
        const ts = Number(new DataView(plain.buffer, plain.byteOffset).getBigInt64(0));
        const code = new DataView(plain.buffer, plain.byteOffset).getUint32(24);
        if ((await p.totp(d.totp, { alg: 'SHA1', digits: 6, period: 30 }, ts)).code !== code) return sealed('bad_totp');
        if (type === p.T_CATALOGUE) {
            const first = plain[28];
            const page = d.actions.slice(first, first + this.pageSize);
            return sealed('ok', concat(Uint8Array.of(d.actions.length, first, page.length), ...page.map(entryBytes)));
        }
        const body = p.decodeCommandBody(plain).body;
        if (!d.actions.some((a) => a.name === body.action)) return sealed('not_permitted');
        d.runs.push([body.action, ...body.args]);
        const out = utf8(`${body.action} ran${body.args.length ? ` with ${body.args.join(' ')}` : ''}\n`);
        return sealed('ok', concat(new Uint8Array(4), out));
    }
}

/** A catalogue entry's bytes (docs/protocol.md section 6). */
export function entryBytes(a) {
    const kinds = { none: 0, free: 1, pattern: 2, choices: 3 };
    const str = (s) => { const b = utf8(s); return concat(Uint8Array.of(b.length), b); };
    const parts = [str(a.name), str(a.description ?? ''), Uint8Array.of(a.confirm ? 1 : 0, kinds[a.kind ?? 'none'], a.maxArgs ?? 0)];
    if (a.kind === 'pattern') parts.push(str(a.pattern));
    if (a.kind === 'choices') parts.push(Uint8Array.of(a.choices.length), ...a.choices.map(str));
    return concat(...parts);
}

/** navigator.bluetooth for `pi`: the chooser always picks it; getDevices() knows it. */
export function fakeBluetooth(pi) {
    const calls = { requestDevice: [], getDevices: 0 };
    return {
        calls,
        async requestDevice(opts) { calls.requestDevice.push(opts); return pi.device; },
        async getDevices() { calls.getDevices += 1; return [pi.device]; },
    };
}
