// SPDX-License-Identifier: GPL-3.0-or-later
// Protocol version 2 over Web Bluetooth (docs/protocol.md): the pairing
// exchange, catalogue pages and commands. Each request: connect (chooser only when
// the browser cannot give back a known Pi), check Info, subscribe to Result, read a
// challenge, write the sealed frame, take the answer from notifications or, when
// they are not available or do not come, by reading Result. Only a response that
// opens with this device's key and this request's tag is the Pi's answer.

import { AppError, err, pairRefusal, refusalError } from './errors.js';
import {
    type Bytes, CHALLENGE_UUID, COMMAND_UUID, type CatalogueEntry, hexDecode, hexEncode, INFO_UUID,
    type InfoV2, type OpenedResponse, openResponse, type PairingLink, parseInfo, ProtocolError,
    Reassembler, RESULT_UUID, sealCatalogue, sealCommand, SERVICE_UUID, startPairing, totp,
} from './protocol2.js';
import type { PairingStore, PiRecord } from './storage.js';

/** Progress shown under the button while a request is on its way. */
export type Progress = (text: string) => void;

/** The Pi's clock as last reported (Info or an authentic response), against the phone's. */
export interface PiClock {
    piTime: number;    // Unix seconds, the Pi's verification clock
    synced: boolean;   // the Pi's system clock is synchronised
    phoneTime: number; // Unix seconds on this phone when it was seen
}

/** How long the answer may take: actions run up to their timeout (30 s by default). */
const ANSWER_TIMEOUT_MS = 75_000;
/** Without a notification this long after the write, Result is read instead. */
const NOTIFY_GRACE_MS = 2_500;
const POLL_INTERVAL_MS = 400;
/** How long to look for a remembered Pi's advertisements before giving up. */
const LOOK_TIMEOUT_MS = 15_000;
/**
 * A plain refusal of a pair request carries counter 0, like the refusal of an
 * earlier attempt on the same connection: an unchanged Result value is taken as
 * the answer only after this long (the Pi refuses at once).
 */
const SAME_VALUE_MS = 3_000;
/** More catalogue entries than a Pi can list (its count is a byte). */
const MAX_ACTIONS = 255;

interface Link {
    device: BluetoothDevice;
    info: BluetoothRemoteGATTCharacteristic;
    challenge: BluetoothRemoteGATTCharacteristic;
    command: BluetoothRemoteGATTCharacteristic;
    result: BluetoothRemoteGATTCharacteristic;
    notifying: boolean;
    fragments: Bytes[];
    wake: (() => void) | null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

function bytesOf(v: DataView): Bytes {
    return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)) as Bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
    return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** What a Pi record needs for sealed requests (a record not stored yet works too). */
type Sealer = Pick<PiRecord, 'id' | 'piId' | 'piName' | 'deviceId' | 'totp' | 'keys'>;

/** Keeps one link per Pi between taps, so a second tap needs no new connection. */
export class Bluetooth {
    private links = new Map<string, Link>();
    private clocks = new Map<string, PiClock>();

    private readonly answerTimeoutMs: number;

    /** `options.answerTimeoutMs`: how long an answer may take (tests shorten it). */
    constructor(private readonly store: PairingStore, private readonly bt: Bluetooth_ = navigator.bluetooth,
                options: { answerTimeoutMs?: number } = {}) {
        this.answerTimeoutMs = options.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    }

    /** The Pi's clock as last seen, by Pi id. */
    clock(piId: string): PiClock | undefined {
        return this.clocks.get(piId);
    }

    private seen(piId: string, piTime: number | bigint, synced: boolean): void {
        this.clocks.set(piId, { piTime: Number(piTime), synced, phoneTime: nowSeconds() });
    }

    /** The chooser, filtered by the BlueZscript service and the Pi's name. */
    private async choose(piName: string, progress: Progress): Promise<BluetoothDevice> {
        progress(`Choose “${piName}” in the list…`);
        const filters: BluetoothLEScanFilter[] = [{ services: [SERVICE_UUID], name: piName }];
        // The advertised name may be cut short (scan responses hold 29 bytes of name).
        if (new TextEncoder().encode(piName).length > 29) {
            filters.push({ services: [SERVICE_UUID], namePrefix: piName.slice(0, 20) });
        }
        return this.bt.requestDevice({ filters });
    }

    /** The Pi's BluetoothDevice: the remembered one when the browser allows it, else the chooser. */
    private async findDevice(rec: PiRecord, progress: Progress): Promise<BluetoothDevice> {
        if (rec.bluetoothId && typeof this.bt.getDevices === 'function') {
            try {
                const known = (await this.bt.getDevices()).find((d) => d.id === rec.bluetoothId);
                if (known) return known;
            } catch {
                // getDevices() exists but is disabled: fall through to the chooser.
            }
        }
        const device = await this.choose(rec.piName, progress);
        await this.store.update(rec.id, (r) => {
            r.bluetoothId = device.id;
        });
        return device;
    }

    /**
     * Connects; a Pi remembered from an earlier visit may first have to be seen
     * advertising (desktop Chrome: "no longer in range" until watchAdvertisements()).
     */
    private async connectGatt(device: BluetoothDevice, piName: string, progress: Progress): Promise<BluetoothRemoteGATTServer> {
        try {
            return await device.gatt!.connect();
        } catch (e) {
            const watch = (device as Device_).watchAdvertisements;
            if ((e as Error).name !== 'NetworkError' || typeof watch !== 'function') throw e;
        }
        progress(`Looking for ${piName}…`);
        const stop = new AbortController();
        const seen = new Promise<boolean>((resolve) => {
            device.addEventListener('advertisementreceived', () => resolve(true), { once: true });
            setTimeout(() => resolve(false), LOOK_TIMEOUT_MS);
        });
        await (device as Device_).watchAdvertisements!({ signal: stop.signal });
        const found = await seen;
        stop.abort();
        if (!found) {
            throw err('not-in-range', `${piName} is not in reach`, 'Make sure the Pi is on and near the phone, then tap again.');
        }
        progress(`Connecting to ${piName}…`);
        return device.gatt!.connect();
    }

    /** A GATT link to `device` with Result notifications when they work, and its Info. */
    private async open(device: BluetoothDevice, piName: string, progress: Progress): Promise<{ link: Link; info: InfoV2 }> {
        progress(`Connecting to ${piName}…`);
        if (!device.gatt) throw err('no-gatt', 'This device offers no GATT services', 'Choose the Pi, not another device.');
        const server = await this.connectGatt(device, piName, progress);
        let service: BluetoothRemoteGATTService;
        try {
            service = await server.getPrimaryService(SERVICE_UUID);
        } catch (e) {
            if ((e as Error).name === 'NotFoundError') {
                throw err('no-service', `${piName} does not offer BlueZscript`, 'Is bluezscriptd running on the Pi, with Bluetooth enabled?');
            }
            throw e;
        }
        const link: Link = {
            device,
            info: await service.getCharacteristic(INFO_UUID),
            challenge: await service.getCharacteristic(CHALLENGE_UUID),
            command: await service.getCharacteristic(COMMAND_UUID),
            result: await service.getCharacteristic(RESULT_UUID),
            notifying: false,
            fragments: [],
            wake: null,
        };
        let info: InfoV2;
        try {
            info = parseInfo(bytesOf(await link.info.readValue()));
        } catch (e) {
            device.gatt.disconnect();
            if (e instanceof ProtocolError) {
                throw err('pi-version', `${piName} speaks another protocol version`, `${e.message}. Update BlueZscript on the Pi, or this app (reload it).`);
            }
            throw e;
        }
        this.seen(info.pi, info.time, info.synced);
        // Subscribe before writing, or the answer's notifications could be missed.
        if (link.result.properties.notify) {
            try {
                link.result.addEventListener('characteristicvaluechanged', () => {
                    const v = link.result.value;
                    if (v) link.fragments.push(bytesOf(v));
                    link.wake?.();
                });
                await link.result.startNotifications();
                link.notifying = true;
            } catch {
                link.notifying = false; // read Result instead
            }
        }
        return { link, info };
    }

    /**
     * The link to the Pi of `rec`, checked against the pairing (id and public key).
     * `fresh` says it was made now: the caller then fetches the catalogue.
     */
    private async connect(rec: PiRecord, progress: Progress): Promise<{ link: Link; fresh: boolean }> {
        const old = this.links.get(rec.id);
        if (old && old.device.gatt?.connected) return { link: old, fresh: false };
        const device = await this.findDevice(rec, progress);
        const { link, info } = await this.open(device, rec.piName, progress);
        // Never send anything to the wrong Pi.
        if (info.pi !== rec.piId || hexEncode(info.pk) !== rec.piKey) {
            device.gatt?.disconnect();
            await this.store.update(rec.id, (r) => {
                r.bluetoothId = '';
            });
            const why = info.pi !== rec.piId ? `The chosen device is “${info.name}”, a different Pi.`
                : `It has ${rec.piName}'s id but another key: a different installation, or an impostor.`;
            throw err('wrong-pi', `This is not ${rec.piName}`, `${why} Tap again and choose ${rec.piName}.`);
        }
        this.adopt(rec, link);
        return { link, fresh: true };
    }

    /** Waits for a complete frame from notifications, up to `ms`; null if none came. */
    private async notified(link: Link, ms: number): Promise<Bytes | null> {
        const r = new Reassembler();
        const deadline = Date.now() + ms;
        for (;;) {
            while (link.fragments.length > 0) {
                if (r.push(link.fragments.shift()!) === 'done') return r.frame;
            }
            const left = deadline - Date.now();
            if (left <= 0 || !link.device.gatt?.connected) return null;
            await new Promise<void>((resolve) => {
                link.wake = resolve;
                setTimeout(resolve, left);
            });
            link.wake = null;
        }
    }

    private async readChallenge(link: Link): Promise<Bytes> {
        const challenge = bytesOf(await link.challenge.readValue());
        if (challenge.length !== 16) throw err('protocol', 'The Pi sent a bad challenge', `${challenge.length} bytes instead of 16`);
        return challenge;
    }

    /**
     * Writes `frame` and returns the answer to it: a response that `open` finds
     * authentic (sealed for this request), or a plain refusal with its counter.
     * Anything else on Result (an older answer, another device's) is passed over.
     */
    private async exchange(link: Link, piName: string, frame: Bytes, counter: bigint,
                           open: (response: Bytes) => Promise<OpenedResponse>, progress: Progress): Promise<OpenedResponse> {
        const ours = (r: OpenedResponse) => r.authentic || (r.kind === 'refusal' && r.counter === counter);
        // What Result holds before the write is not the answer: remember it where it
        // will be read, and for pair requests, whose refusals all carry counter 0.
        const before = link.notifying && counter !== 0n ? null : bytesOf(await link.result.readValue());
        link.fragments.length = 0;
        await link.command.writeValueWithResponse(frame);
        progress(`Waiting for ${piName}…`);
        const deadline = Date.now() + this.answerTimeoutMs;
        const fromNotification = async (ms: number): Promise<OpenedResponse | null> => {
            const f = await this.notified(link, ms);
            if (!f) return null;
            const r = await open(f);
            return ours(r) ? r : null;
        };
        if (link.notifying) {
            const r = await fromNotification(Math.min(NOTIFY_GRACE_MS, this.answerTimeoutMs));
            if (r) return r;
        }
        const written = Date.now();
        for (;;) {
            if (Date.now() > deadline) {
                throw new AppError({ kind: 'error', code: 'no-answer', title: `${piName} did not answer`, detail: 'The request was sent, but no answer came back in time. Check the Pi\'s log.' });
            }
            if (link.notifying) {
                const r = await fromNotification(POLL_INTERVAL_MS);
                if (r) return r;
            } else {
                await sleep(POLL_INTERVAL_MS);
            }
            const value = bytesOf(await link.result.readValue());
            if (value.length === 0) continue;
            const unchanged = before !== null && sameBytes(value, before);
            let r: OpenedResponse;
            try {
                r = await open(value);
            } catch (e) {
                if (unchanged) continue; // an older value this app cannot read: keep reading
                throw e;
            }
            if (!ours(r)) continue;
            // The same plain refusal as before the write may be the earlier attempt's.
            if (r.kind === 'refusal' && unchanged && Date.now() - written < SAME_VALUE_MS) continue;
            return r;
        }
    }

    /**
     * Pairs with the Pi of `link` (call from a tap: the chooser needs one): checks
     * its Info against the link, runs the exchange, stores the pairing and fetches
     * its catalogue. Throws AppError with the reason when the Pi refuses. The code
     * is wiped once keys exist; after a refusal the caller drops the link.
     */
    async pair(link: PairingLink, progress: Progress, nowMs = Date.now()): Promise<PiRecord> {
        const device = await this.choose(link.piName, progress);
        const { link: gatt, info } = await this.open(device, link.piName, progress);
        let exchange;
        try {
            exchange = await startPairing(link, info);
        } catch (e) {
            device.gatt?.disconnect();
            if (e instanceof ProtocolError) {
                throw err('wrong-pi', `This is not the ${link.piName} of the pairing code`, `${e.message}. Tap again and choose ${link.piName}.`);
            }
            throw e;
        }
        let answer: OpenedResponse | null;
        let confirmed = false;
        try {
            progress('Pairing…');
            const challenge = await this.readChallenge(gatt);
            const frame = await exchange.sealRequest(challenge);
            const open = async (f: Bytes) => {
                const r = await exchange.openResult(f, frame);
                confirmed = r.confirmed;
                return r.response;
            };
            answer = await this.exchange(gatt, link.piName, frame, 0n, open, progress).catch((e: unknown) => {
                // Lost answer: the Pi may have stored S; an authentic catalogue tells.
                if (e instanceof AppError && e.msg.code === 'no-answer') return null;
                throw e;
            });
        } catch (e) {
            exchange.wipe();
            throw e;
        }
        if (answer?.authentic) this.seen(info.pi, answer.piTime, answer.synced);
        if (answer && !confirmed) {
            exchange.wipe();
            device.gatt?.disconnect();
            if (answer.kind === 'pair' && answer.statusName === 'ok') {
                throw err('pair-unconfirmed', 'The Pi did not confirm the pairing',
                          `Its answer did not prove that it holds ${link.piName}'s key and this code. Nothing was stored; ask the owner for a new code.`);
            }
            throw pairRefusal(answer, link.piName);
        }
        const rec: PiRecord = {
            id: `${link.piId}:${link.deviceId}`,
            piId: link.piId,
            piName: link.piName,
            piKey: hexEncode(info.pk),
            deviceId: link.deviceId,
            label: link.label,
            totp: { ...link.totp },
            keys: await exchange.keys(), // wipes Z, S, the confirmation and the code
            counter: 0,
            actions: [],
            catalogueAt: 0,
            bluetoothId: device.id,
            addedAt: nowMs,
        };
        let actions: CatalogueEntry[];
        try {
            actions = await this.fetchCatalogue(gatt, rec, progress, async () => {
                rec.counter += 1;
                return rec.counter;
            });
        } catch (e) {
            if (!answer) {
                device.gatt?.disconnect();
                throw err('pair-unconfirmed', `${link.piName} did not answer the pairing`,
                          'Nothing was stored. Ask the owner whether the phone shows as paired; if not, ask for a new code.');
            }
            // Paired (confirmed): keep it even if the first catalogue failed.
            await this.store.put(rec);
            this.adopt(rec, gatt);
            throw e;
        }
        rec.actions = actions;
        rec.catalogueAt = nowMs;
        await this.store.put(rec);
        this.adopt(rec, gatt);
        return rec;
    }

    private adopt(rec: PiRecord, link: Link): void {
        link.device.addEventListener('gattserverdisconnected', () => this.links.delete(rec.id), { once: true });
        this.links.set(rec.id, link);
    }

    /** Reads challenge, stores the counter, seals and sends one request; its answer. */
    private async request(link: Link, rec: Sealer, nextCounter: () => Promise<number>, progress: Progress,
                          seal: (counter: bigint, challenge: Bytes, timestamp: bigint, code: number) => Promise<Bytes>): Promise<OpenedResponse> {
        const challenge = await this.readChallenge(link);
        const counter = BigInt(await nextCounter()); // persisted before sending
        const now = nowSeconds();
        const code = (await totp(rec.keys.totp, rec.totp, now)).code;
        const frame = await seal(counter, challenge, BigInt(now), code);
        const r = await this.exchange(link, rec.piName, frame, counter,
                                      (f) => openResponse(f, rec.keys.response, frame), progress);
        if (r.authentic) this.seen(rec.piId, r.piTime, r.synced);
        return r;
    }

    /** Every page of the catalogue; AppError when the Pi refuses. */
    private async fetchCatalogue(link: Link, rec: Sealer, progress: Progress,
                                 nextCounter: () => Promise<number>): Promise<CatalogueEntry[]> {
        progress(`Asking ${rec.piName} for this phone's actions…`);
        const out: CatalogueEntry[] = [];
        for (;;) {
            const first = out.length;
            const r = await this.request(link, rec, nextCounter, progress, (counter, challenge, timestamp, code) =>
                sealCatalogue(rec.keys, hexDecode(rec.deviceId) as Bytes, counter, { timestamp, challenge, totp: code, first }));
            if (r.kind !== 'catalogue' || r.statusName !== 'ok') throw refusalError(r, `${rec.piName}'s list of actions`);
            const page = r.page;
            if (page.first !== first || (page.entries.length === 0 && first < page.total) || first > MAX_ACTIONS) {
                throw new ProtocolError(`catalogue page starts at ${page.first} with ${page.entries.length} entries; asked for ${first} of ${page.total}`);
            }
            out.push(...page.entries);
            if (out.length >= page.total) return out;
        }
    }

    /**
     * The catalogue of `rec`'s Pi, stored; `link` is reused when given. Returns the
     * stored record.
     */
    async refreshCatalogue(rec: PiRecord, progress: Progress): Promise<PiRecord> {
        const { link } = await this.connect(rec, progress);
        return this.catalogueOn(link, rec, progress);
    }

    private async catalogueOn(link: Link, rec: PiRecord, progress: Progress): Promise<PiRecord> {
        const actions = await this.fetchCatalogue(link, rec, progress, () => this.store.nextCounter(rec.id));
        return this.store.setCatalogue(rec.id, actions, Date.now());
    }

    /**
     * Runs `action` with `args` on the Pi of `rec`. A new connection first fetches
     * the catalogue (the buttons follow it: `onCatalogue`), and an action it no
     * longer lists is not sent. Returns the answer: authentic, or a plain refusal.
     * Throws AppError or the browser's DOMException for the caller to explain.
     */
    async command(rec: PiRecord, action: string, args: string[], progress: Progress,
                  onCatalogue: (rec: PiRecord) => void = () => undefined): Promise<OpenedResponse> {
        const { link, fresh } = await this.connect(rec, progress);
        if (fresh) {
            const updated = await this.catalogueOn(link, rec, progress).catch((e: unknown) => {
                // Refused before the command was sent: say so about the command.
                if (e instanceof AppError && e.msg.code === 'unauthenticated') {
                    throw new AppError({ ...e.msg, title: `Refused: “${action}” did not run` });
                }
                throw e;
            });
            onCatalogue(updated);
            if (!updated.actions.some((a) => a.name === action)) {
                throw new AppError({
                    kind: 'info', code: 'not-in-catalogue', title: `“${action}” is no longer offered`,
                    detail: `${rec.piName}'s owner no longer allows it for this phone; the buttons now show what is allowed. Nothing was sent.`,
                });
            }
        }
        progress('Sending…');
        return this.request(link, rec, () => this.store.nextCounter(rec.id), progress, (counter, challenge, timestamp, code) =>
            sealCommand(rec.keys, hexDecode(rec.deviceId) as Bytes, counter, { timestamp, challenge, totp: code, action, args }));
    }

    /** Drops the link of one Pi (after it was removed). */
    forget(id: string): void {
        this.links.get(id)?.device.gatt?.disconnect();
        this.links.delete(id);
    }
}

/** navigator.bluetooth's type, with getDevices() that older typings lack. */
type Bluetooth_ = globalThis.Bluetooth & { getDevices?: () => Promise<BluetoothDevice[]> };
type Device_ = BluetoothDevice & { watchAdvertisements?: (o: { signal: AbortSignal }) => Promise<void> };
