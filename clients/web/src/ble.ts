// SPDX-License-Identifier: GPL-3.0-or-later
// One command over Web Bluetooth, as docs/protocol.md section 11 describes it:
// connect (chooser only when the browser cannot give back a known Pi), check Info,
// subscribe to Result, read a challenge, write the command, take the answer from
// notifications or, when they are not available or do not come, by reading Result.

import { AppError, err } from './errors.js';
import {
    answers, CHALLENGE_UUID, COMMAND_UUID, decodeResponse, encodeRequest, hexDecode, INFO_UUID,
    parseInfo, Reassembler, RESULT_UUID, type Response, SERVICE_UUID, totp, type Bytes,
} from './protocol.js';
import type { PairingStore, PiRecord } from './storage.js';

/** Progress shown under the button while a command is on its way. */
export type Progress = (text: string) => void;

/** How long the answer may take: actions run up to their timeout (30 s by default). */
const ANSWER_TIMEOUT_MS = 75_000;
/** Without a notification this long after the write, Result is read instead. */
const NOTIFY_GRACE_MS = 2_500;
const POLL_INTERVAL_MS = 400;
/** How long to look for a remembered Pi's advertisements before giving up. */
const LOOK_TIMEOUT_MS = 15_000;

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

function bytesOf(v: DataView): Bytes {
    return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)) as Bytes;
}

/** Keeps one link per Pi between taps, so a second tap needs no new connection. */
export class Bluetooth {
    private links = new Map<string, Link>();

    constructor(private readonly store: PairingStore, private readonly bt: Bluetooth_ = navigator.bluetooth) {}

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
        progress(`Choose “${rec.piName}” in the list…`);
        const filters: BluetoothLEScanFilter[] = [{ services: [SERVICE_UUID], name: rec.piName }];
        // The advertised name may be cut short (scan responses hold 29 bytes of name).
        if (new TextEncoder().encode(rec.piName).length > 29) {
            filters.push({ services: [SERVICE_UUID], namePrefix: rec.piName.slice(0, 20) });
        }
        const device = await this.bt.requestDevice({ filters });
        await this.store.update(rec.id, (r) => {
            r.bluetoothId = device.id;
        });
        return device;
    }

    /**
     * Connects; a Pi remembered from an earlier visit may first have to be seen
     * advertising (desktop Chrome: "no longer in range" until watchAdvertisements()).
     */
    private async connectGatt(device: BluetoothDevice, rec: PiRecord, progress: Progress): Promise<BluetoothRemoteGATTServer> {
        try {
            return await device.gatt!.connect();
        } catch (e) {
            const watch = (device as Device_).watchAdvertisements;
            if ((e as Error).name !== 'NetworkError' || typeof watch !== 'function') throw e;
        }
        progress(`Looking for ${rec.piName}…`);
        const stop = new AbortController();
        const seen = new Promise<boolean>((resolve) => {
            device.addEventListener('advertisementreceived', () => resolve(true), { once: true });
            setTimeout(() => resolve(false), LOOK_TIMEOUT_MS);
        });
        await (device as Device_).watchAdvertisements!({ signal: stop.signal });
        const found = await seen;
        stop.abort();
        if (!found) {
            throw err('not-in-range', `${rec.piName} is not in reach`, 'Make sure the Pi is on and near the phone, then tap again.');
        }
        progress(`Connecting to ${rec.piName}…`);
        return device.gatt!.connect();
    }

    private async connect(rec: PiRecord, progress: Progress): Promise<Link> {
        const old = this.links.get(rec.id);
        if (old && old.device.gatt?.connected) return old;
        const device = await this.findDevice(rec, progress);
        progress(`Connecting to ${rec.piName}…`);
        if (!device.gatt) throw err('no-gatt', 'This device offers no GATT services', 'Choose the Pi, not another device.');
        const server = await this.connectGatt(device, rec, progress);
        let service: BluetoothRemoteGATTService;
        try {
            service = await server.getPrimaryService(SERVICE_UUID);
        } catch (e) {
            if ((e as Error).name === 'NotFoundError') {
                throw err('no-service', `${rec.piName} does not offer BlueZscript`, 'Is bluezscriptd running on the Pi, with Bluetooth enabled?');
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
        // Section 11 step 2: never send anything to the wrong Pi.
        const info = parseInfo(bytesOf(await link.info.readValue()));
        if (info.pi !== rec.piId) {
            device.gatt.disconnect();
            await this.store.update(rec.id, (r) => {
                r.bluetoothId = '';
            });
            throw err('wrong-pi', `This is not ${rec.piName}`, `The chosen device is “${info.name}”, a different Pi. Tap again and choose ${rec.piName}.`);
        }
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
        device.addEventListener('gattserverdisconnected', () => this.links.delete(rec.id), { once: true });
        this.links.set(rec.id, link);
        return link;
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

    /**
     * Runs `action` on the Pi of `rec` and returns its verified (or unverified)
     * response. Throws AppError or the browser's DOMException for the caller to explain.
     */
    async trigger(rec0: PiRecord, action: string, args: string[], progress: Progress): Promise<Response> {
        const link = await this.connect(rec0, progress);
        // No waiting between commands: one TOTP step serves many (section 6.1).
        const rec = (await this.store.get(rec0.id)) ?? rec0;
        progress('Sending…');
        const challenge = bytesOf(await link.challenge.readValue());
        if (challenge.length !== 16) throw err('protocol', 'The Pi sent a bad challenge', `${challenge.length} bytes instead of 16`);
        const nowMs = Date.now();
        const counter = await this.store.nextCounter(rec.id, nowMs);
        const now = Math.floor(nowMs / 1000);
        const code = await totp(rec.keys.totp, rec.totp, now);
        const sent = await encodeRequest({
            deviceId: hexDecode(rec.deviceId)!,
            counter: BigInt(counter),
            timestamp: BigInt(now),
            challenge,
            totp: code.code,
            action,
            args,
        }, rec.keys.request);
        link.fragments.length = 0;
        await link.command.writeValueWithResponse(sent.frame);
        progress(`Waiting for ${rec.piName}…`);

        const deadline = Date.now() + ANSWER_TIMEOUT_MS;
        let response: Response | null = null;
        if (link.notifying) {
            const frame = await this.notified(link, NOTIFY_GRACE_MS);
            if (frame) {
                const r = await decodeResponse(frame, rec.keys.response);
                if (answers(r, BigInt(counter), sent)) response = r;
            }
        }
        // No (matching) notification: read Result until it holds this command's answer.
        while (!response) {
            if (Date.now() > deadline) {
                throw new AppError({ kind: 'error', code: 'no-answer', title: `${rec.piName} did not answer`, detail: 'The command was sent, but no answer came back in time. Check the Pi\'s log.' });
            }
            if (link.notifying) {
                const frame = await this.notified(link, POLL_INTERVAL_MS);
                if (frame) {
                    const r = await decodeResponse(frame, rec.keys.response);
                    if (answers(r, BigInt(counter), sent)) {
                        response = r;
                        break;
                    }
                }
            } else {
                await sleep(POLL_INTERVAL_MS);
            }
            const value = bytesOf(await link.result.readValue());
            if (value.length === 0) continue;
            let r: Response;
            try {
                r = await decodeResponse(value, rec.keys.response);
            } catch {
                continue; // an older or partial value: keep reading
            }
            // A refusal of a revoked device echoes counter and tag too (with a zero
            // MAC): describeResponse() shows it as unauthenticated.
            if (answers(r, BigInt(counter), sent)) response = r;
        }
        return response;
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
