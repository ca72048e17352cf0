// SPDX-License-Identifier: GPL-3.0-or-later
// Starts the real bluezscriptd for the browser tests: a private folder with its
// config, state and actions, the web UI on loopback only, BLE off. Readiness is read
// from the daemon's own log lines (no sleeps), every wait has a bound.

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

export const WAIT_MS = 30000; // bound of every single wait; generous for a loaded 2-core box

/** The build folder holding bluezscriptd and bluezscript (BZS_BIN_DIR), checked. */
export function binDir() {
    const dir = process.env.BZS_BIN_DIR;
    if (!dir) {
        throw new Error('set BZS_BIN_DIR to the build folder holding bluezscriptd and ' +
                        'bluezscript (ctest does)');
    }
    for (const name of ['bluezscriptd', 'bluezscript']) {
        const file = path.join(dir, name);
        try {
            fs.accessSync(file, fs.constants.X_OK);
        } catch {
            throw new Error(`${file} is missing or not executable: build the targets ` +
                            'bluezscriptd and bluezscript first');
        }
    }
    return dir;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it). */
export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

/** Runs a command; resolves {code, stdout, stderr} (never rejects on a non-zero exit). */
export function run(file, args, { env, input } = {}) {
    return new Promise((resolve, reject) => {
        const child = execFile(file, args, { env, timeout: WAIT_MS, maxBuffer: 1 << 24 },
                               (err, stdout, stderr) => {
                                   if (err && typeof err.code !== 'number') {
                                       reject(new Error(`${file} ${args.join(' ')}: ${err.message}`));
                                       return;
                                   }
                                   resolve({ code: err ? err.code : 0, stdout, stderr });
                               });
        if (input !== undefined) child.stdin.end(input);
    });
}

/** SHA-256 of the certificate the server presents, as lowercase hex without colons. */
export function peerFingerprint(host, port) {
    return new Promise((resolve, reject) => {
        // Not verified on purpose: the point is to compare the fingerprint ourselves.
        const sock = tls.connect({ host, port, rejectUnauthorized: false, servername: undefined },
                                 () => {
                                     const fp = sock.getPeerCertificate().fingerprint256 || '';
                                     sock.end();
                                     resolve(fp.replace(/:/g, '').toLowerCase());
                                 });
        sock.setTimeout(WAIT_MS, () => sock.destroy(new Error('TLS handshake timed out')));
        sock.once('error', reject);
    });
}

const ACTIONS = {
    // The web UI's "run now" runs it; its output names the transport it was given.
    hello: {
        script: '#!/bin/sh\necho "hello from $BLUEZSCRIPT_TRANSPORT"\n',
        meta: 'description = "Say hello (browser test action)"\ntimeout = 5\n',
    },
    garage: {
        script: '#!/bin/sh\necho "garage door pulsed"\n',
        meta: 'description = "Open or close the garage door"\ntimeout = 5\n',
    },
};

/**
 * One daemon over a private folder. start() / stop(); cli() runs the real CLI on it.
 * Options: `actions` (more actions, same shape as ACTIONS), `web` (lines added to
 * [web]), `extraConfig` (more tables), `bus` (a private D-Bus address: BLE is then
 * enabled on hci0 of the fake org.bluez there, and start() waits for advertising).
 */
export class Daemon {
    constructor(options = {}) {
        this.options = options;
        this.bin = binDir();
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bzs-browser-'));
        fs.chmodSync(this.dir, 0o700);
        this.config = path.join(this.dir, 'bluezscript.toml');
        this.actionsDir = path.join(this.dir, 'actions');
        this.logFile = path.join(this.dir, 'bluezscriptd.log');
        this.lines = [];
        this.waiters = [];
        this.proc = null;
        this.exit = null;
        fs.mkdirSync(this.actionsDir, { mode: 0o700 });
        for (const [name, a] of Object.entries({ ...ACTIONS, ...(options.actions || {}) })) {
            fs.writeFileSync(path.join(this.actionsDir, name), a.script, { mode: 0o700 });
            fs.chmodSync(path.join(this.actionsDir, name), 0o700); // umask-proof
            fs.writeFileSync(path.join(this.actionsDir, `${name}.toml`), a.meta, { mode: 0o600 });
        }
    }

    get env() {
        const env = { ...process.env, BLUEZSCRIPT_CONFIG: this.config };
        delete env.JOURNAL_STREAM; // plain "bluezscriptd: level: ..." lines on stderr
        delete env.NOTIFY_SOCKET;
        if (this.options.bus) env.DBUS_SYSTEM_BUS_ADDRESS = this.options.bus;
        return env;
    }

    /** Writes the config with two ports picked now. */
    async writeConfig() {
        this.httpsPort = await freePort();
        do {
            this.httpPort = await freePort();
        } while (this.httpPort === this.httpsPort);
        fs.writeFileSync(this.config, [
            '# Written by tests/browser/daemon.mjs',
            '[daemon]',
            'state_dir = "state"',
            'actions_dir = "actions"',
            'pi_name = "kitchen-pi"',
            'log_level = "debug"',
            '[ble]',
            ...(this.options.bus ? ['enabled = true', 'adapter = "hci0"'] : ['enabled = false']),
            ...(this.options.ble || []),
            '[web]',
            'https_address = "127.0.0.1"',
            `https_port = ${this.httpsPort}`,
            'http_address = "127.0.0.1"',
            `http_port = ${this.httpPort}`,
            ...(this.options.web || []),
            ...(this.options.extraConfig || []),
            '',
        ].join('\n'), { mode: 0o600 });
        this.httpsOrigin = `https://127.0.0.1:${this.httpsPort}`;
        this.httpOrigin = `http://127.0.0.1:${this.httpPort}`;
    }

    /** The real CLI on this config; rejects with its output when it fails. */
    async cli(args, input) {
        const r = await run(path.join(this.bin, 'bluezscript'), args, { env: this.env, input });
        if (r.code !== 0) {
            throw new Error(`bluezscript ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
        }
        return r.stdout;
    }

    /** Starts bluezscriptd and waits for its "web: serving https://..." and "ready" lines. */
    async start() {
        const log = fs.createWriteStream(this.logFile);
        this.proc = spawn(path.join(this.bin, 'bluezscriptd'), [], {
            env: this.env, stdio: ['ignore', 'ignore', 'pipe'],
        });
        this.exited = new Promise((resolve) => {
            this.proc.once('exit', (code, signal) => {
                this.exit = { code, signal };
                this._notify();
                resolve(this.exit);
            });
        });
        let partial = '';
        this.proc.stderr.setEncoding('utf8');
        this.proc.stderr.on('data', (chunk) => {
            log.write(chunk);
            const parts = (partial + chunk).split('\n');
            partial = parts.pop();
            this.lines.push(...parts);
            this._notify();
        });
        this.proc.stderr.once('end', () => log.end());
        const https = await this.waitFor(
            new RegExp(`web: serving https://127\\.0\\.0\\.1:${this.httpsPort}/`));
        await this.waitFor(/ready; devices paired: \d+/);
        // With BLE: the application, advertisement and agent are registered.
        if (this.options.bus) await this.waitFor(/BLE: advertising on hci0, \d+ devices? connected$/);
        const fp = this.lines.map((l) => /SHA-256 fingerprint ([0-9A-Fa-f:]+)/.exec(l))
                       .find(Boolean);
        this.loggedFingerprint = fp ? fp[1].replace(/:/g, '').toLowerCase() : null;
        return https;
    }

    _notify() {
        for (const w of this.waiters.slice()) w();
    }

    /**
     * Resolves the first log line matching `re` (from line `from`); rejects if the
     * daemon exits, logs that the web UI did not start, or WAIT_MS passes.
     */
    waitFor(re, from = 0) {
        return new Promise((resolve, reject) => {
            const check = () => {
                const bad = this.lines.find((l) => l.includes('web UI not started'));
                const hit = this.lines.slice(from).find((l) => re.test(l));
                let err = null;
                if (hit) {
                    done();
                    resolve(hit);
                    return;
                }
                if (bad) err = new Error(`bluezscriptd: ${bad}`);
                else if (this.exit) err = new Error(`bluezscriptd exited (${JSON.stringify(this.exit)}) before logging ${re}`);
                if (err) {
                    done();
                    reject(new Error(`${err.message}\n${this.logTail()}`));
                }
            };
            const timer = setTimeout(() => {
                done();
                reject(new Error(`no log line ${re} from bluezscriptd in ${WAIT_MS} ms\n${this.logTail()}`));
            }, WAIT_MS);
            const done = () => {
                clearTimeout(timer);
                this.waiters = this.waiters.filter((w) => w !== check);
            };
            this.waiters.push(check);
            check();
        });
    }

    logTail(n = 40) {
        return `--- bluezscriptd stderr (${this.logFile}, last ${n} lines) ---\n` +
               this.lines.slice(-n).join('\n');
    }

    /** SIGTERM, then waits for the exit; resolves {code, signal}. */
    async stop() {
        if (!this.proc) return null;
        if (!this.exit) {
            this.proc.kill('SIGTERM');
            const timer = setTimeout(() => this.proc.kill('SIGKILL'), WAIT_MS);
            await this.exited;
            clearTimeout(timer);
        }
        return this.exit;
    }

    removeFiles() {
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}
