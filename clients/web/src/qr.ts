// SPDX-License-Identifier: GPL-3.0-or-later
// Reading the pairing QR code: from the camera or from a picture. The browser's
// BarcodeDetector is used where it exists (Android Chrome, macOS); elsewhere the
// jsQR library decodes the pixels.

import jsQR from 'jsqr';

interface Detector {
    detect(source: CanvasImageSource | ImageBitmap | ImageData): Promise<Array<{ rawValue: string }>>;
}

let detector: Detector | null | undefined;

async function nativeDetector(): Promise<Detector | null> {
    if (detector !== undefined) return detector;
    detector = null;
    const BD = (globalThis as unknown as { BarcodeDetector?: { new(o: object): Detector; getSupportedFormats(): Promise<string[]> } }).BarcodeDetector;
    if (BD) {
        try {
            if ((await BD.getSupportedFormats()).includes('qr_code')) detector = new BD({ formats: ['qr_code'] });
        } catch {
            detector = null;
        }
    }
    return detector;
}

/** Which decoder is in use, for the page to mention. */
export async function decoderName(): Promise<string> {
    return (await nativeDetector()) ? 'BarcodeDetector' : 'jsQR';
}

function pixels(source: CanvasImageSource, w: number, h: number): ImageData {
    // Large photos are scaled down: QR codes decode fine at 1000 px and it is faster.
    const scale = Math.min(1, 1000 / Math.max(w, h));
    const cw = Math.max(1, Math.round(w * scale));
    const ch = Math.max(1, Math.round(h * scale));
    const canvas = document.createElement('canvas');
    canvas.width = cw;
    canvas.height = ch;
    const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
    ctx.fillStyle = '#fff'; // transparent pictures: a QR code needs its light modules
    ctx.fillRect(0, 0, cw, ch);
    ctx.drawImage(source, 0, 0, cw, ch);
    return ctx.getImageData(0, 0, cw, ch);
}

/** The text of the first QR code in the image, or null. */
export async function decodeSource(source: CanvasImageSource, w: number, h: number): Promise<string | null> {
    const native = await nativeDetector();
    if (native) {
        try {
            const found = await native.detect(source as ImageBitmap);
            if (found.length > 0) return found[0].rawValue;
        } catch {
            // fall back to jsQR below
        }
    }
    const img = pixels(source, w, h);
    const hit = jsQR(img.data, img.width, img.height, { inversionAttempts: 'attemptBoth' });
    return hit ? hit.data : null;
}

/** Decodes a picture file (a screenshot or photo of the Pi's QR code). */
export async function decodeFile(file: Blob): Promise<string | null> {
    const bitmap = await createImageBitmap(file);
    try {
        return await decodeSource(bitmap, bitmap.width, bitmap.height);
    } finally {
        bitmap.close();
    }
}

/** A running camera scan; stop() ends it and releases the camera. */
export interface CameraScan {
    result: Promise<string>;
    stop(): void;
}

/** Shows the back camera in `video` and resolves with the first QR code it sees. */
export async function scanCamera(video: HTMLVideoElement): Promise<CameraScan> {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
    video.srcObject = stream;
    video.setAttribute('playsinline', '');
    await video.play();
    let stopped = false;
    const stop = () => {
        stopped = true;
        for (const t of stream.getTracks()) t.stop();
        video.srcObject = null;
    };
    const result = new Promise<string>((resolve, reject) => {
        const tick = async () => {
            if (stopped) {
                reject(new DOMException('scan stopped', 'AbortError'));
                return;
            }
            try {
                if (video.videoWidth > 0) {
                    const text = await decodeSource(video, video.videoWidth, video.videoHeight);
                    if (text) {
                        stop();
                        resolve(text);
                        return;
                    }
                }
            } catch (e) {
                stop();
                reject(e);
                return;
            }
            setTimeout(tick, 200);
        };
        void tick();
    });
    return { result, stop };
}
