// SPDX-License-Identifier: GPL-3.0-or-later
// What the app tells the person holding the phone: Web Bluetooth failures and the
// Pi's answers turned into short, specific messages. Pure functions (tested in Node).

import { type OpenedResponse, ProtocolError, STATUS } from './protocol2.js';

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

/** Advice for a refusal the Pi authenticated (sealed for this phone). */
const ADVICE: Record<string, string> = {
    stale_timestamp: "The phone's time and the Pi's differ too much: set the phone's date and time to automatic.",
    bad_totp: "The phone's clock is probably off: set date and time to automatic.",
    replayed: 'Tap again; the app reads a fresh challenge for every request.',
    rate_limited: 'Wait a minute before trying again.',
    unknown_action: 'The owner may have renamed or removed this action.',
    not_permitted: 'Ask the owner to allow this action for this phone.',
    bad_arguments: 'The Pi did not accept this argument: check the hint under the field.',
    malformed: 'This app sent something the Pi could not read: reload the app.',
    internal: 'The Pi had a problem saving the request; try again.',
};

/** Why a plain (unauthenticated) refusal came, in the words of its status. */
const PLAIN: Record<string, string> = {
    revoked: "this phone's pairing was revoked on the Pi: ask the owner, and pair again with a new code.",
    unknown_device: 'the Pi does not know this pairing (removed, or never completed): ask the owner for a new code.',
    bad_mac: "the Pi did not recognise this phone's keys: the pairing may have been replaced. Ask the owner for a new code.",
    rate_limited: 'too many unauthenticated requests reached the Pi: wait a minute and try again.',
    unknown_version: 'the Pi speaks another protocol version: update the Pi or reload this app.',
    malformed: 'the Pi could not read the request: reload the app.',
};

const statusMessage = (name: string): string =>
    Object.values(STATUS).find((s) => s.name === name)?.message ?? name;

/**
 * The message for a plain refusal: something answered, but without proving it is
 * the Pi, so the app names the status and says it is unauthenticated.
 */
function plainRefusal(statusName: string, title: string): Message {
    return {
        kind: 'refused', code: 'unauthenticated', title,
        detail: `Unauthenticated answer “${statusName}”: ${PLAIN[statusName] ?? `${statusMessage(statusName)}.`}`,
    };
}

/** The message for the Pi's answer to a command. */
export function describeCommand(r: OpenedResponse, action: string): Message {
    if (r.kind === 'refusal') return plainRefusal(r.statusName, `Refused: “${action}” did not run`);
    if (r.kind !== 'command') {
        return { kind: 'error', code: 'protocol', title: 'The Pi answered something this app does not understand', detail: `a ${r.kind} answer to a command` };
    }
    const out = new TextDecoder('utf-8', { fatal: false }).decode(r.output).trimEnd();
    const name = r.statusName;
    switch (name) {
    case 'ok':
        return { kind: 'ok', code: 'ok', title: `Done: ${action}`, detail: out || 'The action ran and succeeded.' };
    case 'action_failed':
        return { kind: 'failed', code: name, title: `${action} failed`, detail: `${r.exitCode < 0 ? `stopped by signal ${-r.exitCode}` : `exit code ${r.exitCode}`}${out ? `: ${out}` : ''}` };
    case 'action_timeout':
    case 'action_busy':
    case 'action_start_failed':
        return { kind: 'failed', code: name, title: `${action}: ${statusMessage(name)}`, detail: out };
    default:
        return { kind: 'refused', code: name, title: `Refused: ${statusMessage(name)}`, detail: ADVICE[name] ?? '' };
    }
}

/** An AppError for a refused catalogue (or other non-command) request about `what`. */
export function refusalError(r: OpenedResponse, what: string): AppError {
    if (r.kind === 'refusal') return new AppError(plainRefusal(r.statusName, `Refused: ${what}`));
    if (!r.authentic) return err('protocol', 'The Pi answered something this app cannot open', what);
    return new AppError({ kind: 'refused', code: r.statusName, title: `Refused: ${statusMessage(r.statusName)}`, detail: ADVICE[r.statusName] ?? '' });
}

/** What to do after a refused pair request, by its status. */
const PAIR_ADVICE: Record<string, [string, string]> = {
    code_used: ['This pairing code was already used',
                'A code works once. Ask the owner for a new code. If this phone did not use it, someone else may have: tell the owner.'],
    code_expired: ['This pairing code has expired', 'Codes work for a few minutes. Ask the owner for a new code.'],
    unknown_device: ['The Pi does not know this pairing', 'It was removed, or the code is from another Pi. Ask the owner for a new code.'],
    revoked: ['This pairing was revoked', 'The owner revoked it. Ask the owner to pair this phone again.'],
    bad_mac: ['The pairing code is wrong', 'The Pi did not accept it: the link may be damaged, or the owner made a newer code. Ask for the current code.'],
    rate_limited: ['The Pi is refusing requests for a while', 'Too many attempts: wait a minute, then tap Pair again.'],
    replayed: ['The pairing request came too late', 'Tap Pair again.'],
};

/**
 * The AppError for a pair request the Pi refused (plainly or sealed): kind
 * 'refused' when the code cannot work any more, 'error' when a retry may.
 */
export function pairRefusal(r: OpenedResponse, piName: string): AppError {
    const name = r.kind === 'refusal' || r.authentic ? r.statusName : 'unopened';
    const [title, detail] = PAIR_ADVICE[name] ?? [`${piName} refused the pairing`, `${statusMessage(name)}.`];
    const how = r.authentic ? '' : ` (Unauthenticated answer “${name}”.)`;
    // Transient refusals leave the code usable: the app keeps it for another tap.
    const kind = name === 'rate_limited' || name === 'replayed' ? 'error' : 'refused';
    return new AppError({ kind, code: `pair-${name}`, title, detail: detail + how });
}

/** "45 s", "5 min", "3 h", "2 days": a clock difference, rounded. */
export function formatDuration(seconds: number): string {
    const s = Math.abs(Math.round(seconds));
    if (s < 90) return `${s} s`;
    if (s < 90 * 60) return `${Math.round(s / 60)} min`;
    if (s < 48 * 3600) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} days`;
}

/** Clock differences up to this are normal (radio delays, clocks a little apart). */
export const CLOCK_SLACK_S = 60;

/**
 * What to say about the clocks, from the Pi's time and sync flag (Info or a sealed
 * response) against this phone's time when it was seen; null when they agree.
 */
export function clockNote(c: { piTime: number; synced: boolean; phoneTime: number }): Message | null {
    const diff = c.piTime - c.phoneTime;
    if (Math.abs(diff) <= CLOCK_SLACK_S) return null;
    const d = formatDuration(diff);
    if (c.synced) {
        return {
            kind: 'info', code: 'phone-clock',
            title: `Your phone's clock is ${d} off`,
            detail: `The Pi has network time and this phone is ${d} ${diff > 0 ? 'behind' : 'ahead'}: set the phone's date and time to automatic.`,
        };
    }
    if (diff < 0) {
        return {
            kind: 'info', code: 'pi-clock-behind',
            title: `The Pi's clock is ${d} behind (no network time) — it will catch up from this phone's commands`,
            detail: 'The Pi has no network time; each accepted command moves its clock forward to this phone\'s.',
        };
    }
    return {
        kind: 'info', code: 'pi-clock-ahead',
        title: `The Pi's clock is ${d} ahead of this phone (no network time)`,
        detail: "If this phone's time is right, the Pi's clock is wrong: the owner should give the Pi network time.",
    };
}
