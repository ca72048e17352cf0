// SPDX-License-Identifier: GPL-3.0-or-later
// Service worker: keeps the app's files (listed by build.mjs) so the app opens
// offline. Cache first for them; everything else goes to the network untouched.
// Nothing personal is cached: pairings live in IndexedDB, never in responses.

declare const __BZS_FILES__: string[];
declare const __BZS_VERSION__: string;

interface ExtendableEvent extends Event { waitUntil(p: Promise<unknown>): void }
interface FetchEvent extends ExtendableEvent { request: Request; respondWith(r: Promise<Response> | Response): void }
interface SWScope {
    addEventListener(type: 'install' | 'activate', h: (e: ExtendableEvent) => void): void;
    addEventListener(type: 'fetch', h: (e: FetchEvent) => void): void;
    skipWaiting(): Promise<void>;
    clients: { claim(): Promise<void> };
    registration: { scope: string };
}

const sw = self as unknown as SWScope;
const CACHE = `bluezscript-app-${__BZS_VERSION__}`;
const FILES = __BZS_FILES__.map((f) => new URL(f, sw.registration.scope).href);

sw.addEventListener('install', (e) => {
    e.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES)).then(() => sw.skipWaiting()));
});

sw.addEventListener('activate', (e) => {
    e.waitUntil(caches.keys()
        .then((keys) => Promise.all(keys.filter((k) => k.startsWith('bluezscript-app-') && k !== CACHE).map((k) => caches.delete(k))))
        .then(() => sw.clients.claim()));
});

sw.addEventListener('fetch', (e) => {
    if (e.request.method !== 'GET') return;
    const url = new URL(e.request.url);
    url.hash = '';
    // The page itself may be asked for as ./index.html or ./ (with or without a query).
    const key = url.origin + url.pathname;
    if (!FILES.includes(key)) return;
    e.respondWith(caches.match(key).then((hit) => hit ?? fetch(e.request)));
});
