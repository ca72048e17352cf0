// SPDX-License-Identifier: GPL-3.0-or-later
// The phone app (clients/web/dist) end to end in Debian's headless Chromium: the
// page talks Web Bluetooth to a peripheral emulated by Chromium's DevTools
// BluetoothEmulation domain, and every GATT read and write of that peripheral is
// answered by the real bluezscriptd, through gatt_bridge.py (a central on hci1 of the
// fake org.bluez on a private D-Bus). The owner pairs in the real web UI; the phone
// reads the QR code from a picture of it and pairs by the protocol v2 exchange; its
// buttons come from the Pi's catalogue and follow the owner's grants; it triggers
// actions that run on the Pi (they write files), twice a second apart; a used code
// is refused; after the owner revokes it, the phone is refused, reconnecting without
// a device chooser. axe-core checks each screen for accessibility problems.
//
// Chromium 156's emulation cannot send notifications, so the app takes its answers by
// reading Result (its fallback); notifications and reassembly are covered by the
// app's unit tests (clients/web/tests/unit/ble.test.mjs).
//
// Screenshots go to $BZS_SCREENSHOT_DIR (default $BZS_BIN_DIR/phone_app_screenshots);
// with BZS_UPDATE_SCREENSHOTS=1 the documented ones are copied to docs/screenshots/.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { after, before } from 'node:test';

import { Daemon, WAIT_MS } from './daemon.mjs';
import {
    HERE, PHONE, SOURCE_DIR, Steps, launchChromium, newContext, pylibEnv, screenshotDir,
    signIn, startDaemon, teardown,
} from './harness.mjs';
import { decodePng, grayToY4m } from './y4m.mjs';

const APP_DIR = process.env.BZS_APP_DIR || path.join(SOURCE_DIR, 'clients', 'web', 'dist');
const DOCUMENTED = ['app-empty', 'app-pairing', 'app-paired', 'app-result-ok', 'app-code-used', 'app-refused'];
const PI_NAME = 'kitchen-pi';
const EMULATED = '0A:00:00:00:00:42'; // upper case: Chromium matches addresses as written
const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const UUID = {
    service: '1b324b66-1eca-4b75-ac85-5f5515fb2900',
    info: '1b324b66-1eca-4b75-ac85-5f5515fb2901',
    challenge: '1b324b66-1eca-4b75-ac85-5f5515fb2902',
    command: '1b324b66-1eca-4b75-ac85-5f5515fb2903',
    result: '1b324b66-1eca-4b75-ac85-5f5515fb2904',
};

let bridge;
let daemon;
let browser;
let phone;   // the phone's page (its own context: its own IndexedDB)
let owner;   // the owner's page in the web UI
let emu;     // the CDP sessions of the emulated Pi
let cameraFile;
let shotDir;
const prompts = [];      // device chooser requests seen
const gattLog = [];      // GATT operations the page performed
const device = {};

/** Steps in order; a failed one prints the GATT log, the daemon's log and the page. */
const steps = new Steps(async () => {
    // AssertionError keeps its first message in the report: print the context.
    console.error(`--- GATT operations (last 30) ---\n${gattLog.slice(-30).join('\n')}`);
    if (daemon) console.error(daemon.logTail());
    if (phone) console.error(`--- the phone's page ---\n${await phone.locator('main').innerText().catch((x) => x.message)}`);
});
const { step } = steps;

/** gatt_bridge.py as a child: request(op) resolves its reply; rejects on its errors. */
class Bridge {
    constructor(logFile) {
        this.proc = spawn('/usr/bin/python3', [path.join(HERE, 'gatt_bridge.py'), logFile], {
            stdio: ['pipe', 'pipe', 'inherit'],
            env: pylibEnv({ PYTHONDONTWRITEBYTECODE: '1' }),
        });
        this.next = 1;
        this.pending = new Map();
        this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => {
            for (const p of this.pending.values()) p.reject(new Error(`gatt_bridge.py exited (${code ?? signal})`));
            this.pending.clear();
            resolve({ code, signal });
        }));
        this.ready = new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('gatt_bridge.py: no ready line')), WAIT_MS);
            this.proc.once('exit', (code) => reject(new Error(`gatt_bridge.py exited ${code} before it was ready`)));
            readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
                const msg = JSON.parse(line);
                if (msg.event === 'ready') {
                    clearTimeout(timer);
                    resolve(msg.bus);
                    return;
                }
                const p = this.pending.get(msg.id);
                this.pending.delete(msg.id);
                if (!p) return;
                if (msg.ok) p.resolve(msg);
                else p.reject(new Error(msg.error));
            });
        });
    }

    request(op, fields = {}) {
        const id = this.next++;
        return new Promise((resolve, reject) => {
            this.pending.set(id, { resolve, reject });
            this.proc.stdin.write(`${JSON.stringify({ id, op, ...fields })}\n`);
        });
    }

    async stop() {
        this.proc.stdin.end();
        const timer = setTimeout(() => this.proc.kill('SIGKILL'), WAIT_MS);
        const r = await this.exited;
        clearTimeout(timer);
        return r;
    }
}

/**
 * The emulated Pi: a peripheral with the BlueZscript service whose GATT operations
 * are forwarded to the bridge. The device chooser is answered once per request.
 */
async function emulatePi(context, page) {
    const bs = await browser.newBrowserCDPSession();
    const uuidOf = new Map();
    // (Re)creates the peripheral: Chromium ends the emulation when the page reloads.
    const present = async () => {
        await bs.send('BluetoothEmulation.disable').catch(() => undefined);
        await bs.send('BluetoothEmulation.enable', { state: 'powered-on', leSupported: true });
        await bs.send('BluetoothEmulation.simulatePreconnectedPeripheral', {
            address: EMULATED, name: PI_NAME, manufacturerData: [], knownServiceUuids: [UUID.service],
        });
        const { serviceId } = await bs.send('BluetoothEmulation.addService', { address: EMULATED, serviceUuid: UUID.service });
        const props = {
            info: { read: true }, challenge: { read: true }, command: { write: true },
            result: { read: true, notify: true },
        };
        uuidOf.clear();
        for (const [name, properties] of Object.entries(props)) {
            const { characteristicId } = await bs.send('BluetoothEmulation.addCharacteristic', {
                serviceId, characteristicUuid: UUID[name], properties,
            });
            uuidOf.set(characteristicId, UUID[name]);
        }
    };
    await present();
    bs.on('BluetoothEmulation.gattOperationReceived', async (ev) => {
        gattLog.push(`gatt ${ev.type}`);
        let code = 0; // HCI success
        if (ev.type === 'connection') {
            try {
                await bridge.request('connect');
            } catch (e) {
                gattLog.push(`connect failed: ${e.message}`);
                code = 0x04; // page timeout: "cannot connect"
            }
        }
        await bs.send('BluetoothEmulation.simulateGATTOperationResponse', { address: ev.address, type: ev.type, code })
            .catch((e) => gattLog.push(`gatt response failed: ${e.message}`));
    });
    bs.on('BluetoothEmulation.characteristicOperationReceived', async (ev) => {
        const uuid = uuidOf.get(ev.characteristicId);
        const short = uuid ? uuid.slice(-4) : ev.characteristicId;
        let code = 0; // GATT success
        let data;
        try {
            if (ev.type === 'read') {
                data = Buffer.from((await bridge.request('read', { uuid })).data, 'hex').toString('base64');
            } else if (ev.type === 'write') {
                await bridge.request('write', { uuid, data: Buffer.from(ev.data, 'base64').toString('hex') });
            } else {
                code = 0x06; // subscriptions: "request not supported" (no notifications here)
            }
            gattLog.push(`${ev.type} ${short}${data ? ` -> ${Buffer.from(data, 'base64').length} bytes` : ''}`);
        } catch (e) {
            gattLog.push(`${ev.type} ${short} failed: ${e.message}`);
            code = 0x0e; // unlikely error
        }
        await bs.send('BluetoothEmulation.simulateCharacteristicOperationResponse', {
            characteristicId: ev.characteristicId, type: ev.type, code, ...(data !== undefined ? { data } : {}),
        }).catch((e) => gattLog.push(`response failed: ${e.message}`));
    });
    const ps = await context.newCDPSession(page);
    await ps.send('DeviceAccess.enable');
    const answered = new Set();
    // The chooser is reported again as devices appear (first often empty); the Pi is
    // selected once per request: selecting a request twice crashes Chromium.
    ps.on('DeviceAccess.deviceRequestPrompted', async (ev) => {
        gattLog.push(`chooser ${ev.id.slice(0, 8)} offers ${JSON.stringify(ev.devices)}`);
        const dev = ev.devices.find((d) => d.id.toUpperCase() === EMULATED);
        if (!dev) {
            // The chooser scans: the Pi advertises its service and name.
            await bs.send('BluetoothEmulation.simulateAdvertisement', {
                entry: { deviceAddress: EMULATED, rssi: -50, scanRecord: { name: PI_NAME, uuids: [UUID.service] } },
            }).catch((e) => gattLog.push(`advertisement failed: ${e.message}`));
            return;
        }
        if (answered.has(ev.id)) return;
        answered.add(ev.id);
        prompts.push(ev);
        await ps.send('DeviceAccess.selectPrompt', { id: ev.id, deviceId: dev.id });
    });
    return { bs, ps, present };
}

async function shot(name, page = phone) {
    const file = path.join(shotDir, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
    return file;
}

/** axe-core on the page as it is (evaluated over CDP: the app's CSP allows no inline script). */
async function assertAccessible(what, page = phone) {
    await page.evaluate(AXE);
    const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] }))
        .violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`));
    assert.deepEqual(violations, [], `axe-core on ${what}`);
}

const runsOf = (name) => {
    const f = path.join(daemon.dir, `${name}.runs`);
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n') : [];
};
const runs = () => runsOf('door');

/** The card of the pairing of device `dev` (one phone may hold two pairings with one Pi). */
const cardOf = (dev, page = phone) => page.locator(`[data-testid="pi-${device.pi}"][data-device="${dev}"]`);

/** Taps `testid` in `card` and waits for a new outcome there; returns the result box. */
async function tapAndWait(card, ...testids) {
    const result = card.getByTestId('result');
    const before = Number((await result.getAttribute('data-n')) ?? 0);
    for (const t of testids) await card.getByTestId(t).click();
    await phone.waitForFunction(([dev, n]) => {
        const r = document.querySelector(`[data-device="${dev}"] [data-testid="result"]`);
        return r && Number(r.dataset.n ?? 0) > n && r.dataset.code;
    }, [await card.getAttribute('data-device'), before], { timeout: 60000 });
    return result;
}

/** Reloads the phone's page (a new Bluetooth connection follows) and shows the Pi again. */
async function reloadPhone(url) {
    if (url) {
        // From another document: a fragment-only change would not load the page again.
        await phone.goto('about:blank');
        await phone.goto(url, { waitUntil: 'load' });
    } else {
        await phone.reload({ waitUntil: 'load' });
    }
    await phone.locator('body[data-ready="1"]').waitFor();
    await emu.present();
}

before(async () => {
    steps.failed = 'setup';
    if (!fs.existsSync(path.join(APP_DIR, 'index.html'))) {
        throw new Error(`${APP_DIR}/index.html is missing: build the app first (make app)`);
    }
    shotDir = screenshotDir('phone_app_screenshots');
    daemon = new Daemon({
        bus: 'pending',
        actions: {
            // Each proves it ran: one line per run, naming the device and the transport.
            door: {
                script: '#!/bin/sh\necho "$BLUEZSCRIPT_DEVICE_NAME via $BLUEZSCRIPT_TRANSPORT" >> "$(dirname "$0")/../door.runs"\n' +
                        'echo "front door unlocked"\n',
                meta: 'description = "Unlock the front door (phone app test)"\ntimeout = 10\nconfirm = true\n',
            },
            lights: {
                script: '#!/bin/sh\necho "$BLUEZSCRIPT_DEVICE_NAME $1" >> "$(dirname "$0")/../lights.runs"\necho "lights $1"\n',
                meta: 'description = "Kitchen lights"\ntimeout = 10\nallow_args = true\narg_choices = ["low", "high"]\nmax_args = 1\n',
            },
        },
        ble: ['require_bonding = false'],
        web: [`app_dir = "${APP_DIR}"`],
    });
    bridge = new Bridge(path.join(daemon.dir, 'fake-bluetoothd.log'));
    daemon.options.bus = await bridge.ready;
    await startDaemon(daemon);
    // Chromium's fake camera plays this file; step 5 puts a QR code into it before
    // the app opens the camera (a blank picture until then).
    cameraFile = path.join(daemon.dir, 'camera.y4m');
    fs.writeFileSync(cameraFile, grayToY4m({ width: 0, height: 0, gray: new Uint8Array(0) }));
    browser = await launchChromium([
        '--enable-features=WebBluetooth,WebBluetoothNewPermissionsBackend',
        '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
        `--use-file-for-fake-video-capture=${cameraFile}`,
    ]);
    const ownerCtx = await newContext(browser, { viewport: { width: 1000, height: 800 } });
    owner = await ownerCtx.newPage();
    const phoneCtx = await newContext(browser, { viewport: PHONE, isMobile: true, hasTouch: true });
    phone = await phoneCtx.newPage();
    phone.on('pageerror', (e) => gattLog.push(`page error: ${e.message}`));
    emu = await emulatePi(phoneCtx, phone);
    steps.failed = null;
});

after(() => teardown({
    browser, daemon, afterDaemon: () => bridge?.stop(), failed: steps.failed, shotDir,
    documented: DOCUMENTED,
}));

step('1. the Pi serves the app at /app/ with its CSP, manifest and service worker', async () => {
    const resp = await phone.goto(`${daemon.httpsOrigin}/app/`, { waitUntil: 'load' });
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()['content-security-policy'], /script-src 'self'; .*worker-src 'self'/);
    await phone.locator('body[data-ready="1"]').waitFor();
    const manifest = await phone.evaluate(async () => (await fetch('manifest.webmanifest')).json());
    assert.equal(manifest.display, 'standalone');
    assert.deepEqual(manifest.icons.map((i) => i.sizes), ['192x192', '512x512', '512x512']);
    for (const i of manifest.icons) {
        const r = await phone.request.get(`${daemon.httpsOrigin}/app/${i.src}`);
        assert.equal(r.status(), 200, i.src);
        assert.equal(r.headers()['content-type'], 'image/png');
        assert.deepEqual([...(await r.body()).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], i.src);
    }
    const sw = await phone.request.get(`${daemon.httpsOrigin}/app/sw.js`);
    assert.equal(sw.headers()['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(await phone.evaluate(() => 'bluetooth' in navigator), true, 'Web Bluetooth is on');
    await phone.getByTestId('add-panel').waitFor();
    assert.equal(await phone.getByTestId('banner').isHidden(), true, 'no warning on a supported browser');
    await shot('app-empty');
    await assertAccessible('the empty app');
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the app is ${overflow}px wider than a 390px screen`);
});

step('2. the owner pairs a phone in the web UI; the phone reads the QR code and pairs by the exchange', async () => {
    await signIn(owner, daemon.httpsOrigin);
    await owner.goto(`${daemon.httpsOrigin}/pair`);
    await owner.getByTestId('pair-name').fill("Alice's phone");
    await owner.getByTestId('pair-action-door').check();
    await Promise.all([owner.waitForURL(/\/pair$/), owner.getByTestId('pair-submit').click()]);
    const uri = (await owner.getByTestId('pair-uri').textContent()).trim();
    // The owner used 127.0.0.1 (loopback, useless to a phone): the Pi's own name is used.
    assert.match(uri, new RegExp(`^https://[^/]+\\.[^/]+:${daemon.httpsPort}/app/#v=2&pi=[0-9a-f]{32}&pk=[0-9a-f]{64}&name=${PI_NAME}&dev=[0-9a-f]{32}&code=[A-Z2-7]{26}&`));
    assert.doesNotMatch(uri, /[#&](actions|secret)=/, 'no action hint and no secret in a v2 link');
    assert.doesNotMatch(uri, /127\.0\.0\.1/);
    device.pi = /[#&]pi=([0-9a-f]{32})/.exec(uri)[1];
    device.id = /[#&]dev=([0-9a-f]{32})/.exec(uri)[1];
    device.code = /[#&]code=([A-Z2-7]{26})/.exec(uri)[1];
    const qrPng = path.join(shotDir, 'pairing-qr.png');
    await owner.getByTestId('pair-qr').screenshot({ path: qrPng });

    await phone.getByTestId('scan-file').setInputFiles(qrPng);
    const pending = phone.getByTestId('pending');
    await pending.waitFor();
    assert.equal(await pending.getByTestId('pair').textContent(), `Pair with ${PI_NAME}`);
    assert.match(await pending.textContent(), /as “Alice's phone”/);
    await shot('app-pairing');
    await assertAccessible('the pairing card');
    // Until the tap nothing reached the Pi: the device is still pending.
    const before = JSON.parse(await daemon.cli(['--json', 'pair', 'list'])).find((d) => d.id === device.id);
    assert.equal(before.state, 'pending');

    await pending.getByTestId('pair').click();
    const card = cardOf(device.id);
    await card.waitFor({ timeout: 60000 });
    assert.equal(await pending.count(), 0, 'the pairing card is gone');
    assert.equal(await card.getByTestId('pi-name').textContent(), PI_NAME);
    assert.equal(await card.getByTestId('pi-label').textContent(), "Alice's phone");
    assert.match(await phone.getByTestId('banner').textContent(), /Paired with kitchen-pi as “Alice's phone”/);
    // The buttons are the catalogue: door only, with its description.
    assert.equal(await card.getByTestId('action-door').textContent(), 'door');
    assert.match(await card.getByTestId('item-door').textContent(), /Unlock the front door \(phone app test\)/);
    assert.equal(await card.getByTestId('action-lights').count(), 0, 'lights is not granted');
    assert.equal(await card.getByTestId('clock').count(), 0, 'the clocks agree: no clock message');
    const after = JSON.parse(await daemon.cli(['--json', 'pair', 'list'])).find((d) => d.id === device.id);
    assert.equal(after.state, 'active');
    assert.equal(prompts.length, 1, 'one device chooser');
    assert.deepEqual(prompts[0].devices.map((d) => d.id.toUpperCase()), [EMULATED]);
    // Info, Challenge, the pair request, Result; then a catalogue request.
    assert.match(gattLog.join('\n'), /read 2901[\s\S]*read 2902[\s\S]*write 2903[\s\S]*read 2904[\s\S]*read 2902[\s\S]*write 2903/);
    // What IndexedDB holds: non-extractable keys, no secret, no code.
    const stored = await phone.evaluate(() => new Promise((resolve, reject) => {
        const open = indexedDB.open('bluezscript');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
            const req = open.result.transaction('pairings').objectStore('pairings').getAll();
            req.onsuccess = () => resolve(req.result.map((r) => ({
                keys: Object.fromEntries(Object.entries(r.keys).map(([k, v]) => [k, { extractable: v.extractable, alg: v.algorithm.name }])),
                fields: Object.keys(r).sort(),
                json: JSON.stringify(r),
            })));
            req.onerror = () => reject(req.error);
        };
    }));
    assert.equal(stored.length, 1);
    assert.deepEqual(stored[0].keys, {
        request: { extractable: false, alg: 'AES-GCM' }, response: { extractable: false, alg: 'AES-GCM' },
        totp: { extractable: false, alg: 'HMAC' },
    });
    assert.ok(!stored[0].fields.includes('secret') && !stored[0].fields.includes('code'), stored[0].fields.join(','));
    assert.ok(!stored[0].json.includes(device.code), 'the code is not stored');
    await shot('app-paired');
    await assertAccessible('the paired Pi');
});

step('3. a tap (and the confirmation) runs the action; a second one a second later runs too', async () => {
    assert.deepEqual(runs(), []);
    const card = cardOf(device.id);
    let result = await tapAndWait(card, 'action-door', 'confirm-door');
    assert.equal(await result.getAttribute('data-code'), 'ok', await result.textContent());
    assert.match(await result.textContent(), /Done: door/);
    assert.match(await result.textContent(), /front door unlocked/);
    assert.deepEqual(runs(), ["Alice's phone via ble"], 'the action ran once, for this device, over BLE');
    // No waiting for a new TOTP step: the next command one second later is accepted.
    await new Promise((r) => setTimeout(r, 1000));
    result = await tapAndWait(card, 'action-door', 'confirm-door');
    assert.equal(await result.getAttribute('data-code'), 'ok', await result.textContent());
    assert.deepEqual(runs(), ["Alice's phone via ble", "Alice's phone via ble"]);
    assert.equal(prompts.length, 1, 'still one device chooser');
    const audit = JSON.parse(await daemon.cli(['log', '--json', '--device', device.id]));
    assert.deepEqual(audit.slice(0, 2).map((e) => [e.status, e.action]), [['ok', 'door'], ['ok', 'door']], JSON.stringify(audit.slice(0, 2)));
    await shot('app-result-ok');
    await assertAccessible('a result');
});

step('4. the buttons follow the owner: a granted action appears, a denied one goes, at the next connection', async () => {
    await daemon.cli(['pair', 'allow', device.id, 'lights']);
    await reloadPhone();
    let card = cardOf(device.id);
    // The connection of this tap fetches the catalogue first; door is still allowed.
    let result = await tapAndWait(card, 'action-door', 'confirm-door');
    assert.equal(await result.getAttribute('data-code'), 'ok', await result.textContent());
    const choices = card.getByTestId('arg-lights');
    assert.deepEqual(await choices.locator('option').allTextContents(), ['low', 'high']);
    await choices.selectOption('high');
    result = await tapAndWait(card, 'action-lights');
    assert.equal(await result.getAttribute('data-code'), 'ok', await result.textContent());
    assert.match(await result.textContent(), /lights high/);
    assert.deepEqual(runsOf('lights'), ["Alice's phone high"]);
    await assertAccessible('an action with choices');

    await daemon.cli(['pair', 'deny', device.id, 'door']);
    await reloadPhone();
    card = cardOf(device.id);
    await card.getByTestId('arg-lights').selectOption('low');
    result = await tapAndWait(card, 'action-lights');
    assert.equal(await result.getAttribute('data-code'), 'ok', await result.textContent());
    assert.match(await result.textContent(), /lights low/);
    assert.equal(await card.getByTestId('action-door').count(), 0, 'door is no longer a button');
    assert.equal(runs().length, 3, 'door did not run again');
    assert.equal(prompts.length, 1, 'reconnected without a chooser');
});

step('5. an app link from the camera app pairs; the fragment goes at once; a used code and bad pastes are refused', async () => {
    const added = JSON.parse(await daemon.cli(['--json', 'pair', 'add', 'bob-phone', '--actions', 'lights', '--no-qr']));
    // The CLI has no owner's browser: the link names the Pi's own host. This test
    // cannot resolve that name, so it opens the same path on 127.0.0.1.
    const link = new URL(added.app_uri);
    assert.equal(link.pathname, '/app/');
    assert.match(link.hash, /^#v=2&pi=[0-9a-f]{32}&pk=[0-9a-f]{64}&name=kitchen-pi&dev=[0-9a-f]{32}&code=[A-Z2-7]{26}&alg=SHA1&digits=6&period=30&label=bob-phone$/);
    const bob = /[#&]dev=([0-9a-f]{32})/.exec(link.hash)[1];
    const code = /[#&]code=([A-Z2-7]{26})/.exec(link.hash)[1];
    const appLink = `${daemon.httpsOrigin}/app/${link.hash}`;
    await reloadPhone(appLink);
    assert.equal(await phone.evaluate(() => location.hash), '', 'the fragment with the code is gone');
    assert.ok(!(await phone.evaluate(() => location.href)).includes(code));
    await phone.getByTestId('pending').getByTestId('pair').click();
    await cardOf(bob).waitFor({ timeout: 60000 });
    assert.equal(await cardOf(bob).getByTestId('pi-label').textContent(), 'bob-phone');
    assert.equal(prompts.length, 2, 'pairing asks the chooser (a gesture, a new Pi)');

    // The same link again: the code was used.
    await reloadPhone(appLink);
    const pending = phone.getByTestId('pending');
    await pending.getByTestId('pair').click();
    await pending.locator('[data-testid="result"][data-code]').waitFor({ timeout: 60000 });
    assert.equal(await pending.getByTestId('result').getAttribute('data-code'), 'pair-code_used');
    assert.match(await pending.textContent(), /already used[\s\S]*new code/);
    assert.equal(await pending.getByTestId('pair').count(), 0, 'no retry with a spent code');
    await shot('app-code-used');
    await assertAccessible('a refused pairing');
    await pending.getByTestId('pair-cancel').click();

    // A pasted link that is not a pairing names the field and never echoes the code.
    await phone.getByTestId('add-toggle').click();
    await phone.getByTestId('paste').fill(added.app_uri.replace(/&dev=[0-9a-f]{32}/, '&dev=zz'));
    await phone.getByTestId('paste-submit').click();
    await phone.getByTestId('banner').filter({ hasText: 'dev: expected 32 hex digits' }).waitFor();
    assert.ok(!(await phone.getByTestId('banner').textContent()).includes(code));
    assert.equal(await phone.getByTestId('paste').inputValue(), '', 'the pasted text is cleared');
    await phone.getByTestId('paste').fill(added.app_uri.replace('#v=2', '#v=1'));
    await phone.getByTestId('paste-submit').click();
    await phone.getByTestId('banner').filter({ hasText: 'expected 2' }).waitFor();
});

step('6. the app scans a pairing QR code with the camera', async () => {
    await owner.goto(`${daemon.httpsOrigin}/pair`);
    await owner.getByTestId('pair-name').fill('carol-phone');
    await owner.getByTestId('pair-action-door').check();
    await Promise.all([owner.waitForURL(/\/pair$/), owner.getByTestId('pair-submit').click()]);
    const qrPng = await owner.getByTestId('pair-qr').locator('svg').screenshot();
    fs.writeFileSync(cameraFile, grayToY4m(decodePng(qrPng)));

    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: PHONE, isMobile: true });
    await ctx.grantPermissions(['camera'], { origin: daemon.httpsOrigin });
    const page = await ctx.newPage();
    await page.goto(`${daemon.httpsOrigin}/app/`);
    await page.getByTestId('scan-camera').click();
    await page.getByTestId('pending').filter({ hasText: '“carol-phone”' }).waitFor();
    assert.equal(await page.getByTestId('camera').isHidden(), true, 'the camera is closed after the scan');
    await ctx.close();
});

step('7. after the owner revokes it, the reloaded app reconnects without a chooser and is refused', async () => {
    await daemon.cli(['pair', 'revoke', device.id]);
    await reloadPhone(`${daemon.httpsOrigin}/app/`);
    const gattBefore = gattLog.length;
    const chooserBefore = prompts.length;
    const card = cardOf(device.id);
    const result = await tapAndWait(card, 'action-lights');
    assert.equal(await result.getAttribute('data-code'), 'unauthenticated', await result.textContent());
    assert.match(await result.textContent(), /Refused: “lights” did not run/);
    assert.match(await result.textContent(), /Unauthenticated answer “revoked”/);
    assert.equal(prompts.length, chooserBefore, 'no chooser: the app got the Pi back from getDevices()');
    assert.match(gattLog.slice(gattBefore).join('\n'), /^gatt connection/, 'a new connection after the reload');
    assert.deepEqual(runsOf('lights'), ["Alice's phone high", "Alice's phone low"], 'nothing more ran');
    const audit = JSON.parse(await daemon.cli(['log', '--json', '--device', device.id]));
    assert.equal(audit[0].status, 'revoked', JSON.stringify(audit[0]));
    await shot('app-refused');
    await assertAccessible('a refusal');
});
