// SPDX-License-Identifier: GPL-3.0-or-later
// The owner's web UI in a real headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core) against the real bluezscriptd: sign in, add a device and decode the
// pairing QR code on the page (zbarimg), reload it and get a new code, revoke the
// device, find the audit row, run an action, sign out. axe-core checks each page
// for accessibility problems.
// The steps share one daemon and one browser and run in order; a step after a failed
// one fails too, saying so.
//
// Screenshots go to $BZS_SCREENSHOT_DIR (default $BZS_BIN_DIR/web_browser_screenshots);
// with BZS_UPDATE_SCREENSHOTS=1 the documented ones are also copied to docs/screenshots/.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before } from 'node:test';

import { Daemon, WAIT_MS, peerFingerprint, run } from './daemon.mjs';
import {
    PASSWORD, PHONE, Steps, launchChromium, newContext, screenshotDir, startDaemon, teardown,
} from './harness.mjs';

const DESKTOP = { width: 1280, height: 800 };
// Copied to docs/screenshots/ by BZS_UPDATE_SCREENSHOTS=1 (the README shows them).
const DOCUMENTED = ['login', 'dashboard', 'dashboard-phone', 'pairing', 'pairing-phone',
                    'devices', 'revoke-confirm', 'audit', 'actions'];
const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let daemon;
let browser;
let context;
let page;
let shotDir;
const requests = [];     // every URL the browser asked for
const documents = [];    // {url, status, headers} of every page load
const device = {};       // the device paired in step 3

/** Steps in order; a failed one adds the daemon's log to its message. */
const steps = new Steps((e) => {
    if (daemon) e.message += `\n${daemon.logTail()}`;
});
const { step } = steps;

async function shot(name, options = {}) {
    const file = path.join(shotDir, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true, animations: 'disabled', ...options });
    return file;
}

const testid = (id) => page.getByTestId(id);

/** axe-core on the page as it is (evaluated over CDP: the CSP allows no inline script). */
async function assertAccessible(what) {
    await page.evaluate(AXE);
    const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] }))
        .violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`));
    assert.deepEqual(violations, [], `axe-core on ${what}`);
}

/** The one-time code of a v2 link. */
const codeOf = (link) => {
    const m = /[?&#]code=([A-Za-z2-7]{26})(?:&|$)/.exec(link);
    assert.ok(m, `no code= in ${link}`);
    return m[1];
};

async function text(id) {
    return (await testid(id).textContent()).trim();
}

/** Navigates and returns the final response; `expectPath` is the path it must end on. */
async function go(url, expectPath) {
    const resp = await page.goto(url, { waitUntil: 'load', timeout: WAIT_MS });
    if (expectPath !== undefined) assert.equal(new URL(page.url()).pathname, expectPath);
    return resp;
}

/** Clicks and waits for the navigation it causes (form submits, links). */
async function clickAndWait(id, urlPattern) {
    await Promise.all([
        page.waitForURL(urlPattern, { waitUntil: 'load', timeout: WAIT_MS }),
        testid(id).click(),
    ]);
}

before(async () => {
    steps.failed = 'setup'; // cleared at the end of this hook
    shotDir = screenshotDir('web_browser_screenshots');
    daemon = await startDaemon(new Daemon());
    browser = await launchChromium();
    // The certificate is self-signed: step 1 checks its fingerprint instead.
    context = await newContext(browser, { viewport: DESKTOP });
    page = await context.newPage();
    page.on('request', (r) => requests.push(r.url()));
    page.on('response', (r) => {
        if (r.request().resourceType() === 'document') {
            documents.push({ url: r.url(), status: r.status(), headers: r.headers() });
        }
    });
    steps.failed = null;
});

// The daemon is already stopped by step 9 unless it failed.
after(() => teardown({ browser, daemon, failed: steps.failed, shotDir, documented: DOCUMENTED }));

step('1. the HTTPS certificate is the one the daemon logged and the CLI reports', async () => {
    const served = await peerFingerprint('127.0.0.1', daemon.httpsPort);
    assert.match(served, /^[0-9a-f]{64}$/);
    assert.equal(daemon.loggedFingerprint, served, 'fingerprint in the daemon log');
    const status = JSON.parse(await daemon.cli(['--json', 'status']));
    assert.equal(status.cert_fingerprint_sha256.replace(/:/g, '').toLowerCase(), served);
    assert.equal(status.admin_password_set, true);
    assert.ok(status.web_urls.includes(`${daemon.httpsOrigin}/`), JSON.stringify(status.web_urls));
});

step('2. signed out, pages redirect to /login; a wrong password is refused; sign in',
     async () => {
         const resp = await go(`${daemon.httpsOrigin}/devices`, '/login');
         // The redirect itself answered 303.
         assert.equal((await resp.request().redirectedFrom().response()).status(), 303);
         await testid('login-form').waitFor();
         assert.equal(await testid('no-password').count(), 0, 'the password is set');
         await shot('login');

         await testid('login-password').fill('not the password');
         await clickAndWait('login-submit', /\/login$/);
         assert.equal(documents.at(-1).status, 401);
         assert.match(await text('error'), /Wrong password/);
         assert.equal((await context.cookies()).some((c) => c.name === 'bzs_session'), false);

         await go(`${daemon.httpsOrigin}/login`, '/login');
         await assertAccessible('the sign-in page');
         await testid('login-password').fill(PASSWORD);
         await clickAndWait('login-submit', `${daemon.httpsOrigin}/`);
         const session = (await context.cookies()).find((c) => c.name === 'bzs_session');
         assert.ok(session, 'a session cookie after sign-in');
         assert.equal(session.httpOnly, true);
         assert.equal(session.secure, true);
         assert.equal(session.sameSite, 'Strict');
         assert.match(await text('ble-summary'), /BLE disabled by configuration/);
         assert.equal(await text('action-count'), '2');
         assert.equal(await text('device-count'), '0');
         await assertAccessible('the dashboard');
         await shot('dashboard');
         await page.setViewportSize(PHONE);
         await shot('dashboard-phone');
         // On a phone the page must not scroll sideways.
         const overflow = await page.evaluate(
             () => document.documentElement.scrollWidth - document.documentElement.clientWidth);
         assert.ok(overflow <= 0, `the dashboard is ${overflow}px wider than a 390px screen`);
         await page.setViewportSize(DESKTOP);
     });

step('3. add a device: the QR code on the page decodes to the app link with a one-time code',
     async () => {
         await testid('nav-pair').click();
         await page.waitForURL(/\/pair$/);
         await assertAccessible('the pairing form');
         await testid('pair-name').fill("Alice's phone");
         await testid('pair-action-hello').check();
         await shot('pair-form');
         // The answer to the POST shows the code; its script then moves the address
         // bar to the device's pairing page.
         await clickAndWait('pair-submit', /\/devices\/[0-9a-f]{32}\/pairing$/);
         assert.equal(documents.at(-1).status, 200);
         assert.equal(new URL(documents.at(-1).url).pathname, '/pair', 'the code came from the POST');
         await testid('pair-qr').locator('svg').waitFor();
         const uri = await text('pair-uri');
         assert.match(uri, /^https:\/\/[^#]+\/app\/#v=2&/);
         assert.doesNotMatch(uri, /[?&#](secret|actions)=/);
         const canonical = await text('pair-uri-canonical');
         assert.match(canonical, /^bluezscript:\/\/pair\?v=2&/);
         assert.equal(codeOf(canonical), codeOf(uri));

         // Decode the code as a phone camera would: from pixels.
         const qrPng = path.join(shotDir, 'pairing-qr.png');
         await testid('pair-qr').screenshot({ path: qrPng });
         const z = await run('/usr/bin/zbarimg', ['--raw', '-q', qrPng]);
         assert.equal(z.code, 0, `zbarimg found no code in ${qrPng}: ${z.stderr}`);
         assert.equal(z.stdout.replace(/\n$/, ''), uri, 'the QR code holds the link shown');

         const dev = /[?&#]dev=([0-9a-fA-F]{32})(?:&|$)/.exec(uri);
         assert.ok(dev, `no dev= in ${uri}`);
         device.id = dev[1].toLowerCase();
         device.code = codeOf(uri);
         assert.equal(new URL(page.url()).pathname, `/devices/${device.id}/pairing`);
         const stored = JSON.parse(await daemon.cli(['--json', 'pair', 'list']));
         assert.equal(stored.length, 1, JSON.stringify(stored));
         assert.equal(stored[0].id.toLowerCase(), device.id);
         assert.equal(stored[0].name, "Alice's phone");
         assert.deepEqual(stored[0].actions, ['hello']);
         assert.equal(stored[0].state, 'pending');
         assert.equal(typeof stored[0].code_expires, 'number');
         // The code is shown once: it is not in the CLI's view of the device.
         assert.ok(!JSON.stringify(stored).includes(device.code));
         assert.match(await text('pair-state'), /Waiting for the phone/);
         assert.match(await text('pair-countdown'), /^\d+:\d\d$/);
         await assertAccessible('the pairing page');
         await shot('pairing');
         await page.setViewportSize(PHONE);
         await shot('pairing-phone');
         const overflow = await page.evaluate(
             () => document.documentElement.scrollWidth - document.documentElement.clientWidth);
         assert.ok(overflow <= 0, `the pairing page is ${overflow}px wider than a 390px screen`);
         await page.setViewportSize(DESKTOP);
     });

step('3b. reloading the pairing page shows the state, no code and no new device; a new code',
     async () => {
         // The script polls the state endpoint: every fetch carries the session.
         const states = [];
         const seen = (r) => {
             if (r.url().endsWith(`/api/v1/devices/${device.id}/pairing`)) states.push(r);
         };
         page.on('response', seen);
         await page.reload({ waitUntil: 'load' });
         assert.equal(new URL(page.url()).pathname, `/devices/${device.id}/pairing`);
         assert.equal(documents.at(-1).status, 200);
         assert.equal(await testid('pair-qr').count(), 0, 'a reload shows no QR code');
         assert.ok(!(await page.content()).includes(device.code), 'nor the code');
         assert.match(await text('pair-state'), /Waiting for the phone/);
         await page.waitForResponse((r) => r.url().endsWith(`/api/v1/devices/${device.id}/pairing`),
                                    { timeout: WAIT_MS });
         page.off('response', seen);
         const j = await states.at(-1).json();
         assert.equal(j.state, 'pending');
         assert.ok(!JSON.stringify(j).includes(device.code), 'the state endpoint has no code');
         await assertAccessible('the pairing page after a reload');
         assert.equal(JSON.parse(await daemon.cli(['--json', 'pair', 'list'])).length, 1);

         await clickAndWait('pair-new-code', /\/devices\/[0-9a-f]{32}\/pairing$/);
         await testid('pair-qr').locator('svg').waitFor();
         const renewed = codeOf(await text('pair-uri'));
         assert.notEqual(renewed, device.code, 'a new code');
         const stored = JSON.parse(await daemon.cli(['--json', 'pair', 'list']));
         assert.equal(stored.length, 1, 'a new code makes no new device');
         assert.equal(stored[0].state, 'pending');
         // Signed out, the state endpoint answers nothing.
         const anon = await browser.newContext({ ignoreHTTPSErrors: true });
         const r = await anon.request.get(`${daemon.httpsOrigin}/api/v1/devices/${device.id}/pairing`);
         assert.equal(r.status(), 401);
         await anon.close();
     });

step('4. the device is listed, then revoked after confirmation', async () => {
    await clickAndWait('pair-done', /\/devices$/);
    const row = testid(`device-row-${device.id}`);
    assert.equal(await row.getByTestId('device-name').textContent(), "Alice's phone");
    assert.match(await row.getByTestId('device-status').textContent(),
                 /^pending \(code expires \d\d:\d\d UTC\)$/);
    assert.equal(await testid(`device-new-code-${device.id}`).count(), 1);
    await assertAccessible('the devices list');
    await shot('devices');

    await clickAndWait(`device-edit-${device.id}`, new RegExp(`/devices/${device.id}$`));
    assert.equal(await testid('permission-hello').isChecked(), true);
    assert.equal(await testid('permission-garage').isChecked(), false);
    await clickAndWait('revoke-link', new RegExp(`/devices/${device.id}/revoke$`));
    await testid('revoke-form').waitFor();
    await assertAccessible('the revoke confirmation');
    await shot('revoke-confirm');
    // Cancel changes nothing.
    await clickAndWait('revoke-cancel', new RegExp(`/devices/${device.id}$`));
    assert.equal(JSON.parse(await daemon.cli(['--json', 'pair', 'list']))[0].revoked, false);
    await clickAndWait('revoke-link', new RegExp(`/devices/${device.id}/revoke$`));
    await clickAndWait('revoke-confirm', /\/devices\?msg=revoked$/);
    await testid('flash').waitFor();
    assert.match(await testid(`device-row-${device.id}`).getByTestId('device-status').textContent(),
                 /revoked/i);
    assert.equal(await testid(`device-edit-${device.id}`).count(), 0, 'no edit link once revoked');
    assert.equal(await testid(`device-new-code-${device.id}`).count(), 0, 'no new code once revoked');
    await shot('devices-revoked');
    const stored = JSON.parse(await daemon.cli(['--json', 'pair', 'list']));
    assert.equal(stored[0].revoked, true);
    assert.equal(typeof stored[0].revoked_at, 'number');
});

step('5. the audit log shows the revocation; "run now" runs an action', async () => {
    await go(`${daemon.httpsOrigin}/audit`, '/audit');
    await testid('audit-device').selectOption(device.id);
    await clickAndWait('audit-apply', /\/audit\?/);
    assert.equal(new URL(page.url()).searchParams.get('device'), device.id);
    const rows = await testid('audit-row').allTextContents();
    assert.ok(rows.length >= 1, 'at least one audit row for the device');
    for (const r of rows) assert.match(r, /Alice's phone/, 'the filter shows only this device');
    assert.ok(rows.some((r) => /revoked/.test(r) && /web/.test(r)),
              `a "revoked" row via web among: ${JSON.stringify(rows)}`);
    await assertAccessible('the audit log');
    await shot('audit');

    await testid('nav-actions').click();
    await page.waitForURL(/\/actions$/);
    const hello = testid('action-hello');
    assert.match(await hello.textContent(), /Say hello \(browser test action\)/);
    assert.match(await hello.textContent(), /none recorded/);
    await clickAndWait('run-hello', /\/actions\?msg=run-started$/);
    await testid('flash').waitFor();
    // The run finishes on the daemon's loop; the page has no push, so reload until
    // its result is listed (bounded).
    const deadline = Date.now() + WAIT_MS;
    while (await hello.locator('.status-ok').count() === 0) {
        assert.ok(Date.now() < deadline, `no finished run of hello listed: ${await hello.textContent()}`);
        await page.waitForTimeout(200);
        await page.reload({ waitUntil: 'load' });
    }
    assert.match(await hello.locator('li').first().textContent(), / web .* ok$/);
    await assertAccessible('the actions page');
    await shot('actions');
    const audit = JSON.parse(await daemon.cli(['--json', 'log']));
    const revokeRow = audit.find((a) => a.device_id === device.id && a.status === 'revoked');
    assert.ok(revokeRow, `the revocation in bluezscript log: ${JSON.stringify(audit)}`);
    assert.equal(revokeRow.transport, 'web');
    const runRow = audit.find((a) => a.action === 'hello' && a.transport === 'web');
    assert.ok(runRow, `an audit row of the web run: ${JSON.stringify(audit)}`);
    assert.equal(runRow.status, 'ok');
});

step('6. sign out: back at /login, and the old session cookie no longer works', async () => {
    const old = (await context.cookies()).find((c) => c.name === 'bzs_session');
    assert.ok(old);
    await clickAndWait('signout', /\/login$/);
    await testid('login-form').waitFor();
    await go(`${daemon.httpsOrigin}/audit`, '/login');
    // Replaying the old cookie by hand: the server ended the session, not just the browser.
    const r = await context.request.get(`${daemon.httpsOrigin}/devices`, {
        headers: { cookie: `bzs_session=${old.value}` }, maxRedirects: 0,
    });
    assert.equal(r.status(), 303);
    assert.equal(new URL(r.headers().location, daemon.httpsOrigin).pathname, '/login');
    const api = await context.request.get(`${daemon.httpsOrigin}/api/v1/session`, {
        headers: { cookie: `bzs_session=${old.value}` },
    });
    assert.equal(api.status(), 401);
});

step('7. the loopback HTTP listener serves the same UI', async () => {
    await go(`${daemon.httpOrigin}/`, '/login');
    assert.ok(page.url().startsWith(`${daemon.httpOrigin}/`), page.url());
    await testid('login-form').waitFor();
});

step('8. every page had the security headers and loaded nothing from elsewhere', async () => {
    assert.ok(documents.length >= 15, `only ${documents.length} page loads seen`);
    const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
                "frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
    // Playwright joins repeated headers with "\n": exactly one copy, with the right value.
    const values = (h, name) => (h[name] === undefined ? [] : h[name].split('\n'));
    for (const d of documents) {
        const where = `${d.status} ${d.url}`;
        for (const [name, want] of [['content-security-policy', CSP], ['x-frame-options', 'DENY'],
                                    ['x-content-type-options', 'nosniff'],
                                    ['referrer-policy', 'no-referrer'],
                                    ['cross-origin-opener-policy', 'same-origin']]) {
            const got = values(d.headers, name);
            assert.deepEqual(got, [want], `${name} on ${where}`);
        }
    }
    const allowed = [`${daemon.httpsOrigin}/`, `${daemon.httpOrigin}/`, 'data:'];
    const foreign = requests.filter((u) => !allowed.some((a) => u.startsWith(a)));
    assert.deepEqual(foreign, [], 'requests to anywhere but this daemon');
    assert.ok(requests.some((u) => u.endsWith('/static/app.css')));
    assert.ok(requests.some((u) => u.endsWith('/static/app.js')));
});

step('9. the daemon stops cleanly on SIGTERM', async () => {
    await browser.close();
    browser = null;
    const exit = await daemon.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(daemon.lines.some((l) => l.includes('web: stopped')), 'the web UI said it stopped');
});
