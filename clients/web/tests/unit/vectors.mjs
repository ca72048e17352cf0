// SPDX-License-Identifier: GPL-3.0-or-later
// Loads spec/vectors/*.json (produced by the C++ side, used unchanged) and small helpers.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const VECTORS = path.resolve(HERE, '..', '..', '..', '..', 'spec', 'vectors');

export function vectors(name) {
    return JSON.parse(fs.readFileSync(path.join(VECTORS, `${name}.json`), 'utf8'));
}

export const hex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
export const toHex = (b) => Buffer.from(b).toString('hex');
