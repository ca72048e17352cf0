// SPDX-License-Identifier: GPL-3.0-or-later
// The BlueZscript protocol, version 1, for the phone app: pairing URIs, keys, TOTP,
// request and response frames, Result fragments. docs/protocol.md is normative and
// spec/vectors/ are the byte-level reference (tests/unit/protocol.test.mjs).
// Pure WebCrypto and typed arrays: it runs unchanged in browsers and in Node.

export const SERVICE_UUID = '1b324b66-1eca-4b75-ac85-5f5515fb2900';
export const INFO_UUID = '1b324b66-1eca-4b75-ac85-5f5515fb2901';
export const CHALLENGE_UUID = '1b324b66-1eca-4b75-ac85-5f5515fb2902';
export const COMMAND_UUID = '1b324b66-1eca-4b75-ac85-5f5515fb2903';
export const RESULT_UUID = '1b324b66-1eca-4b75-ac85-5f5515fb2904';

export const MAX_FRAME = 512;

/** Bytes backed by a plain ArrayBuffer (what WebCrypto accepts). */
export type Bytes = Uint8Array<ArrayBuffer>;
const MAC_LEN = 32;
const TAG_LEN = 16;
const MAX_ARGS = 8;
const MAX_ARG_LEN = 128;
const MIN_RESPONSE = 65;

const subtle = (): SubtleCrypto => {
    const s = globalThis.crypto?.subtle;
    if (!s) throw new ProtocolError('WebCrypto is not available (the page needs HTTPS)');
    return s;
};

/** A broken rule of the protocol; the message names it and never carries a secret. */
export class ProtocolError extends Error {
    constructor(message: string) {
        super(message);
        this.name = 'ProtocolError';
    }
}

// ---------------------------------------------------------------------------
// Encodings

export function hexEncode(b: Bytes): string {
    let s = '';
    for (const x of b) s += x.toString(16).padStart(2, '0');
    return s;
}

/** Hex of either case; null unless it is whole bytes of hex digits. */
export function hexDecode(s: string): Bytes | null {
    if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return null;
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding, upper case (as the Pi writes it). */
export function base32Encode(b: Bytes): string {
    let out = '';
    let acc = 0;
    let bits = 0;
    for (const x of b) {
        acc = (acc << 8) | x;
        bits += 8;
        while (bits >= 5) {
            out += B32[(acc >>> (bits - 5)) & 31];
            bits -= 5;
        }
        acc &= 0xff;
    }
    if (bits > 0) out += B32[(acc << (5 - bits)) & 31];
    return out;
}

/** RFC 4648 base32, either case, padding optional; null when it is not base32. */
export function base32Decode(text: string): Bytes | null {
    const s = text.toUpperCase().replace(/=+$/, '');
    // Lengths 1, 3 and 6 (mod 8) cannot come from whole bytes.
    if ([1, 3, 6].includes(s.length % 8)) return null;
    const out: number[] = [];
    let acc = 0;
    let bits = 0;
    for (const ch of s) {
        const v = B32.indexOf(ch);
        if (v < 0) return null;
        acc = ((acc << 5) | v) & 0xffff;
        bits += 5;
        if (bits >= 8) {
            out.push((acc >>> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    return new Uint8Array(out);
}

const utf8 = new TextEncoder();

/** RFC 3986 percent-encoding of everything but unreserved characters, byte by byte. */
export function percentEncode(s: string): string {
    let out = '';
    for (const b of utf8.encode(s)) {
        const c = String.fromCharCode(b);
        out += /[A-Za-z0-9\-._~]/.test(c) ? c : '%' + b.toString(16).toUpperCase().padStart(2, '0');
    }
    return out;
}

/** Decodes %XX (either case); '+' stays '+'. Null on a bad escape or invalid UTF-8. */
export function percentDecode(s: string): string | null {
    const bytes: number[] = [];
    for (let i = 0; i < s.length; i++) {
        if (s[i] === '%') {
            const h = s.substr(i + 1, 2);
            if (h.length !== 2 || !/^[0-9a-fA-F]{2}$/.test(h)) return null;
            bytes.push(parseInt(h, 16));
            i += 2;
        } else {
            bytes.push(...utf8.encode(s[i]));
        }
    }
    try {
        return new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes));
    } catch {
        return null;
    }
}

// ---------------------------------------------------------------------------
// Pairing URI (section 10)

export type HashName = 'SHA1' | 'SHA256' | 'SHA512';

export interface TotpParams {
    alg: HashName;
    digits: number;
    period: number;
}

export interface Pairing {
    piId: string;      // 32 lower-case hex digits
    piName: string;
    deviceId: string;  // 32 lower-case hex digits
    secret: Bytes;
    totp: TotpParams;
    label: string;
    /** Names of the actions the owner permitted when pairing (a hint for buttons). */
    actions: string[];
}

const SCHEME = 'bluezscript://pair?';

function pairingQuery(p: Pairing): string {
    let q = `v=1&pi=${p.piId}&name=${percentEncode(p.piName)}&dev=${p.deviceId}` +
            `&secret=${base32Encode(p.secret)}&alg=${p.totp.alg}&digits=${p.totp.digits}` +
            `&period=${p.totp.period}`;
    if (p.label) q += `&label=${percentEncode(p.label)}`;
    return q;
}

export function pairingToUri(p: Pairing): string {
    return SCHEME + pairingQuery(p);
}

export function pairingToAppUrl(p: Pairing, appUrl: string): string {
    const hash = appUrl.indexOf('#');
    return (hash < 0 ? appUrl : appUrl.slice(0, hash)) + '#' + pairingQuery(p);
}

const ACTION_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** True for a name the protocol allows as an action (section 3). */
export function validActionName(name: string): boolean {
    return ACTION_RE.test(name) && !name.endsWith('.toml');
}

/**
 * Parses either form of the pairing payload, exactly like the Pi's parser. Throws
 * ProtocolError naming the field at fault; the message never contains the secret.
 * `actions` (comma-separated) is an optional hint some Pis add; unknown keys are ignored.
 */
export function parsePairing(text: string): Pairing {
    let q: string;
    if (text.startsWith(SCHEME)) {
        q = text.slice(SCHEME.length);
    } else if (text.includes('#')) {
        q = text.slice(text.indexOf('#') + 1);
    } else {
        throw new ProtocolError('not a pairing URI: expected bluezscript://pair?... or a URL with #v=1&...');
    }
    const fields = new Map<string, string>();
    for (const item of q.split('&')) {
        if (item === '') continue;
        const eq = item.indexOf('=');
        if (eq < 0) throw new ProtocolError('field without a value in pairing URI');
        const key = item.slice(0, eq);
        const value = percentDecode(item.slice(eq + 1));
        if (value === null) throw new ProtocolError(`bad percent-encoding in field '${key}'`);
        if (fields.has(key)) throw new ProtocolError(`field '${key}' appears twice`);
        fields.set(key, value);
    }
    for (const k of ['v', 'pi', 'name', 'dev', 'secret']) {
        if (!fields.has(k)) throw new ProtocolError(`pairing URI lacks the '${k}' field`);
    }
    const get = (k: string): string => fields.get(k) as string;
    if (get('v') !== '1') throw new ProtocolError(`pairing URI version '${get('v')}' is not supported`);
    const hex32 = (k: string): string => {
        const v = get(k);
        if (v.length !== 32 || hexDecode(v) === null) throw new ProtocolError(`'${k}' must be 32 hex digits`);
        return v.toLowerCase();
    };
    const piId = hex32('pi');
    const deviceId = hex32('dev');
    const secret = base32Decode(get('secret'));
    if (!secret || secret.length < 20) throw new ProtocolError("'secret' must be base32 of at least 20 bytes");
    const piName = get('name');
    if (piName.length === 0 || utf8.encode(piName).length > 64) {
        throw new ProtocolError("'name' must be 1..64 characters");
    }
    const totp: TotpParams = { alg: 'SHA1', digits: 6, period: 30 };
    if (fields.has('alg')) {
        const a = get('alg').toUpperCase().replace(/-/g, '');
        if (a !== 'SHA1' && a !== 'SHA256' && a !== 'SHA512') {
            throw new ProtocolError("'alg' must be SHA1, SHA256 or SHA512");
        }
        totp.alg = a;
    }
    const int = (k: string, lo: number, hi: number, msg: string): number | undefined => {
        if (!fields.has(k)) return undefined;
        const v = get(k);
        if (!/^[0-9]+$/.test(v) || Number(v) < lo || Number(v) > hi) throw new ProtocolError(msg);
        return Number(v);
    };
    totp.digits = int('digits', 6, 8, "'digits' must be 6, 7 or 8") ?? 6;
    totp.period = int('period', 15, 300, "'period' must be 15..300 seconds") ?? 30;
    const actions = (fields.get('actions') ?? '').split(',').filter(validActionName);
    return { piId, piName, deviceId, secret, totp, label: fields.get('label') ?? '', actions };
}

// ---------------------------------------------------------------------------
// Keys (section 5)

/**
 * The non-extractable keys of one pairing. The raw secret is needed only to make
 * them: `request` and `response` are HKDF-SHA256 outputs imported as HMAC-SHA256
 * keys, `totp` is the secret itself imported as an HMAC key of the pairing's hash.
 */
export interface DeviceKeys {
    request: CryptoKey;
    response: CryptoKey;
    totp: CryptoKey;
}

const SALT = utf8.encode('bluezscript-v1');
const INFO_REQUEST = utf8.encode('bluezscript v1 request mac');
const INFO_RESPONSE = utf8.encode('bluezscript v1 response mac');
const HASH: Record<HashName, string> = { SHA1: 'SHA-1', SHA256: 'SHA-256', SHA512: 'SHA-512' };

/**
 * Derives the keys from the secret. `extractable` is for the vector tests only,
 * which compare the derived bytes; the app always stores non-extractable keys.
 */
export async function deriveKeys(secret: Bytes, alg: HashName,
                                 extractable = false): Promise<DeviceKeys> {
    const s = subtle();
    const ikm = await s.importKey('raw', secret, 'HKDF', false, ['deriveKey']);
    const hmac = { name: 'HMAC', hash: 'SHA-256', length: 256 };
    const derive = (info: Bytes, usages: KeyUsage[]) =>
        s.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: SALT, info }, ikm, hmac, extractable, usages);
    return {
        request: await derive(INFO_REQUEST, ['sign']),
        // 'sign' too: verification recomputes the MAC and compares in constant time.
        response: await derive(INFO_RESPONSE, ['sign', 'verify']),
        totp: await s.importKey('raw', secret, { name: 'HMAC', hash: HASH[alg] }, extractable, ['sign']),
    };
}

async function hmac(key: CryptoKey, data: Bytes): Promise<Bytes> {
    return new Uint8Array(await subtle().sign('HMAC', key, data));
}

// ---------------------------------------------------------------------------
// TOTP (section 6.1)

/** RFC 4226 HOTP with the key made by deriveKeys (`keys.totp`). */
export async function hotp(key: CryptoKey, counter: number, digits: number): Promise<number> {
    const msg = new Uint8Array(8);
    new DataView(msg.buffer).setBigUint64(0, BigInt(counter));
    const d = await hmac(key, msg);
    const off = d[d.length - 1] & 0x0f;
    const v = (new DataView(d.buffer, d.byteOffset + off, 4).getUint32(0) & 0x7fffffff) >>> 0;
    return v % 10 ** digits;
}

/** The code and its step at Unix time `now` (seconds), T0 = 0. */
export async function totp(key: CryptoKey, params: TotpParams, now: number): Promise<{ code: number; step: number }> {
    const step = Math.floor(now / params.period);
    return { code: await hotp(key, step, params.digits), step };
}

// ---------------------------------------------------------------------------
// Request frame (section 3)

export interface Request {
    deviceId: Bytes;   // 16 bytes
    counter: bigint;        // unsigned 64-bit
    timestamp: bigint;      // signed 64-bit Unix seconds
    challenge: Bytes;  // 16 bytes
    totp: number;           // the code as a number
    action: string;
    args: string[];
}

export interface EncodedRequest {
    frame: Bytes;
    /** First 16 bytes of the MAC: the response echoes them. */
    tag: Bytes;
}

/** Builds and MACs a request; refuses what the Pi would refuse as malformed. */
export async function encodeRequest(req: Request, requestKey: CryptoKey): Promise<EncodedRequest> {
    if (req.deviceId.length !== 16) throw new ProtocolError('the device id must be 16 bytes');
    if (req.challenge.length !== 16) throw new ProtocolError('the challenge must be 16 bytes');
    if (!validActionName(req.action)) {
        throw new ProtocolError(`'${req.action}' is not a valid action name (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit, not ending in .toml)`);
    }
    if (req.args.length > MAX_ARGS) throw new ProtocolError(`at most ${MAX_ARGS} arguments`);
    if (req.counter < 0n || req.counter > 0xffffffffffffffffn) throw new ProtocolError('counter out of range');
    const args = req.args.map((a, i) => {
        const b = utf8.encode(a);
        if (b.length > MAX_ARG_LEN) throw new ProtocolError(`argument ${i + 1} is longer than ${MAX_ARG_LEN} bytes`);
        if (b.some((x) => x < 0x20 || x === 0x7f)) throw new ProtocolError(`argument ${i + 1} contains a control character`);
        return b;
    });
    const action = utf8.encode(req.action);
    const bodyLen = 55 + action.length + 1 + args.reduce((n, a) => n + 1 + a.length, 0);
    if (bodyLen + MAC_LEN > MAX_FRAME) throw new ProtocolError(`the command does not fit in ${MAX_FRAME} bytes`);
    const frame = new Uint8Array(bodyLen + MAC_LEN);
    const dv = new DataView(frame.buffer);
    frame[0] = 1;
    frame[1] = 1;
    frame.set(req.deviceId, 2);
    dv.setBigUint64(18, req.counter);
    dv.setBigInt64(26, req.timestamp);
    frame.set(req.challenge, 34);
    dv.setUint32(50, req.totp >>> 0);
    frame[54] = action.length;
    frame.set(action, 55);
    let p = 55 + action.length;
    frame[p++] = args.length;
    for (const a of args) {
        frame[p++] = a.length;
        frame.set(a, p);
        p += a.length;
    }
    const mac = await hmac(requestKey, frame.subarray(0, bodyLen));
    frame.set(mac, bodyLen);
    return { frame, tag: mac.slice(0, TAG_LEN) };
}

// ---------------------------------------------------------------------------
// Response frame (section 4) and status codes (section 9)

export const STATUS: Record<number, { name: string; message: string }> = {
    0x00: { name: 'ok', message: 'the action ran and succeeded' },
    0x01: { name: 'action_failed', message: 'the action ran and failed' },
    0x02: { name: 'action_timeout', message: 'the action was stopped at its timeout' },
    0x03: { name: 'action_busy', message: 'the action is already running' },
    0x04: { name: 'action_start_failed', message: 'the action could not be started' },
    0x10: { name: 'malformed', message: 'the command frame is malformed' },
    0x11: { name: 'unknown_version', message: 'the command uses an unknown protocol version' },
    0x12: { name: 'unknown_device', message: 'this device is not paired with the Pi' },
    0x13: { name: 'revoked', message: "this device's pairing was revoked" },
    0x14: { name: 'bad_mac', message: "the command's MAC did not verify" },
    0x15: { name: 'stale_timestamp', message: "the command's timestamp is too far from the Pi's clock" },
    0x16: { name: 'bad_totp', message: 'the one-time code is wrong' },
    // Reserved: protocol v1 refused a second command in one TOTP step; no longer sent.
    0x17: { name: 'reused_totp', message: 'the one-time code was already used' },
    0x18: { name: 'replayed', message: 'the command was replayed (old counter or wrong challenge)' },
    0x19: { name: 'rate_limited', message: 'too many attempts; try again later' },
    0x1a: { name: 'unknown_action', message: 'the Pi has no such action' },
    0x1b: { name: 'not_permitted', message: 'this device may not run that action' },
    0x1c: { name: 'bad_arguments', message: "the action's arguments were refused" },
    0x1f: { name: 'internal', message: 'the Pi could not record the command; nothing ran' },
};

export interface Response {
    counter: bigint;
    tag: Bytes;
    status: number;
    statusName: string;
    exitCode: number;
    output: Bytes;
    /** True only when the MAC verified with the given response key. */
    macOk: boolean;
}

function constantTimeEqual(a: Bytes, b: Bytes): boolean {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
}

/**
 * Decodes a response and verifies its MAC (recomputed, compared in constant time).
 * Throws ProtocolError for a frame that breaks section 4; a MAC that does not verify
 * (including the all-zero MAC of refusals of unknown senders) gives macOk = false.
 */
export async function decodeResponse(frame: Bytes, responseKey: CryptoKey): Promise<Response> {
    if (frame.length < MIN_RESPONSE || frame.length > MAX_FRAME) {
        throw new ProtocolError(`a response is 65..512 bytes, got ${frame.length}`);
    }
    if (frame[0] !== 1 || frame[1] !== 2) throw new ProtocolError('not a version 1 response frame');
    const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const outLen = dv.getUint16(31);
    if (33 + outLen + MAC_LEN !== frame.length) {
        throw new ProtocolError(`output_len ${outLen} does not match a ${frame.length}-byte frame`);
    }
    const status = frame[26];
    if (!(status in STATUS)) throw new ProtocolError(`0x${status.toString(16)} is not a status code`);
    const body = frame.subarray(0, 33 + outLen);
    const mac = frame.subarray(33 + outLen);
    const macOk = constantTimeEqual(await hmac(responseKey, body), mac);
    return {
        counter: dv.getBigUint64(2),
        tag: frame.slice(10, 26),
        status,
        statusName: STATUS[status].name,
        exitCode: dv.getInt32(27),
        output: frame.slice(33, 33 + outLen),
        macOk,
    };
}

/** True when `r` answers the request that produced `sent` (section 4: counter and tag). */
export function answers(r: Response, counter: bigint, sent: EncodedRequest): boolean {
    return r.counter === counter && constantTimeEqual(r.tag, sent.tag);
}

// ---------------------------------------------------------------------------
// Fragments (section 7)

/** The notification payloads a frame is sent as (the Pi's side; used by tests). */
export function fragment(frame: Bytes, attMtu: number): Bytes[] {
    const chunk = Math.max(attMtu, 23) - 4;
    const n = Math.max(1, Math.ceil(frame.length / chunk));
    const out: Bytes[] = [];
    for (let i = 0; i < n; i++) {
        const piece = frame.subarray(i * chunk, (i + 1) * chunk);
        const f = new Uint8Array(1 + piece.length);
        f[0] = i | (i === n - 1 ? 0x80 : 0);
        f.set(piece, 1);
        out.push(f);
    }
    return out;
}

/** protocol::Reassembler: push() answers 'more', 'done' (see frame) or 'error'. */
export class Reassembler {
    private parts: Bytes[] | null = null;
    private size = 0;
    private next = 0;
    frame: Bytes | null = null;

    push(payload: Bytes): 'more' | 'done' | 'error' {
        this.frame = null;
        if (payload.length === 0) return this.fail();
        const index = payload[0] & 0x7f;
        if (index === 0) {
            this.parts = [];
            this.size = 0;
        } else if (this.parts === null || index !== this.next) {
            return this.fail();
        }
        this.parts!.push(payload.slice(1));
        this.size += payload.length - 1;
        this.next = index + 1;
        if (this.size > MAX_FRAME) return this.fail();
        if (payload[0] & 0x80) {
            const f = new Uint8Array(this.size);
            let p = 0;
            for (const part of this.parts!) {
                f.set(part, p);
                p += part.length;
            }
            this.frame = f;
            this.parts = null;
            return 'done';
        }
        return 'more';
    }

    reset(): void {
        this.parts = null;
        this.size = 0;
        this.next = 0;
    }

    private fail(): 'error' {
        this.reset();
        return 'error';
    }
}

// ---------------------------------------------------------------------------
// Info characteristic (section 2)

export interface Info {
    v: number;
    name: string;
    pi: string;
}

export function parseInfo(value: Bytes): Info {
    let j: unknown;
    try {
        j = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(value));
    } catch {
        throw new ProtocolError("the Pi's Info characteristic is not UTF-8 JSON");
    }
    const o = j as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || typeof o.v !== 'number' || typeof o.pi !== 'string' ||
        typeof o.name !== 'string') {
        throw new ProtocolError("the Pi's Info characteristic lacks v, name or pi");
    }
    return { v: o.v, name: o.name, pi: o.pi.toLowerCase() };
}
