// SPDX-License-Identifier: GPL-3.0-or-later
// What the person sees: Web Bluetooth failures and the Pi's answers as messages.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { AppError, describeResponse, explainBluetoothError, unsupportedReason } from '../../build/node/errors.js';
import * as p from '../../build/node/protocol.js';
import { hex, vectors } from './vectors.mjs';

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
        [new p.ProtocolError('a response is 65..512 bytes, got 3'), 'protocol', 'error'],
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

describe("the Pi's answers", () => {
    const reqs = Object.fromEntries(vectors('requests').cases.map((c) => [c.name, c]));
    const decode = async (name) => {
        const c = vectors('responses').cases.find((x) => x.name === name);
        const r = reqs[c.request ?? 'minimal'];
        const keys = await p.deriveKeys(hex(r.secret), r.totp.alg);
        return p.decodeResponse(hex(c.frame), keys.response);
    };
    test('ok shows the output', async () => {
        const m = describeResponse(await decode('ok'), 'Lights on');
        assert.deepEqual([m.kind, m.code, m.title, m.detail], ['ok', 'ok', 'Done: Lights on', 'lights: on']);
    });
    test('a failed action shows its exit code', async () => {
        const m = describeResponse(await decode('action-failed'), 'x');
        assert.equal(m.kind, 'failed');
        assert.match(m.detail, /exit code \d+/);
    });
    test('a timeout', async () => {
        assert.equal(describeResponse(await decode('action-timeout'), 'x').code, 'action_timeout');
    });
    test('an authenticated refusal names the reason and what to do', async () => {
        const m = describeResponse(await decode('refused-bad-totp'), 'x');
        assert.deepEqual([m.kind, m.code], ['refused', 'bad_totp']);
        assert.match(m.title, /the one-time code is wrong/);
        assert.match(m.detail, /clock/);
    });
    test('a zero-MAC refusal is shown as unauthenticated, never with its claimed reason', async () => {
        const r = await decode('unknown-device');
        assert.equal(r.macOk, false);
        const m = describeResponse(r, 'x');
        assert.equal(m.code, 'unauthenticated');
        assert.doesNotMatch(m.title + m.detail, /not paired with the Pi/);
    });
});
