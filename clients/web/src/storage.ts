// SPDX-License-Identifier: GPL-3.0-or-later
// The app's pairings in IndexedDB. A record holds the Pi's identity and public key,
// the TOTP parameters, three non-extractable WebCrypto keys (protocol2.deviceKeys)
// and the last catalogue the Pi sent. The device secret S exists as raw bytes only
// during the pairing exchange and is wiped once the keys exist. IndexedDB stores
// CryptoKey objects by structured clone, extractable flag included, so nothing the
// page's script can read (or an XSS could exfiltrate) ever contains the secret.

import type { CatalogueEntry, DeviceKeys, TotpParams } from './protocol2.js';

export const DB_NAME = 'bluezscript';
// 2: protocol version 2 records. Version 1 pairings cannot talk to a version 2 Pi,
// so the upgrade drops them (version 1 was never released).
const DB_VERSION = 2;
const STORE = 'pairings';

export interface PiRecord {
    /** piId + ':' + deviceId: a phone may hold one pairing per Pi and device id. */
    id: string;
    piId: string;
    piName: string;
    /** The Pi's P-256 public key (130 hex digits) checked at pairing; Info must keep it. */
    piKey: string;
    deviceId: string;
    label: string;
    totp: TotpParams;
    keys: DeviceKeys;
    /** The last counter sent; persisted before each send. */
    counter: number;
    /** The actions this device may run, from the Pi's last authenticated catalogue. */
    actions: CatalogueEntry[];
    /** When the catalogue was last fetched (ms), 0 if never. */
    catalogueAt: number;
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

    /** Opens (creating or upgrading on first use) the database; `factory` is injectable for tests. */
    static open(factory: IDBFactory = indexedDB): Promise<PairingStore> {
        return new Promise((resolve, reject) => {
            const req = factory.open(DB_NAME, DB_VERSION);
            req.onupgradeneeded = () => {
                const db = req.result;
                if (db.objectStoreNames.contains(STORE)) db.deleteObjectStore(STORE);
                db.createObjectStore(STORE, { keyPath: 'id' });
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

    /** The counter for the next request (last + 1), stored before it is sent. */
    async nextCounter(id: string): Promise<number> {
        const rec = await this.update(id, (r) => {
            r.counter += 1;
        });
        return rec.counter;
    }

    /** Stores the actions of a complete, authenticated catalogue. */
    async setCatalogue(id: string, actions: CatalogueEntry[], nowMs: number): Promise<PiRecord> {
        return this.update(id, (r) => {
            r.actions = actions.map((a) => ({ ...a, ...(a.choices ? { choices: [...a.choices] } : {}) }));
            r.catalogueAt = nowMs;
        });
    }
}
