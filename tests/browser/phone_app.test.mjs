// SPDX-License-Identifier: GPL-3.0-or-later
// The phone app (clients/web/dist) end to end in Debian's headless Chromium: the
// page talks Web Bluetooth to a peripheral emulated by Chromium's DevTools
// BluetoothEmulation domain, and every GATT read and write of that peripheral is
// answered by the real bluezscriptd, through gatt_bridge.py (a central on hci1 of the
// fake org.bluez on a private D-Bus). The owner pairs in the real web UI; the phone
// reads the QR code from a picture of it, triggers an action that runs on the Pi
// (it writes a file), sees the result; after the owner revokes it, the phone is
// refused, reconnecting without a device chooser.
//
// Chromium 156's emulation cannot send notifications, so the app takes its answers by
// reading Result (its fallback); notifications and reassembly are covered by the
// app's unit tests (spec/vectors, and clients/web/tests/unit/ble.test.mjs).
//
// Screenshots go to $BZS_SCREENSHOT_DIR (default $BZS_BIN_DIR/phone_app_screenshots);
// with BZS_UPDATE_SCREENSHOTS=1 the documented ones are copied to docs/screenshots/.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
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
const DOCUMENTED = ['app-empty', 'app-paired', 'app-result-ok', 'app-refused'];
const PI_NAME = 'kitchen-pi';
const EMULATED = '0A:00:00:00:00:42'; // upper case: Chromium matches addresses as written

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

async function shot(name) {
    const file = path.join(shotDir, `${name}.png`);
    await phone.screenshot({ path: file, fullPage: true, animations: 'disabled' });
    return file;
}

const runsFile = () => path.join(daemon.dir, 'door.runs');
const runs = () => (fs.existsSync(runsFile()) ? fs.readFileSync(runsFile(), 'utf8').trim().split('\n') : []);

before(async () => {
    steps.failed = 'setup';
    if (!fs.existsSync(path.join(APP_DIR, 'index.html'))) {
        throw new Error(`${APP_DIR}/index.html is missing: build the app first (make app)`);
    }
    shotDir = screenshotDir('phone_app_screenshots');
    daemon = new Daemon({
        bus: 'pending',
        actions: {
            // Proves it ran: one line per run, naming the device and the transport.
            door: {
                script: '#!/bin/sh\necho "$BLUEZSCRIPT_DEVICE_NAME via $BLUEZSCRIPT_TRANSPORT" >> "$(dirname "$0")/../door.runs"\n' +
                        'echo "front door unlocked"\n',
                meta: 'description = "Unlock the front door (phone app test)"\ntimeout = 10\n',
            },
        },
        ble: ['require_bonding = false'],
        web: [`app_dir = "${APP_DIR}"`],
        // 15 s TOTP steps: the app waits for a fresh step after an accepted command.
        extraConfig: ['[security]', 'totp_period_seconds = 15'],
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
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the app is ${overflow}px wider than a 390px screen`);
});

step('2. the owner pairs a phone in the web UI; the phone reads the QR code from a picture', async () => {
    await signIn(owner, daemon.httpsOrigin);
    await owner.goto(`${daemon.httpsOrigin}/pair`);
    await owner.getByTestId('pair-name').fill("Alice's phone");
    await owner.getByTestId('pair-action-door').check();
    await Promise.all([owner.waitForURL(/\/pair$/), owner.getByTestId('pair-submit').click()]);
    const uri = (await owner.getByTestId('pair-uri').textContent()).trim();
    // The owner used 127.0.0.1 (loopback, useless to a phone): the Pi's own name is used.
    assert.match(uri, new RegExp(`^https://[^/]+\\.[^/]+:${daemon.httpsPort}/app/#v=1&pi=[0-9a-f]{32}&name=${PI_NAME}&`));
    assert.match(uri, /&actions=door$/);
    assert.doesNotMatch(uri, /127\.0\.0\.1/);
    device.pi = /[#&]pi=([0-9a-f]{32})/.exec(uri)[1];
    device.id = /[#&]dev=([0-9a-f]{32})/.exec(uri)[1];
    const qrPng = path.join(shotDir, 'pairing-qr.png');
    await owner.getByTestId('pair-qr').screenshot({ path: qrPng });

    await phone.getByTestId('scan-file').setInputFiles(qrPng);
    const card = phone.getByTestId(`pi-${device.pi}`);
    await card.waitFor();
    assert.equal(await card.getByTestId('pi-name').textContent(), PI_NAME);
    assert.equal(await card.getByTestId('pi-label').textContent(), "Alice's phone");
    assert.match(await phone.getByTestId('banner').textContent(), /Paired with kitchen-pi as “Alice's phone”/);
    assert.equal(await card.getByTestId('action-door').textContent(), 'door');
    assert.match(await phone.getByTestId('footer').textContent(), /QR decoder: (jsQR|BarcodeDetector)/);
    // What IndexedDB holds: non-extractable keys, no secret.
    const stored = await phone.evaluate(() => new Promise((resolve, reject) => {
        const open = indexedDB.open('bluezscript');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
            const req = open.result.transaction('pairings').objectStore('pairings').getAll();
            req.onsuccess = () => resolve(req.result.map((r) => ({
                keys: Object.fromEntries(Object.entries(r.keys).map(([k, v]) => [k, { type: v.type, extractable: v.extractable, alg: v.algorithm.name, usages: v.usages }])),
                fields: Object.keys(r).sort(),
                json: JSON.stringify(r),
            })));
            req.onerror = () => reject(req.error);
        };
    }));
    assert.equal(stored.length, 1);
    for (const k of Object.values(stored[0].keys)) {
        assert.deepEqual([k.type, k.extractable, k.alg], ['secret', false, 'HMAC']);
    }
    assert.ok(!stored[0].fields.includes('secret'), stored[0].fields.join(','));
    const secret = /[#&]secret=([A-Z2-7]+)/.exec(uri)[1];
    assert.ok(!stored[0].json.includes(secret));
    await shot('app-paired');
});

step('3. one tap: the chooser picks the Pi, the action runs on the daemon, the page shows its output', async () => {
    assert.deepEqual(runs(), []);
    const card = phone.getByTestId(`pi-${device.pi}`);
    await card.getByTestId('action-door').click();
    const result = card.getByTestId('result');
    await phone.waitForFunction((id) => document.querySelector(`[data-testid="pi-${id}"] [data-testid="result"][data-code]`),
                                device.pi, { timeout: 60000 });
    assert.equal(await result.getAttribute('data-code'), 'ok', await result.textContent());
    assert.match(await result.textContent(), /Done: door/);
    assert.match(await result.textContent(), /front door unlocked/);
    assert.deepEqual(runs(), ["Alice's phone via ble"], 'the action ran once, for this device, over BLE');
    assert.equal(prompts.length, 1, 'one device chooser');
    assert.deepEqual(prompts[0].devices.map((d) => d.id.toUpperCase()), [EMULATED]);
    // The daemon's audit log has the accepted command.
    const audit = JSON.parse(await daemon.cli(['log', '--json', '--device', device.id]));
    assert.equal(audit[0].status, 'ok', JSON.stringify(audit[0]));
    assert.equal(audit[0].action, 'door');
    // The exchange used Info, Challenge, Command and then Result reads (no notifications here).
    const ops = gattLog.join('\n');
    assert.match(ops, /read 2901[\s\S]*read 2902[\s\S]*write 2903[\s\S]*read 2904/);
    await shot('app-result-ok');
});

step('4. a link opened from the camera imports the pairing and leaves no secret in the address bar; bad pastes are refused', async () => {
    const added = JSON.parse(await daemon.cli(['--json', 'pair', 'add', 'bob-phone', '--actions', 'door', '--no-qr']));
    // The CLI has no owner's browser: the link names the Pi's own host. This test
    // cannot resolve that name, so it opens the same path on 127.0.0.1.
    const link = new URL(added.uri);
    assert.equal(link.pathname, '/app/');
    assert.match(link.hash, /^#v=1&pi=[0-9a-f]{32}&name=kitchen-pi&dev=[0-9a-f]{32}&secret=[A-Z2-7]+&alg=SHA1&digits=6&period=15&label=bob-phone&actions=door$/);
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: PHONE, isMobile: true });
    const page = await ctx.newPage();
    await page.goto(`${daemon.httpsOrigin}/app/${link.hash}`);
    await page.getByTestId(`pi-${device.pi}`).getByTestId('pi-label').filter({ hasText: 'bob-phone' }).waitFor();
    assert.equal(await page.evaluate(() => location.hash), '', 'the fragment with the secret is gone');
    assert.ok(!(await page.evaluate(() => location.href)).includes('secret'));
    // A pasted link that is not a pairing names the problem and never echoes the secret.
    await page.getByTestId('add-toggle').click();
    await page.getByTestId('paste').fill(added.uri.replace(/&dev=[0-9a-f]{32}/, '&dev=zz'));
    await page.getByTestId('paste-submit').click();
    await page.getByTestId('banner').filter({ hasText: "'dev' must be 32 hex digits" }).waitFor();
    assert.ok(!(await page.getByTestId('banner').textContent()).includes(/secret=([A-Z2-7]+)/.exec(added.uri)[1]));
    assert.equal(await page.getByTestId('paste').inputValue(), '', 'the pasted text is cleared');
    await ctx.close();
});


step('5. the app scans a pairing QR code with the camera', async () => {
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
    await page.getByTestId(`pi-${device.pi}`).getByTestId('pi-label').filter({ hasText: 'carol-phone' }).waitFor();
    assert.equal(await page.getByTestId('camera').isHidden(), true, 'the camera is closed after the scan');
    await ctx.close();
});

step('6. after the owner revokes it, the reloaded app reconnects without a chooser and is refused', async () => {
    await daemon.cli(['pair', 'revoke', device.id]);
    await phone.reload({ waitUntil: 'load' });
    await phone.locator('body[data-ready="1"]').waitFor();
    await emu.present();
    const gattBefore = gattLog.length;
    const card = phone.getByTestId(`pi-${device.pi}`);
    await card.getByTestId('action-door').click();
    await phone.waitForFunction((id) => document.querySelector(`[data-testid="pi-${id}"] [data-testid="result"][data-code]`),
                                device.pi, { timeout: 60000 });
    const result = card.getByTestId('result');
    assert.equal(await result.getAttribute('data-code'), 'unauthenticated', await result.textContent());
    assert.match(await result.textContent(), /Refused: “door” did not run/);
    assert.match(await result.textContent(), /revoked/);
    assert.equal(prompts.length, 1, 'no second chooser: the app got the Pi back from getDevices()');
    assert.match(gattLog.slice(gattBefore).join('\n'), /^gatt connection/, 'a new connection after the reload');
    assert.deepEqual(runs(), ["Alice's phone via ble"], 'nothing ran');
    const audit = JSON.parse(await daemon.cli(['log', '--json', '--device', device.id]));
    assert.equal(audit[0].status, 'revoked', JSON.stringify(audit[0]));
    await shot('app-refused');
});
