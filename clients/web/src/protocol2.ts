// SPDX-License-Identifier: GPL-3.0-or-later
// The BlueZscript protocol, version 2 (docs/protocol.md), for the phone
// app: pairing links, the P-256 pairing exchange, sealed (AES-256-GCM) command and
// catalogue requests, responses, the catalogue and TOTP. spec/vectors/ is the
// byte-level reference (tests/unit/protocol2.test.mjs). Also the GATT UUIDs,
// encodings, TOTP and Result fragments, which version 2 keeps from version 1.
// Pure WebCrypto and typed arrays: it runs unchanged in browsers and in Node.

export const VERSION = 2;
export const REQUEST_HEADER = 40;
export const RESPONSE_HEADER = 24;
export const TAG_LEN = 16;
export const NONCE_LEN = 12;
export const REFUSAL_LEN = 13;
export const PUBLIC_KEY_LEN = 65;
export const CONFIRM_LEN = 32;
/** Longest command output a result carries: 512 - 24 - 16 - 14. */
export const MAX_RESULT_OUTPUT = 458;

export const T_COMMAND = 0x01;
export const T_CATALOGUE = 0x02;
export const T_PAIR = 0x03;
export const T_COMMAND_RESULT = 0x81;
export const T_CATALOGUE_RESULT = 0x82;
export const T_PAIR_RESULT = 0x83;
export const T_REFUSAL = 0xff;

const CHALLENGE_LEN = 16;
const DEVICE_ID_LEN = 16;
const MAX_ARGS = 8;
const MAX_ARG_LEN = 128;
const MAX_ACTION_LEN = 64;
const HEAD_LEN = 10; // status, pi_time, flags
const FLAG_SYNCED = 0x01;
// Smallest plaintexts: a one-byte action without arguments; catalogue; pair.
const COMMAND_BODY_MIN = 8 + CHALLENGE_LEN + 4 + 1 + 1 + 1;
const CATALOGUE_BODY_LEN = 8 + CHALLENGE_LEN + 4 + 1;
const PAIR_BODY_LEN = CHALLENGE_LEN + PUBLIC_KEY_LEN;

const utf8 = new TextEncoder();
const ascii = (s: string): Bytes => utf8.encode(s);
const SALT0 = ascii('bluezscript-v2');
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

const subtle = (): SubtleCrypto => {
    const s = globalThis.crypto?.subtle;
    if (!s) throw new ProtocolError('WebCrypto is not available (the page needs HTTPS)');
    return s;
};

const concat = (...parts: Uint8Array[]): Bytes => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
        out.set(p, at);
        at += p.length;
    }
    return out;
};

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
}

function decodeUtf8(b: Uint8Array): string | null {
    try {
        return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
        return null;
    }
}

export const SERVICE_UUID = '1b324b66-1eca-4b75-ac85-5f5515fb2900';
export const INFO_UUID = '1b324b66-1eca-4b75-ac85-5f5515fb2901';
export const CHALLENGE_UUID = '1b324b66-1eca-4b75-ac85-5f5515fb2902';
export const COMMAND_UUID = '1b324b66-1eca-4b75-ac85-5f5515fb2903';
export const RESULT_UUID = '1b324b66-1eca-4b75-ac85-5f5515fb2904';

export const MAX_FRAME = 512;

/** Bytes backed by a plain ArrayBuffer (what WebCrypto accepts). */
export type Bytes = Uint8Array<ArrayBuffer>;

export type HashName = 'SHA1' | 'SHA256' | 'SHA512';

export interface TotpParams {
    alg: HashName;
    digits: number;
    period: number;
}

/** A broken rule of the protocol; the message names it and never carries a secret. */
export class ProtocolError extends Error {
    constructor(message: string) {
        super(message);
        this.name = 'ProtocolError';
    }
}

// ---------------------------------------------------------------------------
// Encodings

export function hexEncode(b: Uint8Array): string {
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

/** RFC 4648 base32 without padding, upper case (as the Pi writes it). */
export function base32Encode(b: Uint8Array): string {
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

/** RFC 4648 base32, upper case, no padding; null when it is not base32 of whole bytes. */
export function base32Decode(s: string): Bytes | null {
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

const ACTION_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** True for a name the protocol allows as an action. */
export function validActionName(name: string): boolean {
    return ACTION_RE.test(name) && !name.endsWith('.toml');
}

// ---------------------------------------------------------------------------
// Status codes

/** Version 2 status codes (docs/protocol.md section 10; 0x17 is no longer sent). */
export const STATUS: Record<number, { name: string; message: string }> = {
    0x00: { name: 'ok', message: 'the action ran and succeeded' },
    0x01: { name: 'action_failed', message: 'the action ran and failed' },
    0x02: { name: 'action_timeout', message: 'the action was stopped at its timeout' },
    0x03: { name: 'action_busy', message: 'the action is already running' },
    0x04: { name: 'action_start_failed', message: 'the action could not be started' },
    0x10: { name: 'malformed', message: 'the request is malformed' },
    0x11: { name: 'unknown_version', message: 'the request uses an unknown protocol version' },
    0x12: { name: 'unknown_device', message: 'this device is not paired with the Pi' },
    0x13: { name: 'revoked', message: "this device's pairing was revoked" },
    0x14: { name: 'bad_mac', message: 'the request did not authenticate with this pairing' },
    0x15: { name: 'stale_timestamp', message: "the request's timestamp is too far from the Pi's clock" },
    0x16: { name: 'bad_totp', message: 'the one-time code is wrong' },
    0x18: { name: 'replayed', message: 'the request was replayed (old counter or wrong challenge)' },
    0x19: { name: 'rate_limited', message: 'too many attempts; try again later' },
    0x1a: { name: 'unknown_action', message: 'the Pi has no such action' },
    0x1b: { name: 'not_permitted', message: 'this device may not run that action' },
    0x1c: { name: 'bad_arguments', message: "the action's arguments were refused" },
    0x1d: { name: 'code_used', message: 'the pairing code was already used' },
    0x1e: { name: 'code_expired', message: 'the pairing code has expired' },
    0x1f: { name: 'internal', message: 'the Pi could not record the command; nothing ran' },
};

// ---------------------------------------------------------------------------
// Pairing link ("Link parsing")

export interface PairingLink {
    piId: string;             // 32 lower-case hex digits
    piKeyFingerprint: string; // SHA-256 of the Pi's public key, 64 lower-case hex digits
    piName: string;
    deviceId: string;         // 32 lower-case hex digits
    /** The one-time pairing code (16 bytes); wiped by the pairing exchange once keys exist. */
    code: Bytes;
    totp: TotpParams;
    label: string;            // may be empty
}

const SCHEME = 'bluezscript://pair?';
const CODE_CHARS = 26; // 128 bits, unpadded
const CODE_LEN = 16;
const KNOWN_KEYS = new Set(['v', 'pi', 'pk', 'name', 'dev', 'code', 'alg', 'digits', 'period', 'label']);

/** The query of the canonical link, fields in the documented order. */
export function linkQuery(l: PairingLink): string {
    let q = `v=2&pi=${l.piId}&pk=${l.piKeyFingerprint}&name=${percentEncode(l.piName)}` +
            `&dev=${l.deviceId}&code=${base32Encode(l.code)}&alg=${l.totp.alg}` +
            `&digits=${l.totp.digits}&period=${l.totp.period}`;
    if (l.label) q += `&label=${percentEncode(l.label)}`;
    return q;
}

export function linkToUri(l: PairingLink): string {
    return SCHEME + linkQuery(l);
}

export function linkToAppUrl(l: PairingLink, appUrl: string): string {
    const hash = appUrl.indexOf('#');
    return (hash < 0 ? appUrl : appUrl.slice(0, hash)) + '#' + linkQuery(l);
}

// Control characters and those that reorder or break lines (names.h).
const disallowed = (c: number): boolean =>
    c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x061c || c === 0x200e || c === 0x200f ||
    (c >= 0x2028 && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);

/** `s` in single quotes with those characters escaped, safe in an error message. */
function quoteForMessage(s: string): string {
    let out = '';
    for (const ch of s) {
        const c = ch.codePointAt(0) as number;
        out += !disallowed(c) ? ch : c < 0x80 ? '\\x' + c.toString(16).padStart(2, '0') : `\\u{${c.toString(16)}}`;
    }
    return `'${out}'`;
}

/** Why `name` cannot name a device or a Pi (core/protocol/names.h), or null. */
export function deviceNameProblem(name: string): string | null {
    const cps = Array.from(name, (c) => c.codePointAt(0) as number);
    if (cps.length === 0 || cps.length > 64) {
        return `device name must be 1 to 64 characters long (got ${cps.length})`;
    }
    const bad = cps.findIndex(disallowed);
    if (bad >= 0) return `device name ${quoteForMessage(name)} contains a control character at position ${bad + 1}`;
    if (cps[0] === 0x20 || cps[cps.length - 1] === 0x20) {
        return `device name ${quoteForMessage(name)} must not start or end with a space`;
    }
    return null;
}

// name and label: percent-decoded, then the device-name rule.
function textField(field: string, raw: string, mayBeEmpty: boolean): string {
    // A raw non-ASCII character stands for its UTF-8 bytes (as in the Pi's parser);
    // percentDecode reads UTF-16 units, so escape those characters first. A lone
    // surrogate has no UTF-8 form at all.
    if (/\p{Cs}/u.test(raw)) throw new ProtocolError(`${field}: not valid UTF-8`);
    const decoded = percentDecode(raw.replace(/[^\x00-\x7f]/gu, (c) => percentEncode(c)));
    if (decoded === null) {
        throw new ProtocolError(/%(?![0-9a-fA-F]{2})/.test(raw)
            ? `${field}: '%' not followed by two hex digits` : `${field}: not valid UTF-8`);
    }
    if (decoded === '' && mayBeEmpty) return '';
    const problem = deviceNameProblem(decoded);
    if (problem) throw new ProtocolError(`${field}: ${problem}`);
    return decoded;
}

function hexField(fields: Map<string, string>, key: string, digits: number): string {
    const v = fields.get(key) as string;
    if (v.length !== digits || hexDecode(v) === null) throw new ProtocolError(`${key}: expected ${digits} hex digits`);
    return v.toLowerCase();
}

// Case-folds ASCII only: String.toUpperCase would turn 'ı' into 'I' and 'ſ' into 'S'.
const asciiUpper = (s: string): string => s.replace(/[a-z]/g, (c) => c.toUpperCase());

// The code: 26 base32 characters, either case, no padding, unused low bits zero.
// Never percent-decoded, and never quoted in a message.
function codeField(text: string): Bytes {
    const upper = asciiUpper(text);
    if (upper.length !== CODE_CHARS || [...upper].some((c) => !B32.includes(c))) {
        throw new ProtocolError('code: expected 26 base32 characters (A-Z, 2-7)');
    }
    if ((B32.indexOf(upper[CODE_CHARS - 1]) & 0x03) !== 0) {
        throw new ProtocolError('code: the unused low bits of the last character are not zero');
    }
    const code = base32Decode(upper);
    if (code === null || code.length !== CODE_LEN) throw new ProtocolError('code: expected 26 base32 characters (A-Z, 2-7)');
    return code;
}

/**
 * Parses either form of a version 2 pairing link by the design's rules, one
 * reading each. Throws ProtocolError naming the field at fault; the message never
 * contains the code. alg, digits and period default to SHA1, 6 and 30 when absent.
 */
export function parseLink(text: string): PairingLink {
    let query: string;
    if (text.startsWith(SCHEME)) {
        query = text.slice(SCHEME.length);
    } else if (text.includes('#')) {
        query = text.slice(text.indexOf('#') + 1);
    } else {
        throw new ProtocolError("not a pairing link: it neither starts with bluezscript://pair? nor has a '#' part");
    }
    const fields = new Map<string, string>();
    for (const item of query.split('&')) {
        if (item === '') continue;
        const eq = item.indexOf('=');
        if (eq < 0) throw new ProtocolError("an item of the link has no '='");
        const key = item.slice(0, eq);
        if (!KNOWN_KEYS.has(key)) continue; // a later version's field: value untouched
        if (fields.has(key)) throw new ProtocolError(`${key}: given twice`);
        fields.set(key, item.slice(eq + 1));
    }
    for (const k of ['v', 'pi', 'pk', 'name', 'dev', 'code']) {
        if (!fields.has(k)) throw new ProtocolError(`${k}: missing`);
    }
    const v = fields.get('v') as string;
    if (v !== '2') {
        throw new ProtocolError(`v: this link is for protocol version ${quoteForMessage(v.slice(0, 8))}; expected 2`);
    }
    const piId = hexField(fields, 'pi', 32);
    const piKeyFingerprint = hexField(fields, 'pk', 64);
    const deviceId = hexField(fields, 'dev', 32);
    const code = codeField(fields.get('code') as string);
    try {
        const piName = textField('name', fields.get('name') as string, false);
        const label = fields.has('label') ? textField('label', fields.get('label') as string, true) : '';
        const totp: TotpParams = { alg: 'SHA1', digits: 6, period: 30 };
        const alg = fields.get('alg');
        if (alg !== undefined) {
            const a = asciiUpper(alg);
            if (a !== 'SHA1' && a !== 'SHA256' && a !== 'SHA512') {
                throw new ProtocolError('alg: expected SHA1, SHA256 or SHA512');
            }
            totp.alg = a;
        }
        const digits = fields.get('digits');
        if (digits !== undefined) {
            if (digits !== '6' && digits !== '7' && digits !== '8') throw new ProtocolError('digits: expected 6, 7 or 8');
            totp.digits = Number(digits);
        }
        const period = fields.get('period');
        if (period !== undefined) {
            if (!/^[1-9][0-9]{0,2}$/.test(period) || Number(period) < 15 || Number(period) > 300) {
                throw new ProtocolError('period: expected a whole number of seconds, 15..300');
            }
            totp.period = Number(period);
        }
        return { piId, piKeyFingerprint, piName, deviceId, code, totp, label };
    } catch (e) {
        code.fill(0); // refused: the decoded code goes nowhere
        throw e;
    }
}

// ---------------------------------------------------------------------------
// Info characteristic

export interface InfoV2 {
    v: 2;
    name: string;
    pi: string;   // 32 lower-case hex digits
    pk: Bytes;    // the Pi's P-256 public key, 65 bytes (04 || X || Y)
    time: number; // the Pi's verification clock, Unix seconds
    synced: boolean;
}

/** Parses Info; unauthenticated, so it only explains problems and carries PK to check. */
export function parseInfo(value: Uint8Array): InfoV2 {
    const text = decodeUtf8(value);
    let o: Record<string, unknown> | null = null;
    try {
        o = text === null ? null : (JSON.parse(text) as Record<string, unknown>);
    } catch {
        o = null;
    }
    if (typeof o !== 'object' || o === null) throw new ProtocolError("the Pi's Info characteristic is not UTF-8 JSON");
    if (o.v !== 2) throw new ProtocolError(`the Pi speaks protocol version ${JSON.stringify(o.v)}, not 2`);
    if (typeof o.name !== 'string') throw new ProtocolError("the Pi's Info lacks its name");
    const pi = typeof o.pi === 'string' && o.pi.length === 32 ? hexDecode(o.pi) : null;
    if (pi === null) throw new ProtocolError("the Pi's Info: 'pi' must be 32 hex digits");
    const pk = typeof o.pk === 'string' && o.pk.length === 2 * PUBLIC_KEY_LEN ? hexDecode(o.pk) : null;
    if (pk === null) throw new ProtocolError("the Pi's Info: 'pk' must be 130 hex digits");
    if (typeof o.time !== 'number' || !Number.isSafeInteger(o.time)) {
        throw new ProtocolError("the Pi's Info: 'time' must be a whole number of seconds");
    }
    if (typeof o.synced !== 'boolean') throw new ProtocolError("the Pi's Info: 'synced' must be true or false");
    return { v: 2, name: o.name, pi: hexEncode(pi), pk, time: o.time, synced: o.synced };
}

// ---------------------------------------------------------------------------
// Keys

/**
 * The non-extractable keys of one pairing: AES-256-GCM request (encrypt) and
 * response (decrypt) keys derived from S by HKDF, and S itself as the HMAC key of
 * TOTP with the link's hash.
 */
export interface DeviceKeys {
    request: CryptoKey;
    response: CryptoKey;
    totp: CryptoKey;
}

const HASH: Record<HashName, string> = { SHA1: 'SHA-1', SHA256: 'SHA-256', SHA512: 'SHA-512' };

async function aesKeys(ikm: Bytes, requestInfo: string, responseInfo: string): Promise<{ request: CryptoKey; response: CryptoKey }> {
    const s = subtle();
    const base = await s.importKey('raw', ikm, 'HKDF', false, ['deriveKey']);
    const derive = (info: string, usage: KeyUsage) =>
        s.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: SALT0, info: ascii(info) }, base,
                    { name: 'AES-GCM', length: 256 }, false, [usage]);
    return {
        request: await derive(requestInfo, 'encrypt'),
        response: await derive(responseInfo, 'decrypt'),
    };
}

/** The keys of a device secret S (32 bytes). The caller wipes `secret` when done. */
export async function deviceKeys(secret: Bytes, alg: HashName): Promise<DeviceKeys> {
    const { request, response } = await aesKeys(secret, 'bluezscript v2 request', 'bluezscript v2 response');
    const totpKey = await subtle().importKey('raw', secret, { name: 'HMAC', hash: HASH[alg] }, false, ['sign']);
    return { request, response, totp: totpKey };
}

// ---------------------------------------------------------------------------
// TOTP (RFC 6238 with T0 = 0; offset = last byte & 0x0f for every hash)

/** RFC 4226 HOTP with the key made by deviceKeys (`keys.totp`). */
export async function hotp(key: CryptoKey, counter: number, digits: number): Promise<number> {
    const msg = new Uint8Array(8);
    new DataView(msg.buffer).setBigUint64(0, BigInt(counter));
    const d = new Uint8Array(await subtle().sign('HMAC', key, msg));
    const off = d[d.length - 1] & 0x0f;
    const v = (new DataView(d.buffer, d.byteOffset + off, 4).getUint32(0) & 0x7fffffff) >>> 0;
    return v % 10 ** digits;
}

/** The code and its step at Unix time `now` (seconds). */
export async function totp(key: CryptoKey, params: TotpParams, now: number): Promise<{ code: number; step: number }> {
    const step = Math.floor(now / params.period);
    return { code: await hotp(key, step, params.digits), step };
}

/** The pair request (encrypt) and pair response (decrypt) keys of a pairing code. */
export async function pairKeys(code: Bytes): Promise<{ request: CryptoKey; response: CryptoKey }> {
    return aesKeys(code, 'bluezscript v2 pair request', 'bluezscript v2 pair response');
}

async function hkdfBits(ikm: Bytes, salt: Bytes, info: Bytes): Promise<Bytes> {
    const s = subtle();
    const key = await s.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
    return new Uint8Array(await s.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, key, 256));
}

async function sha256(data: Uint8Array): Promise<Bytes> {
    return new Uint8Array(await subtle().digest('SHA-256', new Uint8Array(data)));
}

// ---------------------------------------------------------------------------
// Pairing exchange

const P256 = { name: 'ECDH', namedCurve: 'P-256' } as const;

/** SHA-256 of a public key: the `pk` of links, as lower-case hex. */
export async function keyFingerprint(publicKey: Uint8Array): Promise<string> {
    return hexEncode(await sha256(publicKey));
}

/** T = SHA-256("bluezscript v2 pair" || pi_id || device_id || PK || E). */
export async function pairTranscript(piId: Uint8Array, deviceId: Uint8Array, piPublic: Uint8Array,
                                     phonePublic: Uint8Array): Promise<Bytes> {
    return sha256(concat(ascii('bluezscript v2 pair'), piId, deviceId, piPublic, phonePublic));
}

/** Z: the X coordinate of ECDH(own private key, the Pi's public key), 32 bytes. */
export async function sharedX(own: CryptoKey, piPublic: Uint8Array): Promise<Bytes> {
    let peer: CryptoKey;
    try {
        if (piPublic.length !== PUBLIC_KEY_LEN || piPublic[0] !== 0x04) throw new Error('not uncompressed');
        peer = await subtle().importKey('raw', new Uint8Array(piPublic), P256, true, []);
    } catch {
        throw new ProtocolError("the Pi's public key is not an uncompressed P-256 point");
    }
    return new Uint8Array(await subtle().deriveBits({ name: 'ECDH', public: peer }, own, 256));
}

/**
 * S = HKDF(Z, salt = code, "bluezscript v2 device secret" || T) and
 * confirm = HKDF(S, salt0, "bluezscript v2 pair confirm" || T). Raw bytes: the
 * caller turns S into keys and wipes it.
 */
export async function pairSecret(z: Bytes, code: Bytes, transcript: Uint8Array): Promise<{ secret: Bytes; confirm: Bytes }> {
    const secret = await hkdfBits(z, code, concat(ascii('bluezscript v2 device secret'), transcript));
    const confirm = await hkdfBits(secret, SALT0, concat(ascii('bluezscript v2 pair confirm'), transcript));
    return { secret, confirm };
}

/**
 * One pairing attempt: the phone's ephemeral key, the secret it shares with the Pi
 * and the confirmation the Pi must send back. Made by startPairing; it holds the raw
 * secret only until keys() or wipe().
 */
export interface PairExchange {
    readonly link: PairingLink;
    /** E: the phone's ephemeral public key, 65 bytes. */
    readonly phonePublic: Bytes;
    /** T: the transcript hash both sides bind S to (public). */
    readonly transcript: Bytes;
    /** The pair request (type 0x03): `challenge || E` sealed with the code's key. */
    sealRequest(challenge: Uint8Array, nonce?: Uint8Array): Promise<Bytes>;
    /**
     * Opens the Pi's answer to `requestFrame`. `confirmed` is true only for an
     * authentic pair result whose confirmation equals ours (compared in constant
     * time): then the Pi holds the private key of PK and the same code.
     */
    openResult(frame: Uint8Array, requestFrame: Uint8Array): Promise<{ response: OpenedResponse; confirmed: boolean }>;
    /**
     * The device's non-extractable keys; wipes Z, S, the confirmation and the link's
     * code, and drops the ephemeral key. Call it once the result confirmed, or when
     * the result was lost and an authentic catalogue answer is to confirm instead.
     */
    keys(): Promise<DeviceKeys>;
    /** Forgets the raw secrets without making keys (an abandoned attempt); the link's code stays for a retry. */
    wipe(): void;
}

class Exchange implements PairExchange {
    private z: Bytes | null;
    private secret: Bytes | null;
    private confirm: Bytes | null;
    // Z is derived already; e is kept only so that keys() and wipe() drop it (it is
    // non-extractable, so dropping the reference is all that can be done).
    private ephemeral: CryptoKey | null;
    private readonly codeKeys: Promise<{ request: CryptoKey; response: CryptoKey }>;

    constructor(readonly link: PairingLink, readonly phonePublic: Bytes, readonly transcript: Bytes,
                ephemeral: CryptoKey, z: Bytes, secret: Bytes, confirm: Bytes) {
        this.ephemeral = ephemeral;
        this.z = z;
        this.secret = secret;
        this.confirm = confirm;
        this.codeKeys = pairKeys(link.code);
    }

    async sealRequest(challenge: Uint8Array, nonce?: Uint8Array): Promise<Bytes> {
        if (this.secret === null) throw new ProtocolError('this pairing attempt is over');
        if (challenge.length !== CHALLENGE_LEN) throw new ProtocolError('the challenge must be 16 bytes');
        const keys = await this.codeKeys;
        return sealRequest(T_PAIR, keys.request, hexDecode(this.link.deviceId) as Bytes, 0n,
                           concat(challenge, this.phonePublic), nonce);
    }

    async openResult(frame: Uint8Array, requestFrame: Uint8Array): Promise<{ response: OpenedResponse; confirmed: boolean }> {
        const keys = await this.codeKeys;
        const response = await openResponse(frame, keys.response, requestFrame);
        const confirmed = response.kind === 'pair' && response.confirm !== null && this.confirm !== null &&
                          constantTimeEqual(response.confirm, this.confirm);
        return { response, confirmed };
    }

    async keys(): Promise<DeviceKeys> {
        if (this.secret === null || this.ephemeral === null) throw new ProtocolError('this pairing attempt is over');
        try {
            return await deviceKeys(this.secret, this.link.totp.alg);
        } finally {
            this.wipe();
            this.link.code.fill(0);
        }
    }

    wipe(): void {
        for (const b of [this.z, this.secret, this.confirm]) b?.fill(0);
        this.z = this.secret = this.confirm = null;
        this.ephemeral = null;
    }
}

// Checks the Pi against the link, then derives Z, T, S and the confirmation.
async function exchange(link: PairingLink, info: InfoV2, privateKey: CryptoKey, publicRaw: Bytes): Promise<PairExchange> {
    if (info.pi !== link.piId) throw new ProtocolError("this Pi's id is not the one in the pairing link: wrong Pi");
    if (await keyFingerprint(info.pk) !== link.piKeyFingerprint) {
        throw new ProtocolError("this Pi's public key does not match the pairing link's fingerprint: wrong Pi or an impostor");
    }
    const z = await sharedX(privateKey, info.pk);
    const t = await pairTranscript(hexDecode(link.piId) as Bytes, hexDecode(link.deviceId) as Bytes, info.pk, publicRaw);
    const { secret, confirm } = await pairSecret(z, link.code, t);
    return new Exchange(link, publicRaw, t, privateKey, z, secret, confirm);
}

/**
 * Starts pairing with the Pi whose Info was read: checks the Pi's id and that
 * SHA-256(PK) is the link's fingerprint, draws a fresh ephemeral P-256 key pair
 * (the private key non-extractable) and derives S and the confirmation.
 */
export async function startPairing(link: PairingLink, info: InfoV2): Promise<PairExchange> {
    const pair = await subtle().generateKey(P256, false, ['deriveBits']);
    return exchange(link, info, pair.privateKey, new Uint8Array(await subtle().exportKey('raw', pair.publicKey)));
}

// PKCS#8 of a P-256 private key without its public key (RFC 5915 inside RFC 5208).
const PKCS8_P256_PREFIX = hexDecode('3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420') as Bytes;

/**
 * FOR TESTS ONLY: a P-256 key pair from a fixed private scalar (32 bytes), the
 * private key non-extractable, so that spec vectors can be reproduced.
 */
export async function importP256PrivateKeyForTests(scalar: Bytes): Promise<{ privateKey: CryptoKey; publicRaw: Bytes }> {
    const s = subtle();
    const withPublic = await s.importKey('pkcs8', concat(PKCS8_P256_PREFIX, scalar), P256, true, ['deriveBits']);
    const jwk = await s.exportKey('jwk', withPublic);
    const b64url = (t: string | undefined): Uint8Array =>
        Uint8Array.from(atob((t ?? '').replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    return {
        privateKey: await s.importKey('jwk', jwk, P256, false, ['deriveBits']),
        publicRaw: concat(Uint8Array.of(0x04), b64url(jwk.x), b64url(jwk.y)),
    };
}

/**
 * FOR TESTS ONLY: startPairing with a fixed ephemeral private scalar instead of a
 * fresh key pair. A real phone never calls this.
 */
export async function startPairingWithFixedKeyForTests(link: PairingLink, info: InfoV2, scalar: Bytes): Promise<PairExchange> {
    const { privateKey, publicRaw } = await importP256PrivateKeyForTests(scalar);
    return exchange(link, info, privateKey, publicRaw);
}

// ---------------------------------------------------------------------------
// Request frames

function randomNonce(): Bytes {
    return globalThis.crypto.getRandomValues(new Uint8Array(NONCE_LEN));
}

/** Seals `plaintext` into a whole request frame; the header is the additional data. */
async function sealRequest(type: number, key: CryptoKey, deviceId: Uint8Array, counter: bigint,
                           plaintext: Uint8Array, nonce?: Uint8Array): Promise<Bytes> {
    if (deviceId.length !== DEVICE_ID_LEN) throw new ProtocolError('the device id must be 16 bytes');
    if (counter < 0n || counter > 0xffffffffffffffffn) throw new ProtocolError('counter out of range');
    const n = nonce ?? randomNonce();
    if (n.length !== NONCE_LEN) throw new ProtocolError('the nonce must be 12 bytes');
    const length = REQUEST_HEADER + plaintext.length + TAG_LEN;
    if (length > MAX_FRAME) throw new ProtocolError(`the request does not fit in ${MAX_FRAME} bytes`);
    const header = new Uint8Array(REQUEST_HEADER);
    const dv = new DataView(header.buffer);
    header[0] = VERSION;
    header[1] = type;
    dv.setUint16(2, length);
    header.set(deviceId, 4);
    dv.setBigUint64(20, counter);
    header.set(n, 28);
    const sealed = await subtle().encrypt({ name: 'AES-GCM', iv: new Uint8Array(n), additionalData: header, tagLength: 128 },
                                          key, new Uint8Array(plaintext));
    return concat(header, new Uint8Array(sealed));
}

/** The freshness fields every command and catalogue request carries. */
export interface Freshness {
    timestamp: bigint;     // signed 64-bit Unix seconds on the phone's clock
    challenge: Uint8Array; // 16 bytes read from the Challenge characteristic
    totp: number;          // the TOTP code as a number
}

export interface CommandBody extends Freshness {
    action: string;
    args: string[];
}

export interface CatalogueBody extends Freshness {
    /** Index of the first action wanted (0 for the first page). */
    first: number;
}

function freshnessBytes(f: Freshness): Bytes {
    if (f.challenge.length !== CHALLENGE_LEN) throw new ProtocolError('the challenge must be 16 bytes');
    if (f.timestamp < -(2n ** 63n) || f.timestamp >= 2n ** 63n) throw new ProtocolError('timestamp out of range');
    if (!Number.isInteger(f.totp) || f.totp < 0 || f.totp > 0xffffffff) throw new ProtocolError('the TOTP code must fit 32 bits');
    const b = new Uint8Array(8 + CHALLENGE_LEN + 4);
    const dv = new DataView(b.buffer);
    dv.setBigInt64(0, f.timestamp);
    b.set(f.challenge, 8);
    dv.setUint32(24, f.totp);
    return b;
}

/** The command plaintext; refuses what the Pi would call malformed. */
export function commandPlaintext(body: CommandBody): Bytes {
    if (!validActionName(body.action)) {
        throw new ProtocolError(`${quoteForMessage(body.action)} is not a valid action name (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit, not ending in .toml)`);
    }
    if (body.args.length > MAX_ARGS) throw new ProtocolError(`at most ${MAX_ARGS} arguments`);
    const args = body.args.map((a, i) => {
        const b = utf8.encode(a);
        if (b.length > MAX_ARG_LEN) throw new ProtocolError(`argument ${i + 1} is longer than ${MAX_ARG_LEN} bytes`);
        if (b.some((x) => x < 0x20 || x === 0x7f)) throw new ProtocolError(`argument ${i + 1} contains a control character`);
        return concat(Uint8Array.of(b.length), b);
    });
    const action = ascii(body.action);
    return concat(freshnessBytes(body), Uint8Array.of(action.length), action, Uint8Array.of(args.length), ...args);
}

/** The catalogue plaintext. */
export function cataloguePlaintext(body: CatalogueBody): Bytes {
    if (!Number.isInteger(body.first) || body.first < 0 || body.first > 255) throw new ProtocolError('first must be 0..255');
    return concat(freshnessBytes(body), Uint8Array.of(body.first));
}

/** A command request (type 0x01); a fresh random nonce unless one is given. */
export async function sealCommand(keys: DeviceKeys, deviceId: Uint8Array, counter: bigint, body: CommandBody,
                                  nonce?: Uint8Array): Promise<Bytes> {
    return sealRequest(T_COMMAND, keys.request, deviceId, counter, commandPlaintext(body), nonce);
}

/** A catalogue request (type 0x02); a fresh random nonce unless one is given. */
export async function sealCatalogue(keys: DeviceKeys, deviceId: Uint8Array, counter: bigint, body: CatalogueBody,
                                    nonce?: Uint8Array): Promise<Bytes> {
    return sealRequest(T_CATALOGUE, keys.request, deviceId, counter, cataloguePlaintext(body), nonce);
}

// ---------------------------------------------------------------------------
// The Pi's side of requests: the phone never receives one; tests check the
// vectors' refused frames with these.

export interface RequestHeader {
    type: number;
    length: number;
    deviceId: Bytes;
    counter: bigint;
    nonce: Bytes;
}

export type HeaderDecode =
    | { header: RequestHeader; status?: undefined; error?: undefined }
    | { header?: undefined; status: 'malformed' | 'unknown_version'; error: string };

const MIN_FRAME: Record<number, number> = {
    [T_COMMAND]: REQUEST_HEADER + COMMAND_BODY_MIN + TAG_LEN,
    [T_CATALOGUE]: REQUEST_HEADER + CATALOGUE_BODY_LEN + TAG_LEN,
    [T_PAIR]: REQUEST_HEADER + PAIR_BODY_LEN + TAG_LEN,
};

/** The clear header of a complete request, checked in the order of the design. */
export function decodeRequestHeader(frame: Uint8Array): HeaderDecode {
    const bad = (error: string, status: 'malformed' | 'unknown_version' = 'malformed'): HeaderDecode => ({ status, error });
    if (frame.length > MAX_FRAME) return bad(`frame is ${frame.length} bytes; the maximum is ${MAX_FRAME}`);
    if (frame.length < 2) return bad(`frame is ${frame.length} bytes`);
    if (frame[0] !== VERSION) return bad(`protocol version ${frame[0]} is not supported`, 'unknown_version');
    const need = MIN_FRAME[frame[1]];
    if (need === undefined) return bad(`frame type ${frame[1]} is not a request`);
    if (frame.length < need) return bad(`frame is ${frame.length} bytes; this type needs at least ${need}`);
    const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const length = dv.getUint16(2);
    if (length !== frame.length) return bad(`length field says ${length} bytes; the frame is ${frame.length}`);
    return {
        header: {
            type: frame[1], length, deviceId: frame.slice(4, 20), counter: dv.getBigUint64(20), nonce: frame.slice(28, 40),
        },
    };
}

/** The plaintext of a request under `key` (an AES-GCM key with 'decrypt'), or null. */
export async function openRequest(frame: Uint8Array, key: CryptoKey): Promise<Bytes | null> {
    if (frame.length < REQUEST_HEADER + TAG_LEN) return null;
    try {
        return new Uint8Array(await subtle().decrypt(
            { name: 'AES-GCM', iv: frame.slice(28, 40), additionalData: frame.slice(0, REQUEST_HEADER), tagLength: 128 },
            key, frame.slice(REQUEST_HEADER)));
    } catch {
        return null;
    }
}

/** A command plaintext decoded by the Pi's rules, or why it is malformed. */
export function decodeCommandBody(plain: Uint8Array): { body: CommandBody; error?: undefined } | { body?: undefined; error: string } {
    const fail = (error: string) => ({ error });
    if (plain.length < 8 + CHALLENGE_LEN + 4 + 1) return fail('body ends inside its fixed fields');
    const dv = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
    const actionLen = plain[28];
    if (actionLen === 0 || actionLen > MAX_ACTION_LEN) return fail(`action name length ${actionLen} is outside 1..${MAX_ACTION_LEN}`);
    let p = 29;
    if (p + actionLen > plain.length) return fail('body ends inside the action name');
    const action = String.fromCharCode(...plain.subarray(p, p + actionLen));
    p += actionLen;
    if (!validActionName(action)) return fail('action name breaks the rule');
    if (p >= plain.length) return fail('body ends before the argument count');
    const argc = plain[p++];
    if (argc > MAX_ARGS) return fail(`argument count ${argc} exceeds ${MAX_ARGS}`);
    const args: string[] = [];
    for (let i = 0; i < argc; i++) {
        const len = plain[p];
        if (p >= plain.length || p + 1 + len > plain.length) return fail(`body ends inside argument ${i}`);
        const arg = plain.subarray(p + 1, p + 1 + len);
        p += 1 + len;
        if (len > MAX_ARG_LEN) return fail(`argument ${i} is longer than ${MAX_ARG_LEN} bytes`);
        if (arg.some((x) => x < 0x20 || x === 0x7f)) return fail(`argument ${i} contains control characters`);
        args.push(new TextDecoder().decode(arg));
    }
    if (p !== plain.length) return fail(`${plain.length - p} bytes after the last argument`);
    return {
        body: { timestamp: dv.getBigInt64(0), challenge: plain.slice(8, 24), totp: dv.getUint32(24), action, args },
    };
}

// ---------------------------------------------------------------------------
// Catalogue

export type ArgKind = 'none' | 'free' | 'pattern' | 'choices';
const ARG_KINDS: ArgKind[] = ['none', 'free', 'pattern', 'choices'];

export interface CatalogueEntry {
    name: string;
    description: string;
    /** The owner wants a confirmation tap before it runs. */
    confirm: boolean;
    kind: ArgKind;
    maxArgs: number;
    pattern?: string;   // kind 'pattern': each argument must fully match (RE2 syntax)
    choices?: string[]; // kind 'choices': each argument is one of these
}

export interface CataloguePage {
    total: number; // actions this device may run
    first: number; // index of entries[0]
    entries: CatalogueEntry[];
}

/** The `rest` of a catalogue result; ProtocolError for a page that breaks a rule. */
export function decodeCatalogue(rest: Uint8Array): CataloguePage {
    let p = 0;
    const u8 = (): number | null => (p < rest.length ? rest[p++] : null);
    const take = (n: number): Uint8Array | null => {
        if (p + n > rest.length) return null;
        p += n;
        return rest.subarray(p - n, p);
    };
    const text = (n: number | null, lo: number, hi: number): string | null => {
        if (n === null || n < lo || n > hi) return null;
        const b = take(n);
        return b === null ? null : decodeUtf8(b);
    };
    if (rest.length < 3) throw new ProtocolError('catalogue page shorter than its 3-byte head');
    const total = rest[0];
    const first = rest[1];
    const count = rest[2];
    p = 3;
    if (first + count > total) throw new ProtocolError('catalogue page lists entries past its total');
    const entries: CatalogueEntry[] = [];
    for (let i = 0; i < count; i++) {
        const bad = (what: string) => new ProtocolError(`catalogue entry ${i}: ${what}`);
        const name = text(u8(), 1, MAX_ACTION_LEN);
        if (name === null || !validActionName(name)) throw bad('bad action name');
        const description = text(u8(), 0, 100);
        if (description === null) throw bad('bad description');
        const flags = u8();
        const kind = u8();
        const maxArgs = u8();
        if (flags === null || kind === null || maxArgs === null || kind > 3 || maxArgs > MAX_ARGS) {
            throw bad('bad flags or argument kind');
        }
        const e: CatalogueEntry = { name, description, confirm: (flags & 1) !== 0, kind: ARG_KINDS[kind], maxArgs };
        if (e.kind === 'pattern') {
            const pattern = text(u8(), 1, 128);
            if (pattern === null) throw bad('bad pattern');
            e.pattern = pattern;
        } else if (e.kind === 'choices') {
            const n = u8();
            if (n === null || n < 1 || n > 8) throw bad('bad choice count');
            e.choices = [];
            for (let k = 0; k < n; k++) {
                const c = text(u8(), 1, 32);
                if (c === null) throw bad('bad choice');
                e.choices.push(c);
            }
        }
        entries.push(e);
    }
    if (p !== rest.length) throw new ProtocolError(`${rest.length - p} bytes after the last catalogue entry`);
    return { total, first, entries };
}

// ---------------------------------------------------------------------------
// Responses

interface Authentic {
    authentic: true;
    counter: bigint;
    status: number;
    statusName: string;
    /** The Pi's verification clock (Unix seconds). */
    piTime: bigint;
    /** The Pi's system clock is synchronised. */
    synced: boolean;
}

/**
 * A response as the phone reads it. Only `authentic` ones are the Pi's answer; a
 * plain refusal says "something answered: <status>, unauthenticated", and a sealed
 * frame that did not open carries nothing usable.
 */
export type OpenedResponse =
    | { kind: 'refusal'; type: typeof T_REFUSAL; authentic: false; counter: bigint; status: number; statusName: string }
    | { kind: 'unopened'; type: number; authentic: false; counter: bigint }
    | (Authentic & { kind: 'command'; type: typeof T_COMMAND_RESULT; exitCode: number; output: Bytes })
    | (Authentic & { kind: 'catalogue'; type: typeof T_CATALOGUE_RESULT; page: CataloguePage })
    | (Authentic & { kind: 'pair'; type: typeof T_PAIR_RESULT; confirm: Bytes | null; message: string });

function statusOf(b: number): string {
    const s = STATUS[b];
    if (!s) throw new ProtocolError(`status byte 0x${b.toString(16).padStart(2, '0')} is not a version 2 status`);
    return s.name;
}

/**
 * Decodes any response frame. Sealed ones are opened with `responseKey` (the
 * device's, or the code's for a pair result) and bound to `requestFrame` (its last
 * 16 bytes are its GCM tag). Throws ProtocolError for bytes that are not a version 2
 * response, or an authentic one whose contents break a rule.
 */
export async function openResponse(frame: Uint8Array, responseKey: CryptoKey, requestFrame: Uint8Array): Promise<OpenedResponse> {
    if (frame.length < REFUSAL_LEN || frame.length > MAX_FRAME) {
        throw new ProtocolError(`a response is ${REFUSAL_LEN}..${MAX_FRAME} bytes, not ${frame.length}`);
    }
    if (frame[0] !== VERSION) throw new ProtocolError(`response of protocol version ${frame[0]}, expected 2`);
    const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const length = dv.getUint16(2);
    if (length !== frame.length) throw new ProtocolError(`length field says ${length} bytes; the frame is ${frame.length}`);
    const type = frame[1];
    const counter = dv.getBigUint64(4);
    if (type === T_REFUSAL) {
        if (frame.length !== REFUSAL_LEN) throw new ProtocolError('not a valid plain refusal');
        return { kind: 'refusal', type, authentic: false, counter, status: frame[12], statusName: statusOf(frame[12]) };
    }
    if (type !== T_COMMAND_RESULT && type !== T_CATALOGUE_RESULT && type !== T_PAIR_RESULT) {
        throw new ProtocolError(`frame type ${type} is not a response`);
    }
    if (frame.length < RESPONSE_HEADER + HEAD_LEN + TAG_LEN) throw new ProtocolError(`sealed response of ${frame.length} bytes`);
    if (requestFrame.length < REQUEST_HEADER + TAG_LEN) throw new ProtocolError('the request frame is too short to have a tag');
    let plain: Bytes;
    try {
        plain = new Uint8Array(await subtle().decrypt(
            { name: 'AES-GCM', iv: frame.slice(12, 24), tagLength: 128,
              additionalData: concat(frame.subarray(0, RESPONSE_HEADER), requestFrame.subarray(requestFrame.length - TAG_LEN)) },
            responseKey, frame.slice(RESPONSE_HEADER)));
    } catch {
        return { kind: 'unopened', type, authentic: false, counter };
    }
    const pv = new DataView(plain.buffer);
    const head: Authentic = {
        authentic: true, counter, status: plain[0], statusName: statusOf(plain[0]),
        piTime: pv.getBigInt64(1), synced: (plain[9] & FLAG_SYNCED) !== 0,
    };
    const rest = plain.slice(HEAD_LEN);
    if (type === T_COMMAND_RESULT) {
        if (rest.length < 4) throw new ProtocolError('command result shorter than its exit code');
        return { ...head, kind: 'command', type, exitCode: pv.getInt32(HEAD_LEN), output: rest.slice(4) };
    }
    if (type === T_CATALOGUE_RESULT) return { ...head, kind: 'catalogue', type, page: decodeCatalogue(rest) };
    const ok = head.status === 0;
    if (ok && rest.length < CONFIRM_LEN) throw new ProtocolError('pair result shorter than its confirmation');
    return {
        ...head, kind: 'pair', type,
        confirm: ok ? rest.slice(0, CONFIRM_LEN) : null,
        message: new TextDecoder().decode(rest.subarray(ok ? CONFIRM_LEN : 0)),
    };
}

// ---------------------------------------------------------------------------
// Result fragments (unchanged from version 1: spec/vectors/fragments.json)

/** The notification payloads a frame is sent as (the Pi's side; used by tests). */
export function fragment(frame: Uint8Array, attMtu: number): Bytes[] {
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

    push(payload: Uint8Array): 'more' | 'done' | 'error' {
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
            this.frame = concat(...this.parts!);
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
