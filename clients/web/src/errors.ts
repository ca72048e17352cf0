// SPDX-License-Identifier: GPL-3.0-or-later
// What the app tells the person holding the phone: Web Bluetooth failures and the
// Pi's answers turned into short, specific messages. Pure functions (tested in Node).

import { ProtocolError, type Response, STATUS } from './protocol.js';

/** Something to show: `kind` drives the colour, `code` is stable for tests and docs. */
export interface Message {
    kind: 'ok' | 'failed' | 'refused' | 'error' | 'info';
    code: string;
    title: string;
    detail: string;
}

/** Raised by the app's own checks with a ready message. */
export class AppError extends Error {
    constructor(readonly msg: Message) {
        super(msg.title);
        this.name = 'AppError';
    }
}

export function err(code: string, title: string, detail: string): AppError {
    return new AppError({ kind: 'error', code, title, detail });
}

/** Why Web Bluetooth cannot be used here at all, or null when it can. */
export function unsupportedReason(env: { secure: boolean; hasBluetooth: boolean; userAgent: string }): Message | null {
    if (!env.secure) {
        return {
            kind: 'error', code: 'insecure',
            title: 'This page is not secure',
            detail: 'Bluetooth works only on pages opened over HTTPS (or from this device itself). Open the app with its https:// address.',
        };
    }
    if (!env.hasBluetooth) {
        const ios = /iPhone|iPad|iPod/.test(env.userAgent);
        return {
            kind: 'error', code: 'unsupported',
            title: 'This browser has no Web Bluetooth',
            detail: ios
                ? 'Safari on iPhone and iPad cannot use Bluetooth from web pages. Use a Web Bluetooth browser such as Bluefy.'
                : 'Use Chrome on Android, or Chrome or Edge on a computer. Firefox and Safari do not support Web Bluetooth.',
        };
    }
    return null;
}

/** A Web Bluetooth exception (DOMException by name) as a message. */
export function explainBluetoothError(e: unknown): Message {
    if (e instanceof AppError) return e.msg;
    if (e instanceof ProtocolError) {
        return { kind: 'error', code: 'protocol', title: 'The Pi answered something this app does not understand', detail: e.message };
    }
    const name = (e as { name?: string })?.name ?? '';
    const text = (e as { message?: string })?.message ?? String(e);
    switch (name) {
    case 'NotFoundError':
        if (/adapter|bluetooth.*(off|not available|unavailable)/i.test(text)) {
            return { kind: 'error', code: 'bluetooth-off', title: 'Bluetooth is off', detail: "Turn on the phone's Bluetooth (and Location on older Android versions), then try again." };
        }
        return { kind: 'info', code: 'cancelled', title: 'No Pi was chosen', detail: 'Tap again and pick the Pi in the list. If it is not listed, make sure it is switched on and within reach.' };
    case 'NotAllowedError':
    case 'SecurityError':
        return { kind: 'error', code: 'permission', title: 'Bluetooth permission denied', detail: 'Allow this site to use Bluetooth (site settings, and the browser\'s Nearby devices permission on Android), then try again.' };
    case 'NetworkError':
        return { kind: 'error', code: 'connection', title: 'Could not talk to the Pi', detail: `The connection failed or dropped (${text}). Move closer to the Pi and try again.` };
    case 'NotSupportedError':
        return { kind: 'error', code: 'not-supported', title: 'The Pi refused a Bluetooth operation', detail: `${text}. If the Pi requires bonding, accept the pairing request the phone shows.` };
    case 'InvalidStateError':
        return { kind: 'error', code: 'state', title: 'Bluetooth is busy', detail: `${text}. Wait a moment and try again.` };
    case 'TimeoutError':
        return { kind: 'error', code: 'timeout', title: 'The Pi did not answer in time', detail: text };
    default:
        return { kind: 'error', code: 'unexpected', title: 'Something went wrong', detail: text };
    }
}

/** Advice for a refusal the Pi authenticated (the MAC verified). */
const ADVICE: Record<string, string> = {
    stale_timestamp: "Set the phone's date and time to automatic.",
    bad_totp: "The phone's clock is probably off: set date and time to automatic.",
    replayed: 'Tap again; the app reads a fresh challenge for every command.',
    rate_limited: 'Wait a minute before trying again.',
    unknown_action: 'The owner may have renamed or removed this action: remove this button.',
    not_permitted: 'Ask the owner to allow this action for this phone.',
    bad_arguments: "The Pi did not accept this button's arguments.",
    internal: 'The Pi had a problem saving the command; try again.',
};

/**
 * The message for a decoded response. A response whose MAC did not verify is shown
 * as unauthenticated only: docs/protocol.md section 4 forbids trusting what it says.
 */
export function describeResponse(r: Response, action: string): Message {
    const out = new TextDecoder('utf-8', { fatal: false }).decode(r.output).trimEnd();
    if (!r.macOk) {
        return {
            kind: 'refused', code: 'unauthenticated',
            title: `Refused: “${action}” did not run`,
            detail: 'The Pi refused the command without proving its answer, so this app cannot say why. ' +
                    'Usually this phone\'s pairing was revoked or removed on the Pi: ask the owner, and pair again with a new code.',
        };
    }
    const name = STATUS[r.status].name;
    switch (name) {
    case 'ok':
        return { kind: 'ok', code: 'ok', title: `Done: ${action}`, detail: out || 'The action ran and succeeded.' };
    case 'action_failed':
        return { kind: 'failed', code: name, title: `${action} failed`, detail: `${r.exitCode < 0 ? `stopped by signal ${-r.exitCode}` : `exit code ${r.exitCode}`}${out ? `: ${out}` : ''}` };
    case 'action_timeout':
    case 'action_busy':
    case 'action_start_failed':
        return { kind: 'failed', code: name, title: `${action}: ${STATUS[r.status].message}`, detail: out };
    default:
        return { kind: 'refused', code: name, title: `Refused: ${STATUS[r.status].message}`, detail: ADVICE[name] ?? '' };
    }
}
