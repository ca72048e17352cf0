// SPDX-License-Identifier: GPL-3.0-or-later
// The app's pairings in IndexedDB. A record holds the Pi's identity, the TOTP
// parameters and three non-extractable WebCrypto keys (protocol.deriveKeys): the raw
// secret is used once, at import, to derive them and is then wiped. IndexedDB stores
// CryptoKey objects by structured clone, extractable flag included, so nothing the
// page's script can read (or an XSS could exfiltrate) ever contains the secret's bytes.

import { deriveKeys, type DeviceKeys, type Pairing, type TotpParams, validActionName } from './protocol.js';

export const DB_NAME = 'bluezscript';
const DB_VERSION = 1;
const STORE = 'pairings';

/** One big button: an action and its fixed arguments. */
export interface Button {
    action: string;
    label: string;
    args: string[];
}

export interface PiRecord {
    /** piId + ':' + deviceId: a phone may hold one pairing per Pi and device id. */
    id: string;
    piId: string;
    piName: string;
    deviceId: string;
    label: string;
    totp: TotpParams;
    keys: DeviceKeys;
    /** The last counter sent (section 6.3); persisted before each send. */
    counter: number;
    buttons: Button[];
    /** BluetoothDevice.id of the Pi once chosen, to reconnect without a chooser. */
    bluetoothId: string;
    addedAt: number;
}

function promised<T>(req: IDBRequest<T>): Promise<T> {
    return new Promise((resolve, reject) => {
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
    });
}

function done(tx: IDBTransaction): Promise<void> {
    return new Promise((resolve, reject) => {
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
    });
}

export class PairingStore {
    private constructor(private readonly db: IDBDatabase) {}

    /** Opens (creating on first use) the database; `factory` is injectable for tests. */
    static open(factory: IDBFactory = indexedDB): Promise<PairingStore> {
        return new Promise((resolve, reject) => {
            const req = factory.open(DB_NAME, DB_VERSION);
            req.onupgradeneeded = () => {
                if (!req.result.objectStoreNames.contains(STORE)) {
                    req.result.createObjectStore(STORE, { keyPath: 'id' });
                }
            };
            req.onsuccess = () => resolve(new PairingStore(req.result));
            req.onerror = () => reject(req.error);
            req.onblocked = () => reject(new Error('the app is open in another tab with an older version; close it'));
        });
    }

    close(): void {
        this.db.close();
    }

    async list(): Promise<PiRecord[]> {
        const tx = this.db.transaction(STORE, 'readonly');
        const all = await promised(tx.objectStore(STORE).getAll() as IDBRequest<PiRecord[]>);
        return all.sort((a, b) => a.addedAt - b.addedAt);
    }

    async get(id: string): Promise<PiRecord | undefined> {
        const tx = this.db.transaction(STORE, 'readonly');
        return promised(tx.objectStore(STORE).get(id) as IDBRequest<PiRecord | undefined>);
    }

    async put(rec: PiRecord): Promise<void> {
        const tx = this.db.transaction(STORE, 'readwrite');
        tx.objectStore(STORE).put(rec);
        await done(tx);
    }

    async remove(id: string): Promise<void> {
        const tx = this.db.transaction(STORE, 'readwrite');
        tx.objectStore(STORE).delete(id);
        await done(tx);
    }

    /**
     * Changes one record inside a single readwrite transaction (so two taps cannot
     * hand out the same counter) and returns the stored result.
     */
    async update(id: string, change: (rec: PiRecord) => void): Promise<PiRecord> {
        const tx = this.db.transaction(STORE, 'readwrite');
        const os = tx.objectStore(STORE);
        const rec = await promised(os.get(id) as IDBRequest<PiRecord | undefined>);
        if (!rec) {
            tx.abort();
            throw new Error('this pairing was removed');
        }
        change(rec);
        os.put(rec);
        await done(tx);
        return rec;
    }

    /**
     * The counter for the next command, stored before it is sent (section 6.3): above
     * the last one and at least the time in milliseconds, so that it also stays above
     * anything sent before should the stored value ever be older.
     */
    async nextCounter(id: string, nowMs: number): Promise<number> {
        const rec = await this.update(id, (r) => {
            r.counter = Math.max(r.counter + 1, Math.floor(nowMs));
        });
        return rec.counter;
    }

    /**
     * Imports a parsed pairing: derives the non-extractable keys, wipes the secret's
     * bytes, and stores the record. Importing the same pairing again keeps the
     * counter, the last step and the buttons; a new one gets a button per action hint.
     */
    async importPairing(p: Pairing, nowMs: number): Promise<PiRecord> {
        let keys: DeviceKeys;
        try {
            keys = await deriveKeys(p.secret, p.totp.alg, false);
        } finally {
            p.secret.fill(0);
        }
        const id = `${p.piId}:${p.deviceId}`;
        const old = await this.get(id);
        const rec: PiRecord = {
            id,
            piId: p.piId,
            piName: p.piName,
            deviceId: p.deviceId,
            label: p.label,
            totp: { ...p.totp },
            keys,
            counter: old?.counter ?? 0,
            buttons: old?.buttons ?? p.actions.map((a) => ({ action: a, label: a, args: [] })),
            bluetoothId: old?.bluetoothId ?? '',
            addedAt: old?.addedAt ?? nowMs,
        };
        await this.put(rec);
        return rec;
    }

    /** Adds a button; refuses a name the protocol does not allow. */
    async addButton(id: string, b: Button): Promise<PiRecord> {
        if (!validActionName(b.action)) {
            throw new Error(`'${b.action}' is not a valid action name (letters, digits, . _ -; at most 64; not ending in .toml)`);
        }
        return this.update(id, (r) => {
            r.buttons.push({ action: b.action, label: b.label || b.action, args: [...b.args] });
        });
    }

    async removeButton(id: string, index: number): Promise<PiRecord> {
        return this.update(id, (r) => {
            r.buttons.splice(index, 1);
        });
    }
}
