// SPDX-License-Identifier: GPL-3.0-or-later
// What the browser tests share beside daemon.mjs: Debian's headless Chromium with the
// flags of a closed network, the owner's password and sign-in, steps that run in order,
// the screenshot folder and the teardown (browser, daemon, kept files, documented
// screenshots), and the environment of the Python helpers (tests/pylib on PYTHONPATH).

import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { WAIT_MS } from './daemon.mjs';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = path.resolve(HERE, '..', '..');
export const DOC_SHOTS = path.join(SOURCE_DIR, 'docs', 'screenshots');
export const PASSWORD = 'correct horse battery staple';
export const PHONE = { width: 390, height: 844 };

/** The environment of a Python child that imports the test library (bzs_testlib). */
export function pylibEnv(extra = {}) {
    const pylib = path.join(SOURCE_DIR, 'tests', 'pylib');
    const rest = (process.env.PYTHONPATH || '').split(path.delimiter).filter((p) => p && p !== pylib);
    return { ...process.env, PYTHONPATH: [pylib, ...rest].join(path.delimiter), ...extra };
}

/**
 * Steps of one scenario that share a daemon and a browser and run in order: a step
 * after a failed one fails too, saying so. `failed` names the failed step ('setup'
 * while `before` runs); onFailure(error) adds context to the report.
 */
export class Steps {
    constructor(onFailure) {
        this.failed = null;
        this.onFailure = onFailure;
        this.step = this.step.bind(this);
    }

    step(name, fn) {
        test(name, async () => {
            if (this.failed) throw new Error(`not run: the earlier step "${this.failed}" failed`);
            try {
                await fn();
            } catch (e) {
                this.failed = name;
                await this.onFailure(e);
                throw e;
            }
        });
    }
}

/** $BZS_SCREENSHOT_DIR, else <$BZS_BIN_DIR or tests/browser/output>/<name>, created. */
export function screenshotDir(name) {
    const dir = process.env.BZS_SCREENSHOT_DIR ||
                path.join(process.env.BZS_BIN_DIR || path.join(HERE, 'output'), name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
}

/** The daemon with the owner's password set, started. */
export async function startDaemon(daemon) {
    await daemon.writeConfig();
    await daemon.cli(['admin', 'passwd', '--stdin'], `${PASSWORD}\n`);
    await daemon.start();
    return daemon;
}

/** Debian's Chromium, headless; `args` add to the flags of a closed network. */
export function launchChromium(args = []) {
    return chromium.launch({
        executablePath: '/usr/bin/chromium',
        headless: true,
        timeout: WAIT_MS,
        // No background traffic: this network is closed, and the UI must not need any.
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update',
               '--disable-sync', ...args],
    });
}

/** A browser context for the self-signed daemon (the tests check its fingerprint). */
export async function newContext(browser, options) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, ...options });
    context.setDefaultTimeout(WAIT_MS);
    return context;
}

/** The owner signs in to the web UI on `page` and lands on the dashboard. */
export async function signIn(page, origin) {
    await page.goto(`${origin}/login`);
    await page.getByTestId('login-password').fill(PASSWORD);
    await Promise.all([page.waitForURL(`${origin}/`), page.getByTestId('login-submit').click()]);
}

/**
 * Teardown: closes the browser, stops the daemon (if still running) and then what
 * `afterDaemon` stops; removes the daemon's files unless a step failed or it did not
 * exit 0; with BZS_UPDATE_SCREENSHOTS=1 and no failure, copies the `documented`
 * screenshots to docs/screenshots/.
 */
export async function teardown({ browser, daemon, afterDaemon, failed, shotDir, documented }) {
    if (browser) await browser.close();
    const exit = daemon ? await daemon.stop() : null;
    if (afterDaemon) await afterDaemon();
    if (daemon) {
        if (!failed && exit && exit.code === 0) daemon.removeFiles();
        else console.error(`daemon files kept in ${daemon.dir} (exit ${JSON.stringify(exit)})`);
    }
    if (process.env.BZS_UPDATE_SCREENSHOTS === '1' && !failed) {
        fs.mkdirSync(DOC_SHOTS, { recursive: true });
        for (const name of documented) {
            fs.copyFileSync(path.join(shotDir, `${name}.png`), path.join(DOC_SHOTS, `${name}.png`));
        }
        console.error(`copied ${documented.length} screenshots to ${DOC_SHOTS}`);
    }
}
