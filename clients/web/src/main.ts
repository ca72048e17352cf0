// SPDX-License-Identifier: GPL-3.0-or-later
// The phone app's page: imports pairings (link fragment, QR code, pasted text),
// lists the paired Pis with one large button per action, and runs a command on tap.
// Every text that came from outside (names, outputs) goes into textContent only.

import { Bluetooth } from './ble.js';
import { describeResponse, explainBluetoothError, type Message, unsupportedReason } from './errors.js';
import { parsePairing, ProtocolError, validActionName } from './protocol.js';
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
const busy = new Set<string>();

function banner(text: string, ok = false): void {
    const b = $('banner');
    b.textContent = text;
    b.classList.toggle('ok', ok);
    b.classList.toggle('hidden', text === '');
}

function showResult(box: HTMLElement, m: Message, output = ''): void {
    box.replaceChildren(el('h3', { text: m.title }), el('p', { text: m.detail, 'data-testid': 'result-detail' }));
    if (output) box.append(el('pre', { text: output, 'data-testid': 'result-output' }));
    box.className = `result ${m.kind}`;
    box.dataset.code = m.code;
    box.hidden = false;
}

// --- pairing import -------------------------------------------------------------

async function importText(text: string, source: string): Promise<void> {
    let rec: PiRecord;
    try {
        rec = await store.importPairing(parsePairing(text.trim()), Date.now());
    } catch (e) {
        const why = e instanceof ProtocolError ? e.message : String(e);
        banner(`That ${source} is not a usable pairing: ${why}`);
        return;
    }
    // Ask the browser not to evict the pairings under storage pressure.
    let persisted = false;
    try {
        persisted = (await navigator.storage?.persist?.()) ?? false;
    } catch {
        persisted = false;
    }
    banner(`Paired with ${rec.piName}${rec.label ? ` as “${rec.label}”` : ''}.` +
           (rec.buttons.length === 0 ? ' Add a button for each action the owner allowed.' : ''), true);
    showAddPanel(false);
    await render();
    await footer(persisted);
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
        t.value = ''; // the link holds the secret: do not leave it in the field
        void importText(text, 'link');
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
        await importText(text, 'QR code');
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
            await importText(await camera.result, 'QR code');
        } catch (e) {
            if ((e as Error).name !== 'AbortError') banner(`Scanning failed: ${(e as Error).message}`);
        } finally {
            stopCamera();
        }
    });
    $('scan-stop').addEventListener('click', stopCamera);
}

// --- the list of Pis ------------------------------------------------------------------

async function trigger(rec: PiRecord, index: number, button: HTMLButtonElement, progress: HTMLElement,
                       result: HTMLElement): Promise<void> {
    if (busy.has(rec.id)) return;
    const b = rec.buttons[index];
    if (unsupported || !bluetooth) {
        showResult(result, unsupported ?? explainBluetoothError(new Error('Web Bluetooth is not available')));
        return;
    }
    busy.add(rec.id);
    const all = button.closest('.actions')!.querySelectorAll('button');
    all.forEach((x) => { x.disabled = true; });
    result.hidden = true;
    try {
        const r = await bluetooth.trigger(rec, b.action, b.args, (t) => { progress.textContent = t; });
        const m = describeResponse(r, b.label);
        // Failures and refusals may carry output the message does not already show.
        const out = r.macOk && r.status !== 0 ? new TextDecoder().decode(r.output).trimEnd() : '';
        showResult(result, m, out && !`${m.title} ${m.detail}`.includes(out) ? out : '');
    } catch (e) {
        showResult(result, explainBluetoothError(e));
    } finally {
        progress.textContent = '';
        busy.delete(rec.id);
        all.forEach((x) => { x.disabled = false; });
    }
}

function piCard(rec: PiRecord): HTMLElement {
    const progress = el('p', { class: 'progress', 'data-testid': 'progress', 'aria-live': 'polite' });
    const result = el('div', { class: 'result', 'data-testid': 'result', role: 'status' });
    result.hidden = true;
    const actions = el('div', { class: 'actions', 'data-testid': 'actions' });
    rec.buttons.forEach((b, i) => {
        const btn = el('button', { type: 'button', class: 'action', 'data-testid': `action-${b.action}`, text: b.label });
        btn.addEventListener('click', () => void trigger(rec, i, btn, progress, result));
        actions.append(btn);
    });
    if (rec.buttons.length === 0) actions.append(el('p', { class: 'muted', text: 'No buttons yet: add one below.' }));

    // Managing buttons and the pairing, folded away.
    const list = el('ul', { class: 'button-list' });
    rec.buttons.forEach((b, i) => {
        const rm = el('button', { type: 'button', class: 'secondary', text: 'Remove', 'data-testid': `remove-button-${b.action}` });
        rm.addEventListener('click', async () => {
            await store.removeButton(rec.id, i);
            await render();
        });
        list.append(el('li', {}, el('span', { text: b.args.length ? `${b.label} (${b.action} ${b.args.join(' ')})` : `${b.label} (${b.action})` }), rm));
    });
    const nameIn = el('input', { type: 'text', placeholder: 'action name, e.g. garage', 'data-testid': 'new-action', autocapitalize: 'off', maxlength: '64' });
    const labelIn = el('input', { type: 'text', placeholder: 'label (optional)', 'data-testid': 'new-label', maxlength: '40' });
    const form = el('form', { 'data-testid': 'add-button-form' },
                    el('label', { text: 'Add a button' }), nameIn, labelIn,
                    el('button', { type: 'submit', class: 'secondary', text: 'Add button' }));
    const formMsg = el('p', { class: 'muted', 'data-testid': 'add-button-message' });
    form.append(formMsg);
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const action = nameIn.value.trim();
        if (!validActionName(action)) {
            formMsg.textContent = 'Action names are 1-64 letters, digits, dots, dashes or underscores.';
            return;
        }
        await store.addButton(rec.id, { action, label: labelIn.value.trim() || action, args: [] });
        await render();
    });
    const remove = el('button', { type: 'button', class: 'danger', text: `Forget ${rec.piName}`, 'data-testid': 'forget' });
    remove.addEventListener('click', async () => {
        if (!confirm(`Forget ${rec.piName}? This phone can no longer trigger its actions until it is paired again.`)) return;
        bluetooth?.forget(rec.id);
        await store.remove(rec.id);
        await render();
    });
    const manage = el('details', { class: 'manage' }, el('summary', { text: 'Buttons and pairing' }), list, form,
                      el('p', { class: 'muted', text: `Device id ${rec.deviceId.slice(0, 12)}… · TOTP ${rec.totp.alg}, ${rec.totp.digits} digits, ${rec.totp.period} s` }),
                      remove);

    return el('section', { class: 'card pi', 'data-testid': `pi-${rec.piId}`, 'aria-label': rec.piName },
              el('div', { class: 'pi-head' }, el('h2', { text: rec.piName, 'data-testid': 'pi-name' }),
                 el('span', { class: 'muted', text: rec.label, 'data-testid': 'pi-label' })),
              actions, progress, result, manage);
}

async function render(): Promise<void> {
    const recs = await store.list();
    $('pis').replaceChildren(...recs.map(piCard));
    $('empty').classList.toggle('hidden', recs.length > 0);
    if (recs.length === 0 && !location.hash) showAddPanel(true);
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
    try {
        store = await PairingStore.open();
    } catch (e) {
        banner(`This browser does not let the app store pairings (${(e as Error).message}). Private browsing blocks it.`);
        return;
    }
    if (!unsupported) bluetooth = new Bluetooth(store);
    wireAddPanel();
    // A link opened from the QR code carries the pairing after '#': import it, then
    // drop it from the address bar and history (it holds the secret).
    const hash = location.hash;
    if (hash.length > 1) {
        history.replaceState(null, '', location.pathname + location.search);
        await importText(hash, 'link');
    } else {
        await render();
        await footer();
    }
    if (unsupported) banner(`${unsupported.title}. ${unsupported.detail}`);
    if ('serviceWorker' in navigator) {
        // Offline start-up; fails harmlessly where the certificate is not trusted.
        navigator.serviceWorker.register('sw.js', { scope: './' }).catch(() => undefined);
    }
    document.body.dataset.ready = '1';
}

window.addEventListener('unhandledrejection', (ev) => {
    const m = explainBluetoothError(ev.reason);
    banner(`${m.title}: ${m.detail}`);
});

void start();
