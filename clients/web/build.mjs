// SPDX-License-Identifier: GPL-3.0-or-later
// Builds the phone app into dist/ (static files for any HTTPS host, served by
// bluezscriptd at /app/): the bundled script, the service worker with its list of
// files to keep offline, the page, styles, manifest and PNG icons (drawn here, so
// no binary lives in the tree). `--node-only` compiles the modules the Node unit
// tests import into build/node/ instead. Nothing is downloaded.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

import * as esbuild from 'esbuild';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.join(HERE, 'dist');
const NODE_OUT = path.join(HERE, 'build', 'node');

async function buildNodeModules() {
    fs.rmSync(NODE_OUT, { recursive: true, force: true });
    await esbuild.build({
        entryPoints: ['src/protocol2.ts', 'src/storage.ts', 'src/errors.ts', 'src/ble.ts'].map((f) => path.join(HERE, f)),
        outdir: NODE_OUT,
        format: 'esm',
        platform: 'neutral',
        target: 'es2022',
        bundle: false,
        logLevel: 'warning',
    });
}

// --- PNG icons -------------------------------------------------------------

function crc32(buf) {
    let c = ~0;
    for (const b of buf) {
        c ^= b;
        for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    return ~c >>> 0;
}

function pngChunk(type, data) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
}

/** RGBA pixels -> PNG (8-bit, colour type 6, no interlace). */
function encodePng(size, rgba) {
    const raw = Buffer.alloc(size * (size * 4 + 1));
    for (let y = 0; y < size; y++) {
        raw[y * (size * 4 + 1)] = 0; // filter: none
        rgba.copy(raw, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
    }
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(size, 0);
    ihdr.writeUInt32BE(size, 4);
    ihdr[8] = 8;
    ihdr[9] = 6;
    return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        pngChunk('IHDR', ihdr),
        pngChunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
        pngChunk('IEND', Buffer.alloc(0)),
    ]);
}

/**
 * The icon in unit coordinates: a blue field (a rounded square, or full bleed for
 * the maskable icon) with a white rune-like "B" stroke and a play triangle.
 */
function iconCoverage(x, y, maskable) {
    const inRoundedSquare = (r) => {
        const dx = Math.max(Math.abs(x - 0.5) - (0.5 - r), 0);
        const dy = Math.max(Math.abs(y - 0.5) - (0.5 - r), 0);
        return dx * dx + dy * dy <= r * r;
    };
    const field = maskable ? true : inRoundedSquare(0.18);
    if (!field) return null;
    // Safe zone for maskable icons: draw the mark inside the central 60 %.
    const s = maskable ? 0.6 : 0.8;
    const u = (x - 0.5) / s + 0.5;
    const v = (y - 0.5) / s + 0.5;
    // Play triangle pointing right.
    const inTriangle = u >= 0.3 && u <= 0.78 && Math.abs(v - 0.5) <= (0.78 - u) * 0.62;
    // A ring around it.
    const d = Math.hypot(u - 0.5, v - 0.5);
    const inRing = d >= 0.40 && d <= 0.47;
    return inTriangle || inRing ? 'mark' : 'field';
}

function drawIcon(size, maskable) {
    const rgba = Buffer.alloc(size * size * 4);
    const SS = 4; // supersampling per axis: smooth edges
    const field = [0x1f, 0x5f, 0xbf];
    const mark = [0xff, 0xff, 0xff];
    for (let py = 0; py < size; py++) {
        for (let px = 0; px < size; px++) {
            let r = 0;
            let g = 0;
            let b = 0;
            let a = 0;
            for (let sy = 0; sy < SS; sy++) {
                for (let sx = 0; sx < SS; sx++) {
                    const c = iconCoverage((px + (sx + 0.5) / SS) / size, (py + (sy + 0.5) / SS) / size, maskable);
                    if (c === null) continue;
                    const col = c === 'mark' ? mark : field;
                    r += col[0];
                    g += col[1];
                    b += col[2];
                    a += 1;
                }
            }
            const o = (py * size + px) * 4;
            if (a > 0) {
                rgba[o] = Math.round(r / a);
                rgba[o + 1] = Math.round(g / a);
                rgba[o + 2] = Math.round(b / a);
            }
            rgba[o + 3] = Math.round((255 * a) / (SS * SS));
        }
    }
    return encodePng(size, rgba);
}

// --- the app -----------------------------------------------------------------

async function buildApp() {
    fs.rmSync(DIST, { recursive: true, force: true });
    fs.mkdirSync(path.join(DIST, 'icons'), { recursive: true });
    await esbuild.build({
        entryPoints: [path.join(HERE, 'src', 'main.ts')],
        outfile: path.join(DIST, 'app.js'),
        bundle: true,
        format: 'esm',
        platform: 'browser',
        target: ['chrome100', 'edge100', 'safari15'],
        minify: true,
        sourcemap: false,
        legalComments: 'eof',
        logLevel: 'warning',
    });
    for (const f of ['index.html', 'app.css', 'manifest.webmanifest']) {
        fs.copyFileSync(path.join(HERE, 'public', f), path.join(DIST, f));
    }
    fs.writeFileSync(path.join(DIST, 'icons', 'icon-192.png'), drawIcon(192, false));
    fs.writeFileSync(path.join(DIST, 'icons', 'icon-512.png'), drawIcon(512, false));
    fs.writeFileSync(path.join(DIST, 'icons', 'maskable-512.png'), drawIcon(512, true));

    // The service worker keeps exactly these files; its cache name changes with them.
    const files = ['./', 'index.html', 'app.js', 'app.css', 'manifest.webmanifest',
                   'icons/icon-192.png', 'icons/icon-512.png', 'icons/maskable-512.png'];
    const hash = crypto.createHash('sha256');
    for (const f of files.slice(1)) hash.update(f).update(fs.readFileSync(path.join(DIST, f)));
    const version = hash.digest('hex').slice(0, 16);
    await esbuild.build({
        entryPoints: [path.join(HERE, 'src', 'sw.ts')],
        outfile: path.join(DIST, 'sw.js'),
        bundle: true,
        format: 'iife',
        platform: 'browser',
        target: ['chrome100', 'edge100', 'safari15'],
        minify: true,
        define: { __BZS_FILES__: JSON.stringify(files), __BZS_VERSION__: JSON.stringify(version) },
        logLevel: 'warning',
    });
    const total = fs.readdirSync(DIST, { recursive: true })
        .map((f) => path.join(DIST, f))
        .filter((f) => fs.statSync(f).isFile())
        .reduce((n, f) => n + fs.statSync(f).size, 0);
    console.log(`built ${path.relative(process.cwd(), DIST) || DIST}/ (version ${version}, ${Math.round(total / 1024)} KiB)`);
}

if (process.argv.includes('--node-only')) {
    await buildNodeModules();
} else {
    await buildApp();
}
