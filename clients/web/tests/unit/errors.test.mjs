// SPDX-License-Identifier: GPL-3.0-or-later
// What the person sees: Web Bluetooth failures and the Pi's answers as messages.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
    AppError, clockNote, describeCommand, explainBluetoothError, formatDuration, pairRefusal, refusalError, unsupportedReason,
} from '../../build/node/errors.js';
import * as p from '../../build/node/protocol2.js';

const dom = (name, message) => Object.assign(new Error(message), { name });

describe('Web Bluetooth errors', () => {
    const cases = [
        [dom('NotFoundError', 'User cancelled the requestDevice() chooser.'), 'cancelled', 'info'],
        [dom('NotFoundError', 'Bluetooth adapter not available.'), 'bluetooth-off', 'error'],
        [dom('NotAllowedError', 'Permission denied.'), 'permission', 'error'],
        [dom('SecurityError', 'Origin is not allowed to access the service.'), 'permission', 'error'],
        [dom('NetworkError', 'Connection failed for unknown reason.'), 'connection', 'error'],
        [dom('NotSupportedError', 'GATT operation not permitted.'), 'not-supported', 'error'],
        [dom('InvalidStateError', 'GATT operation already in progress.'), 'state', 'error'],
        [new p.ProtocolError('a response is 13..512 bytes, not 3'), 'protocol', 'error'],
        [new AppError({ kind: 'error', code: 'wrong-pi', title: 't', detail: 'd' }), 'wrong-pi', 'error'],
        [new Error('boom'), 'unexpected', 'error'],
    ];
    for (const [e, code, kind] of cases) {
        test(`${e.name}: ${e.message} -> ${code}`, () => {
            const m = explainBluetoothError(e);
            assert.equal(m.code, code);
            assert.equal(m.kind, kind);
            assert.ok(m.title.length > 0);
        });
    }
    test('unsupported browsers and insecure pages', () => {
        assert.equal(unsupportedReason({ secure: false, hasBluetooth: true, userAgent: '' }).code, 'insecure');
        const ios = unsupportedReason({ secure: true, hasBluetooth: false, userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)' });
        assert.equal(ios.code, 'unsupported');
        assert.match(ios.detail, /Bluefy/);
        assert.match(unsupportedReason({ secure: true, hasBluetooth: false, userAgent: 'Firefox' }).detail, /Chrome on Android/);
        assert.equal(unsupportedReason({ secure: true, hasBluetooth: true, userAgent: '' }), null);
    });
});

const head = { authentic: true, counter: 5n, piTime: 1700000000n, synced: true };
const command = (statusName, exitCode = 0, output = '') => ({
    ...head, kind: 'command', type: 0x81, status: 0, statusName, exitCode, output: new TextEncoder().encode(output),
});
const plain = (statusName) => ({ kind: 'refusal', type: 0xff, authentic: false, counter: 5n, status: 0, statusName });

describe("the Pi's answers to a command", () => {
    test('ok shows the output', () => {
        const m = describeCommand(command('ok', 0, 'lights: on\n'), 'Lights on');
        assert.deepEqual([m.kind, m.code, m.title, m.detail], ['ok', 'ok', 'Done: Lights on', 'lights: on']);
    });
    test('a failed action shows its exit code or signal', () => {
        assert.match(describeCommand(command('action_failed', 3, 'no'), 'x').detail, /exit code 3: no/);
        assert.match(describeCommand(command('action_failed', -9), 'x').detail, /stopped by signal 9/);
        assert.equal(describeCommand(command('action_timeout'), 'x').code, 'action_timeout');
    });
    test('a sealed refusal names the reason and what to do', () => {
        const m = describeCommand(command('bad_totp'), 'x');
        assert.deepEqual([m.kind, m.code], ['refused', 'bad_totp']);
        assert.match(m.title, /the one-time code is wrong/);
        assert.match(m.detail, /clock/);
    });
    test('a plain refusal is shown as unauthenticated, naming what answered', () => {
        const m = describeCommand(plain('revoked'), 'door');
        assert.deepEqual([m.kind, m.code, m.title], ['refused', 'unauthenticated', 'Refused: “door” did not run']);
        assert.match(m.detail, /^Unauthenticated answer “revoked”: .*revoked/);
    });
    test('a refused catalogue', () => {
        assert.equal(refusalError(plain('unknown_device'), 'the list').msg.code, 'unauthenticated');
        assert.equal(refusalError({ ...head, kind: 'catalogue', statusName: 'stale_timestamp' }, 'the list').msg.code, 'stale_timestamp');
    });
});

describe('pair refusals', () => {
    for (const [status, re] of [['code_used', /already used/], ['code_expired', /expired/], ['unknown_device', /does not know/],
                                ['revoked', /revoked/], ['bad_mac', /code is wrong/], ['rate_limited', /refusing/]]) {
        test(status, () => {
            const e = pairRefusal(plain(status), 'kitchen-pi');
            assert.ok(e instanceof AppError);
            assert.equal(e.msg.code, `pair-${status}`);
            assert.match(e.msg.title, re);
            assert.match(e.msg.detail, new RegExp(`Unauthenticated answer “${status}”`));
            assert.equal(e.msg.kind, status === 'rate_limited' ? 'error' : 'refused', 'only a lasting refusal spends the code');
        });
    }
    test('a sealed refusal is not called unauthenticated', () => {
        const e = pairRefusal({ ...head, kind: 'pair', statusName: 'replayed', confirm: null, message: '' }, 'kitchen-pi');
        assert.doesNotMatch(e.msg.detail, /Unauthenticated/);
    });
});

describe('clock notes', () => {
    test('durations', () => {
        assert.deepEqual([45, 300, -10800, 3 * 86400].map(formatDuration), ['45 s', '5 min', '3 h', '3 days']);
    });
    test('within a minute: nothing', () => {
        assert.equal(clockNote({ piTime: 1000, synced: false, phoneTime: 1060 }), null);
        assert.equal(clockNote({ piTime: 1060, synced: true, phoneTime: 1000 }), null);
    });
    test('a Pi without network time behind or ahead', () => {
        assert.equal(clockNote({ piTime: 0, synced: false, phoneTime: 10800 }).title,
                     "The Pi's clock is 3 h behind (no network time) — it will catch up from this phone's commands");
        assert.equal(clockNote({ piTime: 600, synced: false, phoneTime: 0 }).code, 'pi-clock-ahead');
    });
    test("a Pi with network time: the phone's clock is off", () => {
        const m = clockNote({ piTime: 0, synced: true, phoneTime: 300 });
        assert.equal(m.title, "Your phone's clock is 5 min off");
        assert.match(m.detail, /ahead/);
    });
});
