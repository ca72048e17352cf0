// SPDX-License-Identifier: GPL-3.0-or-later
// A still picture as a Y4M video for Chromium's fake camera
// (--use-file-for-fake-video-capture): the phone app's camera scan is fed a PNG
// screenshot of the pairing QR code. PNG decoding covers what Chromium's own
// screenshots contain (8-bit RGB/RGBA, no interlace); anything else is refused.

import zlib from 'node:zlib';

/** {width, height, gray: Uint8Array} of an 8-bit RGB or RGBA PNG. */
export function decodePng(buf) {
    if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
    let pos = 8;
    let width = 0;
    let height = 0;
    let channels = 0;
    const idat = [];
    while (pos < buf.length) {
        const len = buf.readUInt32BE(pos);
        const type = buf.toString('ascii', pos + 4, pos + 8);
        const data = buf.subarray(pos + 8, pos + 8 + len);
        if (type === 'IHDR') {
            width = data.readUInt32BE(0);
            height = data.readUInt32BE(4);
            const [depth, colour, , , interlace] = data.subarray(8, 13);
            channels = { 2: 3, 6: 4 }[colour];
            if (depth !== 8 || !channels || interlace !== 0) {
                throw new Error(`unsupported PNG (depth ${depth}, colour type ${colour}, interlace ${interlace})`);
            }
        } else if (type === 'IDAT') {
            idat.push(data);
        }
        pos += 12 + len;
    }
    const raw = zlib.inflateSync(Buffer.concat(idat));
    const stride = width * channels;
    const px = Buffer.alloc(stride * height);
    for (let y = 0; y < height; y++) {
        const filter = raw[y * (stride + 1)];
        const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
        for (let x = 0; x < stride; x++) {
            const a = x >= channels ? px[y * stride + x - channels] : 0;
            const b = y > 0 ? px[(y - 1) * stride + x] : 0;
            const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels] : 0;
            let pred = 0;
            if (filter === 1) pred = a;
            else if (filter === 2) pred = b;
            else if (filter === 3) pred = (a + b) >> 1;
            else if (filter === 4) {
                const p = a + b - c;
                const pa = Math.abs(p - a);
                const pb = Math.abs(p - b);
                const pc = Math.abs(p - c);
                pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            }
            px[y * stride + x] = (line[x] + pred) & 0xff;
        }
    }
    const gray = new Uint8Array(width * height);
    for (let i = 0; i < width * height; i++) {
        const o = i * channels;
        gray[i] = Math.round(0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2]);
    }
    return { width, height, gray };
}

/** A Y4M (4:2:0) of `frames` identical frames, the picture centred on white, `size` square. */
export function grayToY4m({ width, height, gray }, size = 640, frames = 2) {
    const y = Buffer.alloc(size * size, 255);
    const ox = Math.max(0, (size - width) >> 1);
    const oy = Math.max(0, (size - height) >> 1);
    for (let r = 0; r < Math.min(height, size); r++) {
        for (let c = 0; c < Math.min(width, size); c++) y[(oy + r) * size + ox + c] = gray[r * width + c];
    }
    const chroma = Buffer.alloc((size / 2) * (size / 2) * 2, 128);
    const frame = Buffer.concat([Buffer.from('FRAME\n'), y, chroma]);
    return Buffer.concat([Buffer.from(`YUV4MPEG2 W${size} H${size} F10:1 Ip A1:1 C420jpeg\n`), ...Array(frames).fill(frame)]);
}
