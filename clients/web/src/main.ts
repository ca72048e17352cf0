// SPDX-License-Identifier: GPL-3.0-or-later
// The phone app's page: takes a pairing link (the app link's fragment, a QR code,
// pasted text), pairs by the version 2 exchange on a tap, lists the paired Pis with
// one button per action of the Pi's catalogue, and runs a command on tap. Every
// text that came from outside (names, descriptions, outputs) goes into textContent.

import { Bluetooth } from './ble.js';
import {
    AppError, clockNote, describeCommand, explainBluetoothError, type Message, unsupportedReason,
} from './errors.js';
import { type CatalogueEntry, type PairingLink, parseLink, ProtocolError } from './protocol2.js';
import { decodeFile, decoderName, scanCamera, type CameraScan } from './qr.js';
import { PairingStore, type PiRecord } from './storage.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<Record<string, string>> = {},
                                                   ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
        if (v === undefined) continue;
        if (k === 'text') e.textContent = v;
        else if (k === 'class') e.className = v;
        else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
}

let store: PairingStore;
let bluetooth: Bluetooth | null = null;
let unsupported: Message | null = null;
let camera: CameraScan | null = null;
/** The link waiting for its "Pair" tap; its code lives only here, in memory. */
let pending: PairingLink | null = null;
/** What the pending card shows after a tap (a refusal ends the attempt). */
let pendingResult: Message | null = null;
const busy = new Set<string>();
/** The last outcome per Pi record, kept across re-renders. */
const outcomes = new Map<string, { m: Message; output: string; n?: number }>();
/** Numbers outcomes, so that a test (or a person) can tell a new one from the last. */
let outcomeSerial = 0;

function banner(text: string, ok = false): void {
    const b = $('banner');
    b.textContent = text;
    b.classList.toggle('ok', ok);
    b.classList.toggle('hidden', text === '');
}

function resultBox(m: Message | undefined, output = '', n = 0): HTMLElement {
    const box = el('div', { class: 'result', 'data-testid': 'result', role: 'status' });
    if (!m) {
        box.hidden = true;
        return box;
    }
    box.append(el('h3', { text: m.title }), el('p', { text: m.detail, 'data-testid': 'result-detail' }));
    if (output) box.append(el('pre', { text: output, 'data-testid': 'result-output' }));
    box.className = `result ${m.kind}`;
    box.dataset.code = m.code;
    box.dataset.n = String(n);
    return box;
}

function setProgress(scope: string, text: string): void {
    const p = document.querySelector(`[data-testid="${scope}"] [data-testid="progress"]`);
    if (p) p.textContent = text;
}

// --- taking a pairing link -----------------------------------------------------------

function wipePending(): void {
    pending?.code.fill(0);
    pending = null;
    pendingResult = null;
}

async function takeLink(text: string, source: string): Promise<void> {
    let link: PairingLink;
    try {
        link = parseLink(text.trim());
    } catch (e) {
        const why = e instanceof ProtocolError ? e.message : String(e);
        banner(`That ${source} is not a usable pairing link: ${why}`);
        return;
    }
    wipePending();
    pending = link;
    banner('');
    showAddPanel(false);
    await render();
    $('pending').querySelector<HTMLButtonElement>('[data-testid="pair"]')?.focus();
}

function showAddPanel(show: boolean): void {
    $('add').classList.toggle('hidden', !show);
    $('add-toggle').setAttribute('aria-expanded', String(show));
    if (!show) stopCamera();
}

function stopCamera(): void {
    camera?.stop();
    camera = null;
    $('camera').classList.add('hidden');
    $('scan-stop').classList.add('hidden');
}

function wireAddPanel(): void {
    $('add-toggle').addEventListener('click', () => showAddPanel($('add').classList.contains('hidden')));
    $('paste-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const t = $<HTMLTextAreaElement>('paste');
        const text = t.value;
        t.value = ''; // the link holds the one-time code: do not leave it in the field
        void takeLink(text, 'link');
    });
    $<HTMLInputElement>('scan-file').addEventListener('change', async (ev) => {
        const input = ev.target as HTMLInputElement;
        const file = input.files?.[0];
        input.value = '';
        if (!file) return;
        let text: string | null = null;
        try {
            text = await decodeFile(file);
        } catch (e) {
            banner(`Could not read that picture: ${(e as Error).message}`);
            return;
        }
        if (!text) {
            banner('No QR code found in that picture. Try a sharper, closer picture of the code.');
            return;
        }
        await takeLink(text, 'QR code');
    });
    $('scan-camera').addEventListener('click', async () => {
        stopCamera();
        const video = $<HTMLVideoElement>('camera');
        try {
            camera = await scanCamera(video);
        } catch (e) {
            const name = (e as Error).name;
            banner(name === 'NotAllowedError' ? 'Camera permission denied: allow the camera for this site, or use “From a picture”.'
                : `The camera cannot be used here (${(e as Error).message}). Use “From a picture” or paste the link.`);
            return;
        }
        video.classList.remove('hidden');
        $('scan-stop').classList.remove('hidden');
        try {
            await takeLink(await camera.result, 'QR code');
        } catch (e) {
            if ((e as Error).name !== 'AbortError') banner(`Scanning failed: ${(e as Error).message}`);
        } finally {
            stopCamera();
        }
    });
    $('scan-stop').addEventListener('click', stopCamera);
}

// --- pairing -------------------------------------------------------------------------

async function pairTapped(): Promise<void> {
    const link = pending;
    if (!link || busy.has('pending')) return;
    if (unsupported || !bluetooth) {
        pendingResult = unsupported ?? explainBluetoothError(new Error('Web Bluetooth is not available'));
        await render();
        return;
    }
    busy.add('pending');
    pendingResult = null;
    await render();
    let rec: PiRecord | null = null;
    try {
        rec = await bluetooth.pair(link, (t) => setProgress('pending', t));
    } catch (e) {
        const m = explainBluetoothError(e);
        if (e instanceof AppError && m.kind === 'refused') link.code.fill(0); // single-use: no retry
        pendingResult = m;
    } finally {
        busy.delete('pending');
    }
    if (rec) {
        wipePending();
        banner(`Paired with ${rec.piName}${rec.label ? ` as “${rec.label}”` : ''}.`, true);
        await persistStorage();
    }
    await render();
}

/** Asks the browser not to evict the pairings under storage pressure. */
async function persistStorage(): Promise<void> {
    let persisted = false;
    try {
        persisted = (await navigator.storage?.persist?.()) ?? false;
    } catch {
        persisted = false;
    }
    await footer(persisted);
}

function pendingCard(link: PairingLink): HTMLElement {
    const spent = pendingResult?.kind === 'refused';
    const pair = el('button', { type: 'button', class: 'action', 'data-testid': 'pair', text: `Pair with ${link.piName}` });
    pair.disabled = busy.has('pending');
    pair.addEventListener('click', () => void pairTapped());
    const cancel = el('button', { type: 'button', class: 'secondary', 'data-testid': 'pair-cancel', text: spent ? 'Close' : 'Cancel' });
    cancel.addEventListener('click', async () => {
        wipePending();
        await render();
    });
    const who = link.label ? ` as “${link.label}”` : '';
    return el('section', { class: 'card pending', 'data-testid': 'pending', 'aria-labelledby': 'pending-title' },
              el('h2', { id: 'pending-title', text: `New pairing: ${link.piName}` }),
              el('p', { class: 'muted', text: spent ? 'This code cannot be used.'
                  : `This phone will be paired with ${link.piName}${who}. The code works once, for a few minutes: tap Pair and choose ${link.piName} in the list.` }),
              ...(spent ? [] : [pair]),
              el('p', { class: 'progress', 'data-testid': 'progress', 'aria-live': 'polite' }),
              resultBox(pendingResult ?? undefined),
              el('div', { class: 'row' }, cancel));
}

// --- the list of Pis ------------------------------------------------------------------

/** The arguments for `a` from its field, or a message why they would be refused. */
function argsOf(a: CatalogueEntry, field: HTMLInputElement | HTMLSelectElement | null): string[] | Message {
    if (!field || a.kind === 'none') return [];
    const v = field.value;
    if (a.kind === 'choices') return [v];
    if (v === '') return [];
    if (a.kind === 'pattern' && a.pattern) {
        let re: RegExp | null = null;
        try {
            re = new RegExp(`^(?:${a.pattern})$`, 'u');
        } catch {
            re = null; // RE2 syntax this browser does not read: the Pi checks it
        }
        if (re && !re.test(v)) {
            return { kind: 'error', code: 'bad-argument', title: `“${v}” does not fit ${a.name}`, detail: `It must match ${a.pattern}. Nothing was sent.` };
        }
    }
    return [v];
}

async function run(rec: PiRecord, a: CatalogueEntry, args: string[]): Promise<void> {
    if (busy.has(rec.id)) return;
    const scope = `pi-${rec.piId}`;
    if (unsupported || !bluetooth) {
        outcomes.set(rec.id, { m: unsupported ?? explainBluetoothError(new Error('Web Bluetooth is not available')), output: '' });
        await render();
        return;
    }
    busy.add(rec.id);
    outcomes.delete(rec.id);
    await render();
    try {
        const r = await bluetooth.command(rec, a.name, args, (t) => setProgress(scope, t), () => void render());
        const m = describeCommand(r, a.name);
        // Failures and refusals may carry output the message does not already show.
        const out = r.kind === 'command' && r.statusName !== 'ok' ? new TextDecoder().decode(r.output).trimEnd() : '';
        outcomes.set(rec.id, { m, output: out && !`${m.title} ${m.detail}`.includes(out) ? out : '' });
    } catch (e) {
        outcomes.set(rec.id, { m: explainBluetoothError(e), output: '' });
    } finally {
        busy.delete(rec.id);
    }
    await render();
}

async function refresh(rec: PiRecord): Promise<void> {
    if (busy.has(rec.id) || !bluetooth) return;
    busy.add(rec.id);
    outcomes.delete(rec.id);
    await render();
    try {
        const updated = await bluetooth.refreshCatalogue(rec, (t) => setProgress(`pi-${rec.piId}`, t));
        outcomes.set(rec.id, { m: { kind: 'info', code: 'catalogue', title: 'Buttons updated', detail: `${updated.actions.length} action${updated.actions.length === 1 ? '' : 's'} allowed for this phone.` }, output: '' });
    } catch (e) {
        outcomes.set(rec.id, { m: explainBluetoothError(e), output: '' });
    } finally {
        busy.delete(rec.id);
    }
    await render();
}

function actionItem(rec: PiRecord, a: CatalogueEntry): HTMLElement {
    const btn = el('button', { type: 'submit', class: 'action', 'data-testid': `action-${a.name}`, text: a.name });
    btn.disabled = busy.has(rec.id);
    const descId = `desc-${rec.deviceId}-${a.name}`;
    const desc = a.description ? [el('p', { class: 'muted desc', id: descId, text: a.description })] : [];
    if (a.description) btn.setAttribute('aria-describedby', descId);
    let field: HTMLInputElement | HTMLSelectElement | null = null;
    const fieldId = `arg-${rec.deviceId}-${a.name}`;
    if (a.kind === 'choices' && a.choices && a.maxArgs > 0) {
        field = el('select', { id: fieldId, 'data-testid': `arg-${a.name}` });
        for (const c of a.choices) field.append(el('option', { value: c, text: c }));
    } else if ((a.kind === 'free' || a.kind === 'pattern') && a.maxArgs > 0) {
        field = el('input', { type: 'text', id: fieldId, 'data-testid': `arg-${a.name}`, maxlength: '128', autocapitalize: 'off', spellcheck: 'false', autocomplete: 'off' });
    }
    // An action with an argument is a small form: the value first, then the button.
    const form = el('form', { class: field ? 'action-item with-arg' : 'action-item', 'data-testid': `item-${a.name}` });
    if (field) {
        const hint = a.kind === 'pattern' && a.pattern ? ` (must match ${a.pattern})` : a.kind === 'choices' ? '' : ' (optional)';
        form.append(...desc, el('label', { for: fieldId, class: 'arg-label', text: `${a.name}: value${hint}` }), field, btn);
    } else {
        form.append(btn, ...desc);
    }
    const ask = el('div', { class: 'confirm hidden', 'data-testid': `confirm-row-${a.name}` });
    const yes = el('button', { type: 'button', class: 'danger', 'data-testid': `confirm-${a.name}`, text: `Yes, run ${a.name}` });
    const no = el('button', { type: 'button', class: 'secondary', text: 'Cancel' });
    ask.append(el('p', { text: `Really run ${a.name}?` }), yes, no);
    if (a.confirm) form.append(ask);
    const go = () => {
        const args = argsOf(a, field);
        if (!Array.isArray(args)) {
            outcomes.set(rec.id, { m: args, output: '' });
            void render();
            return;
        }
        void run(rec, a, args);
    };
    form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        if (!a.confirm) {
            go();
            return;
        }
        ask.classList.remove('hidden');
        yes.focus();
    });
    yes.addEventListener('click', () => {
        ask.classList.add('hidden');
        go();
    });
    no.addEventListener('click', () => {
        ask.classList.add('hidden');
        btn.focus();
    });
    return form;
}

function piCard(rec: PiRecord): HTMLElement {
    const scope = `pi-${rec.piId}`;
    const actions = el('div', { class: 'actions', 'data-testid': 'actions' });
    for (const a of rec.actions) actions.append(actionItem(rec, a));
    if (rec.actions.length === 0) {
        actions.append(el('p', { class: 'muted', 'data-testid': 'no-actions', text: rec.catalogueAt
            ? `${rec.piName} allows no action for this phone yet. Ask the owner, then tap “Update buttons”.`
            : `The buttons come from ${rec.piName}: tap “Update buttons”.` }));
    }
    const clock = bluetooth?.clock(rec.piId);
    const note = clock ? clockNote(clock) : null;
    const outcome = outcomes.get(rec.id);

    const update = el('button', { type: 'button', class: 'secondary', 'data-testid': 'refresh', text: 'Update buttons' });
    update.disabled = busy.has(rec.id);
    update.addEventListener('click', () => void refresh(rec));
    const remove = el('button', { type: 'button', class: 'danger', text: `Forget ${rec.piName}`, 'data-testid': 'forget' });
    remove.addEventListener('click', async () => {
        if (!confirm(`Forget ${rec.piName}? This phone can no longer trigger its actions until it is paired again.`)) return;
        bluetooth?.forget(rec.id);
        outcomes.delete(rec.id);
        await store.remove(rec.id);
        await render();
    });
    const when = rec.catalogueAt ? new Date(rec.catalogueAt).toLocaleString() : 'never';
    const manage = el('details', { class: 'manage' }, el('summary', { text: 'Buttons and pairing' }),
                      el('p', { class: 'muted', text: `The buttons are the actions ${rec.piName} allows this phone, as it said on its last connection (${when}).` }),
                      el('div', { class: 'row' }, update, remove),
                      el('p', { class: 'muted', text: `Device id ${rec.deviceId.slice(0, 12)}… · TOTP ${rec.totp.alg}, ${rec.totp.digits} digits, ${rec.totp.period} s` }));

    // One phone may hold two pairings with one Pi: the label tells their regions apart.
    const name = rec.label ? `${rec.piName} (${rec.label})` : rec.piName;
    return el('section', { class: 'card pi', 'data-testid': scope, 'data-device': rec.deviceId, 'aria-label': name },
              el('div', { class: 'pi-head' }, el('h2', { text: rec.piName, 'data-testid': 'pi-name' }),
                 el('span', { class: 'muted', text: rec.label, 'data-testid': 'pi-label' })),
              ...(note ? [el('p', { class: 'clock', 'data-testid': 'clock', 'data-code': note.code, text: note.title })] : []),
              actions,
              el('p', { class: 'progress', 'data-testid': 'progress', 'aria-live': 'polite' }),
              resultBox(outcome?.m, outcome?.output, outcome?.n),
              manage);
}

async function render(): Promise<void> {
    for (const o of outcomes.values()) o.n ??= ++outcomeSerial;
    const recs = await store.list();
    $('pending').replaceChildren(...(pending ? [pendingCard(pending)] : []));
    $('pis').replaceChildren(...recs.map(piCard));
    $('empty').classList.toggle('hidden', recs.length > 0 || pending !== null);
    if (recs.length === 0 && !pending && $('banner').classList.contains('hidden')) showAddPanel(true);
}

async function footer(persisted?: boolean): Promise<void> {
    let p = persisted;
    if (p === undefined) {
        try {
            p = (await navigator.storage?.persisted?.()) ?? false;
        } catch {
            p = false;
        }
    }
    $('footer').textContent = `Pairings are kept on this phone only${p ? ' (persistent storage granted)' : ''}. ` +
                              `QR decoder: ${await decoderName()}.`;
}

async function start(): Promise<void> {
    unsupported = unsupportedReason({
        secure: window.isSecureContext,
        hasBluetooth: 'bluetooth' in navigator,
        userAgent: navigator.userAgent,
    });
    // The app link carries the one-time code after '#': drop it from the address bar
    // and the history at once, before anything else can fail.
    const hash = location.hash;
    if (hash.length > 1) history.replaceState(null, '', location.pathname + location.search);
    try {
        store = await PairingStore.open();
    } catch (e) {
        banner(`This browser does not let the app store pairings (${(e as Error).message}). Private browsing blocks it.`);
        return;
    }
    if (!unsupported) bluetooth = new Bluetooth(store);
    wireAddPanel();
    if (hash.length > 1) await takeLink(hash, 'link');
    else await render();
    await footer();
    if (unsupported) banner(`${unsupported.title}. ${unsupported.detail}`);
    if ('serviceWorker' in navigator) {
        // Offline start-up; fails harmlessly where the certificate is not trusted.
        navigator.serviceWorker.register('sw.js', { scope: './' }).catch(() => undefined);
    }
    document.body.dataset.ready = '1';
}

// A new app link opened while the app is open changes only the fragment.
window.addEventListener('hashchange', () => {
    const hash = location.hash;
    if (hash.length <= 1 || !store) return;
    history.replaceState(null, '', location.pathname + location.search);
    void takeLink(hash, 'link');
});

window.addEventListener('unhandledrejection', (ev) => {
    const m = explainBluetoothError(ev.reason);
    banner(`${m.title}: ${m.detail}`);
});

void start();
