#!/usr/bin/python3
"""Test fixtures for tests/test_image.c, written at test time with Debian's Pillow / torchvision /
matplotlib (the independent truths), into OUTDIR:

  decode.tsv   name, image file, truth .npy (uint8 (h, w, 3)), background "r,g,b", ignore_exif
               for every PNG and JPEG kind the decoder handles. The truth is Pillow's decoding
               (Image.open(f).convert('RGB'), after ImageOps.exif_transpose for JPEG); where Pillow
               drops alpha, the truth composites Pillow's RGBA over the background as
               round((c*a + bg*(255-a)) / 255); where Pillow cannot read a PNG faithfully (16-bit
               colour), the truth is computed from the written samples: round(v * 255 / 65535).
  bad.tsv      name, file, expected status name, substring of the message: malformed files.
  pre.tsv      name, mode, width, height, resize_shorter, source .npy, seen .npy, tensor .npy or -:
               preprocessing against torchvision (Resize + CenterCrop + ToTensor + Normalize) and
               Pillow's resize.
  cmap.npy     (5, 256, 3) uint8 colour tables from matplotlib (only when matplotlib is present).
  labels.txt   torchvision's 1000 ImageNet names, one per line.
  pixmap_*.npy a (3, h, w) float32 map and its paper-figure image (deprocess_image in float64).

Usage: image_fixtures.py OUTDIR TEST_BINARY      (the binary writes the YCCK JPEG: Pillow cannot)
       image_fixtures.py --check-png FILE.png TRUTH.npy   (exit 0 when Pillow decodes FILE to TRUTH)
"""
import io
import os
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps


def smooth_rgb(w, h, seed, noise=24):
    """A photo-like image: gradients, a disc and noise (so that JPEG and resampling do real work)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 128 + 100 * np.sin(x / 5.0 + seed) * np.cos(y / 7.0)
    disc = (x - w * 0.6) ** 2 + (y - h * 0.4) ** 2 < (min(w, h) * 0.3) ** 2
    img = np.stack([r, g, b], -1)
    img[disc] = [250, 40, 60]
    img += rng.normal(0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def composite(rgba, bg):
    rgba = rgba.astype(np.int64)
    a = rgba[..., 3:4]
    out = (rgba[..., :3] * a + np.array(bg, np.int64) * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def round16(v):
    return ((v.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)


# ---- a small PNG writer for what Pillow cannot write (16-bit colour, 2/4-bit grey, tRNS on
# grey/RGB, Adam7 interlacing) ----

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(tag, data):
    c = tag + data
    return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)


def pack_row(row, depth):
    """row: (w, channels) integer samples."""
    flat = row.reshape(-1).astype(np.int64)
    if depth == 16:
        return flat.astype(">u2").tobytes()
    if depth == 8:
        return flat.astype(np.uint8).tobytes()
    per = 8 // depth
    pad = (-len(flat)) % per
    flat = np.concatenate([flat, np.zeros(pad, np.int64)]).reshape(-1, per)
    shifts = np.array([8 - depth * (i + 1) for i in range(per)])
    return (flat << shifts).sum(1).astype(np.uint8).tobytes()


def png_bytes(samples, ctype, depth, interlace=False, plte=None, trns=None, filters=0):
    """samples: (h, w, channels) integers. Rows use filter type `filters` (0 None, 1 Sub)."""
    h, w = samples.shape[:2]
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    bpp = max(1, samples.shape[2] * depth // 8)
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            b = pack_row(row, depth)
            if filters == 1:
                a = np.frombuffer(b, np.uint8).astype(np.int64)
                prev = np.concatenate([np.zeros(bpp, np.int64), a[:-bpp]])
                b = ((a - prev) % 256).astype(np.uint8).tobytes()
            raw += bytes([filters]) + b
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if plte is not None:
        out += chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    data = zlib.compress(bytes(raw), 9)
    # split IDAT in two to exercise multi-chunk streams
    out += chunk(b"IDAT", data[: len(data) // 2]) + chunk(b"IDAT", data[len(data) // 2:])
    out += chunk(b"IEND", b"")
    return out


class Fixtures:
    def __init__(self, outdir, testbin):
        self.dir = outdir
        self.testbin = testbin
        self.decode = []
        self.bad = []
        self.pre = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def add_decode(self, name, fname, truth, bg=(255, 255, 255), ignore_exif=0):
        np.save(self.path(name + ".truth.npy"), np.ascontiguousarray(truth, np.uint8))
        self.decode.append((name, fname, name + ".truth.npy", "%d,%d,%d" % tuple(bg), str(ignore_exif)))

    def save_pil(self, name, ext, im, **kw):
        fname = name + "." + ext
        im.save(self.path(fname), **kw)
        return fname

    def save_raw(self, fname, data):
        with open(self.path(fname), "wb") as f:
            f.write(data)
        return fname

    def pil_truth(self, fname, bg, exif=False):
        im = Image.open(self.path(fname))
        im.load()
        if exif:
            im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
            return composite(np.asarray(im.convert("RGBA")), bg)
        return np.asarray(im.convert("RGB"))


def make_png(F):
    bg = (12, 200, 40)
    white = (255, 255, 255)
    rgb = smooth_rgb(37, 23, 1)
    F.add_decode("png_rgb", F.save_pil("png_rgb", "png", Image.fromarray(rgb)), rgb)
    grey = rgb[..., 1].copy()
    f = F.save_pil("png_grey", "png", Image.fromarray(grey, "L"))
    F.add_decode("png_grey", f, F.pil_truth(f, white))
    alpha = (np.arange(37 * 23).reshape(23, 37) * 7 % 256).astype(np.uint8)
    alpha[0, :5] = [0, 255, 1, 254, 128]
    la = np.stack([grey, alpha], -1)
    f = F.save_pil("png_la", "png", Image.fromarray(la, "LA"))
    F.add_decode("png_la", f, F.pil_truth(f, bg), bg)
    rgba = np.concatenate([rgb, alpha[..., None]], -1)
    f = F.save_pil("png_rgba", "png", Image.fromarray(rgba, "RGBA"))
    F.add_decode("png_rgba", f, F.pil_truth(f, bg), bg)
    F.add_decode("png_rgba_white", f, F.pil_truth(f, white), white)
    pal = Image.fromarray(rgb).quantize(colors=200)
    f = F.save_pil("png_pal", "png", pal)
    F.add_decode("png_pal", f, F.pil_truth(f, white))
    # palette with per-entry alpha (tRNS shorter than the palette)
    trns = bytes((i * 37) % 256 for i in range(150))
    f = F.save_pil("png_pal_trns", "png", pal, transparency=trns)
    F.add_decode("png_pal_trns", f, F.pil_truth(f, bg), bg)
    pal16 = Image.fromarray(rgb).quantize(colors=16)
    f = F.save_pil("png_pal4", "png", pal16, bits=4)
    F.add_decode("png_pal4", f, F.pil_truth(f, white))
    bw = Image.fromarray(((grey > 128) * 255).astype(np.uint8), "L").convert("1")
    f = F.save_pil("png_1bit", "png", bw)
    F.add_decode("png_1bit", f, F.pil_truth(f, white))
    # 16-bit grey through Pillow (mode I;16): every value once
    g16 = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    f = F.save_pil("png_grey16", "png", Image.fromarray(g16, "I;16"))
    F.add_decode("png_grey16", f, np.repeat(round16(g16)[..., None], 3, -1))

    # hand-written PNGs; the 8-bit ones are also checked against Pillow's decoding of them
    rng = np.random.default_rng(5)
    s16 = rng.integers(0, 65536, (19, 29, 4)).astype(np.int64)
    s16[0, 0] = [0, 65535, 32767, 32768]
    s16[0, 1, 3] = 0
    s16[0, 2, 3] = 65535
    F.add_decode("png_rgb16", F.save_raw("png_rgb16.png", png_bytes(s16[..., :3], 2, 16)), round16(s16[..., :3]))
    F.add_decode("png_rgba16", F.save_raw("png_rgba16.png", png_bytes(s16, 6, 16)),
                 composite(round16(s16), bg), bg)
    F.add_decode("png_la16", F.save_raw("png_la16.png", png_bytes(s16[..., [0, 3]], 4, 16)),
                 composite(round16(s16[..., [0, 0, 0, 3]]), bg), bg)
    for d in (1, 2, 4):
        v = rng.integers(0, 1 << d, (21, 13, 1))
        truth = np.repeat((v * 255 // ((1 << d) - 1)).astype(np.uint8), 3, -1)
        f = F.save_raw("png_grey%dbit_raw.png" % d, png_bytes(v, 0, d))
        F.add_decode("png_grey%dbit_raw" % d, f, truth)
        F.add_decode("png_grey%dbit_pil" % d, f, F.pil_truth(f, white))
    # tRNS on grey and RGB: one sample value is transparent
    g8 = rgb[..., :1].astype(np.int64)
    key = int(g8[3, 4, 0])
    a = np.where(g8[..., 0] == key, 0, 255)
    t = composite(np.concatenate([np.repeat(g8, 3, -1), a[..., None]], -1), bg)
    f = F.save_raw("png_grey_trns.png", png_bytes(g8, 0, 8, trns=struct.pack(">H", key)))
    F.add_decode("png_grey_trns", f, t, bg)
    F.add_decode("png_grey_trns_pil", f, F.pil_truth(f, bg), bg)
    key3 = [int(v) for v in rgb[5, 6]]
    a = np.where((rgb == key3).all(-1), 0, 255)
    t = composite(np.concatenate([rgb, a[..., None]], -1), bg)
    f = F.save_raw("png_rgb_trns.png", png_bytes(rgb, 2, 8, trns=struct.pack(">HHH", *key3)))
    F.add_decode("png_rgb_trns", f, t, bg)
    g16k = s16[..., :1]
    key16 = int(g16k[2, 2, 0])
    a = np.where(g16k[..., 0] == key16, 255, 0)
    a = 255 - a
    t = composite(np.concatenate([np.repeat(round16(g16k), 3, -1), a[..., None]], -1), bg)
    f = F.save_raw("png_grey16_trns.png", png_bytes(g16k, 0, 16, trns=struct.pack(">H", key16)))
    F.add_decode("png_grey16_trns", f, t, bg)
    # Adam7 interlaced: RGB, RGBA, palette, 1-bit grey, 16-bit RGB, sizes not multiples of 8
    f = F.save_raw("png_rgb_adam7.png", png_bytes(rgb, 2, 8, interlace=True, filters=1))
    F.add_decode("png_rgb_adam7", f, rgb)
    F.add_decode("png_rgb_adam7_pil", f, F.pil_truth(f, white))
    f = F.save_raw("png_rgba_adam7.png", png_bytes(rgba, 6, 8, interlace=True))
    F.add_decode("png_rgba_adam7", f, composite(rgba, bg), bg)
    F.add_decode("png_rgba_adam7_pil", f, F.pil_truth(f, bg), bg)
    idx = np.asarray(pal)[..., None]
    plte = np.asarray(pal.getpalette()[: 3 * 200], np.uint8).reshape(-1, 3)
    f = F.save_raw("png_pal_adam7.png", png_bytes(idx, 3, 8, interlace=True, plte=plte, trns=trns))
    F.add_decode("png_pal_adam7", f, F.pil_truth("png_pal_trns.png", bg), bg)
    v1 = rng.integers(0, 2, (11, 9, 1))
    f = F.save_raw("png_grey1_adam7.png", png_bytes(v1, 0, 1, interlace=True))
    F.add_decode("png_grey1_adam7", f, np.repeat((v1 * 255).astype(np.uint8), 3, -1))
    f = F.save_raw("png_rgb16_adam7.png", png_bytes(s16[..., :3], 2, 16, interlace=True))
    F.add_decode("png_rgb16_adam7", f, round16(s16[..., :3]))
    one = np.array([[[7, 130, 250]]])
    F.add_decode("png_1x1", F.save_raw("png_1x1.png", png_bytes(one, 2, 8, interlace=True)), one.astype(np.uint8))


def exif_bytes(orientation, big_endian=False, bad_offset=False, typ=3):
    if big_endian:
        tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
        ifd = struct.pack(">H", 1) + struct.pack(">HHI", 0x0112, typ, 1)
        ifd += struct.pack(">HH", orientation, 0) if typ == 3 else struct.pack(">I", orientation)
        ifd += struct.pack(">I", 0)
    else:
        tiff = b"II\x2a\x00" + struct.pack("<I", 0xFFFFFF00 if bad_offset else 8)
        ifd = struct.pack("<H", 1) + struct.pack("<HHI", 0x0112, typ, 1)
        ifd += struct.pack("<HH", orientation, 0) if typ == 3 else struct.pack("<I", orientation)
        ifd += struct.pack("<I", 0)
    return b"Exif\x00\x00" + tiff + ifd


def make_jpeg(F):
    white = (255, 255, 255)
    rgb = smooth_rgb(61, 43, 2)
    im = Image.fromarray(rgb)
    for name, kw in [("jpg_420", dict(quality=90)), ("jpg_444", dict(quality=95, subsampling=0)),
                     ("jpg_422", dict(quality=85, subsampling=1)),
                     ("jpg_progressive", dict(quality=90, progressive=True)),
                     ("jpg_progressive_444", dict(quality=90, progressive=True, subsampling=0)),
                     ("jpg_optimize", dict(quality=75, optimize=True)), ("jpg_q10", dict(quality=10))]:
        f = F.save_pil(name, "jpg", im, **kw)
        F.add_decode(name, f, F.pil_truth(f, white))
    odd = Image.fromarray(smooth_rgb(17, 9, 3))
    f = F.save_pil("jpg_odd_420", "jpg", odd, quality=90)
    F.add_decode("jpg_odd_420", f, F.pil_truth(f, white))
    f = F.save_pil("jpg_grey", "jpg", im.convert("L"), quality=90)
    F.add_decode("jpg_grey", f, F.pil_truth(f, white))
    f = F.save_pil("jpg_grey_progressive", "jpg", im.convert("L"), quality=90, progressive=True)
    F.add_decode("jpg_grey_progressive", f, F.pil_truth(f, white))
    cmyk = im.convert("CMYK")
    c = np.asarray(cmyk).copy()
    c[..., 3] = (np.arange(61)[None, :] * 4) % 256  # a real black channel
    cmyk = Image.fromarray(c, "CMYK")
    f = F.save_pil("jpg_cmyk", "jpg", cmyk, quality=95)
    F.add_decode("jpg_cmyk", f, F.pil_truth(f, white))
    f = F.save_pil("jpg_cmyk_progressive", "jpg", cmyk, quality=95, progressive=True)
    F.add_decode("jpg_cmyk_progressive", f, F.pil_truth(f, white))
    # YCCK: written by the C test binary from CMYK samples (in Adobe polarity), read by Pillow
    np.save(F.path("ycck_src.npy"), 255 - c)
    subprocess.run([F.testbin, "--write-ycck", F.path("ycck_src.npy"), F.path("jpg_ycck.jpg")], check=True)
    F.add_decode("jpg_ycck", "jpg_ycck.jpg", F.pil_truth("jpg_ycck.jpg", white))
    # EXIF orientations 1..8 on a non-square image, little- and big-endian TIFF headers
    for o in range(1, 9):
        f = F.save_pil("jpg_exif%d" % o, "jpg", im, quality=90, exif=exif_bytes(o))
        F.add_decode("jpg_exif%d" % o, f, F.pil_truth(f, white, exif=True))
        f = F.save_pil("jpg_exif%d_mm" % o, "jpg", im, quality=90, exif=exif_bytes(o, big_endian=True))
        F.add_decode("jpg_exif%d_mm" % o, f, F.pil_truth(f, white, exif=True))
    F.add_decode("jpg_exif6_ignored", "jpg_exif6.jpg", F.pil_truth("jpg_exif6.jpg", white), ignore_exif=1)
    f = F.save_pil("jpg_exif5_progressive", "jpg", im, quality=90, progressive=True, exif=exif_bytes(5))
    F.add_decode("jpg_exif5_progressive", f, F.pil_truth(f, white, exif=True))
    f = F.save_pil("jpg_exif8_long", "jpg", im, quality=90, exif=exif_bytes(8, big_endian=True, typ=4))
    F.add_decode("jpg_exif8_long", f, np.asarray(ImageOps.exif_transpose(Image.open(F.path(f))).convert("RGB")))
    # malformed EXIF: the IFD offset points past the segment -> orientation ignored
    f = F.save_pil("jpg_exif_bad", "jpg", im, quality=90, exif=exif_bytes(6, bad_offset=True))
    F.add_decode("jpg_exif_bad", f, F.pil_truth(f, white))
    f = F.save_pil("jpg_exif_grey", "jpg", im.convert("L"), quality=90, exif=exif_bytes(7))
    F.add_decode("jpg_exif_grey", f, F.pil_truth(f, white, exif=True))


def make_bad(F):
    def bad(name, data, status, sub):
        F.save_raw(name, data)
        F.bad.append((name, name, status, sub))

    # decompression bomb: 100000 x 100000 RGB declared, a few bytes of data
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    bad("bomb.png", bomb, "GCAM_E_LIMIT", "100000x100000")
    ihdr = struct.pack(">IIBBBBB", 0x7FFFFFFF, 1, 16, 6, 0, 0, 1)
    bad("bomb_wide.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 99)) +
        chunk(b"IEND", b""), "GCAM_E_LIMIT", "exceeds")
    # JPEG declaring 65500 x 65500 (the SOF of a tiny real JPEG patched)
    buf = io.BytesIO()
    Image.fromarray(smooth_rgb(16, 16, 4)).save(buf, "JPEG", progressive=True)
    j = bytearray(buf.getvalue())
    k = j.find(b"\xff\xc2")
    j[k + 5:k + 9] = struct.pack(">HH", 65500, 65500)
    bad("bomb.jpg", bytes(j), "GCAM_E_LIMIT", "65500x65500")
    bad("garbage.png", bytes(range(256)) * 4, "GCAM_E_FORMAT", "not a PNG or JPEG")
    bad("empty.jpg", b"", "GCAM_E_FORMAT", "empty")
    bad("magic_only.png", b"\x89PNG\r\n\x1a\n", "GCAM_E_FORMAT", "truncated")
    bad("magic_only.jpg", b"\xff\xd8\xff", "GCAM_E_FORMAT", "invalid JPEG")
    good = open(F.path("png_rgb.png"), "rb").read()
    crc = bytearray(good)
    crc[29] ^= 0xFF  # IHDR CRC
    bad("bad_crc.png", bytes(crc), "GCAM_E_FORMAT", "CRC")
    zero = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")
    bad("zero_width.png", zero, "GCAM_E_FORMAT", "invalid PNG")
    baddepth = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 5, 3, 2, 0, 0, 0)) + chunk(b"IEND", b"")
    bad("bad_depth.png", baddepth, "GCAM_E_FORMAT", "invalid PNG")
    # image data short: a valid stream, too few rows, then IEND
    short = png_bytes(np.zeros((10, 10, 3), np.int64), 2, 8)
    ihdr_tall = chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 20, 8, 2, 0, 0, 0))
    short = short[:8] + ihdr_tall + short[8 + 25:]
    bad("short_data.png", short, "GCAM_E_FORMAT", "invalid PNG")
    # truncated in the middle of the image data
    bad("truncated.png", good[: len(good) * 2 // 3], "GCAM_E_FORMAT", "truncated")
    jgood = open(F.path("jpg_420.jpg"), "rb").read()
    bad("truncated.jpg", jgood[: len(jgood) * 2 // 3], "GCAM_E_FORMAT", "truncated")
    jprog = open(F.path("jpg_progressive.jpg"), "rb").read()
    bad("truncated_progressive.jpg", jprog[: len(jprog) // 2], "GCAM_E_FORMAT", "truncated")
    # a JPEG whose header is cut before the frame
    bad("truncated_header.jpg", jgood[:40], "GCAM_E_FORMAT", "invalid JPEG")
    # a PNG named .jpg decodes by magic (not an error): listed as a decode case
    F.add_decode("png_named_jpg", F.save_raw("png_named.jpg", good), np.asarray(Image.open(F.path("png_rgb.png"))))


def make_preprocess(F):
    from torchvision import transforms

    norm = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    sizes = [(300, 200), (200, 300), (100, 80), (257, 511), (256, 256), (224, 224), (1000, 750), (255, 999),
             (3, 5), (1, 1), (640, 427), (513, 257)]
    for i, (w, h) in enumerate(sizes):
        src = smooth_rgb(w, h, 10 + i, noise=40)
        name = "pre_imagenet_%dx%d" % (w, h)
        np.save(F.path(name + ".src.npy"), src)
        im = Image.fromarray(src)
        seen = transforms.CenterCrop(224)(transforms.Resize(256)(im))
        tensor = norm(transforms.ToTensor()(seen))
        np.save(F.path(name + ".seen.npy"), np.asarray(seen))
        np.save(F.path(name + ".tensor.npy"), tensor.numpy().astype(np.float32))
        F.pre.append((name, "crop", "224", "224", "256", name + ".src.npy", name + ".seen.npy", name + ".tensor.npy"))
    # centre crop larger than the resized image: torchvision pads with zeros
    for (w, h, s, cw, ch) in [(300, 200, 200, 224, 224), (90, 150, 100, 120, 97), (50, 50, 64, 65, 64)]:
        src = smooth_rgb(w, h, 3, noise=40)
        name = "pre_croppad_%dx%d_%d_%dx%d" % (w, h, s, cw, ch)
        np.save(F.path(name + ".src.npy"), src)
        seen = transforms.CenterCrop((ch, cw))(transforms.Resize(s)(Image.fromarray(src)))
        tensor = norm(transforms.ToTensor()(seen))
        np.save(F.path(name + ".seen.npy"), np.asarray(seen))
        np.save(F.path(name + ".tensor.npy"), tensor.numpy().astype(np.float32))
        F.pre.append((name, "crop", str(cw), str(ch), str(s), name + ".src.npy", name + ".seen.npy", name + ".tensor.npy"))
    # stretch: Pillow's resize straight to the size
    for (w, h, W, H) in [(300, 200, 224, 160), (50, 40, 97, 61), (640, 480, 224, 224), (123, 45, 123, 99),
                         (77, 66, 77, 66), (1200, 30, 64, 64)]:
        src = smooth_rgb(w, h, 7, noise=40)
        name = "pre_stretch_%dx%d_%dx%d" % (w, h, W, H)
        np.save(F.path(name + ".src.npy"), src)
        seen = Image.fromarray(src).resize((W, H), Image.BILINEAR)
        np.save(F.path(name + ".seen.npy"), np.asarray(seen))
        F.pre.append((name, "stretch", str(W), str(H), "0", name + ".src.npy", name + ".seen.npy", "-"))
    # letterbox: fit inside, centred, padded with the mean colour round(mean * 255)
    mean = [0.485, 0.456, 0.406]
    pad = [int(np.clip(np.rint(np.float64(np.float32(m)) * 255), 0, 255)) for m in mean]
    for (w, h, W, H) in [(300, 200, 224, 224), (200, 300, 224, 224), (100, 100, 160, 96), (641, 479, 320, 320)]:
        src = smooth_rgb(w, h, 9, noise=40)
        name = "pre_letterbox_%dx%d_%dx%d" % (w, h, W, H)
        np.save(F.path(name + ".src.npy"), src)
        if W * h <= H * w:
            rw, rh = W, max(1, (2 * h * W + w) // (2 * w))
        else:
            rw, rh = max(1, (2 * w * H + h) // (2 * h)), H
        canvas = Image.new("RGB", (W, H), tuple(pad))
        canvas.paste(Image.fromarray(src).resize((rw, rh), Image.BILINEAR), ((W - rw) // 2, (H - rh) // 2))
        np.save(F.path(name + ".seen.npy"), np.asarray(canvas))
        F.pre.append((name, "letterbox", str(W), str(H), "0", name + ".src.npy", name + ".seen.npy", "-"))


def make_misc(F):
    try:
        import matplotlib
        from matplotlib import colormaps

        tabs = []
        for n in ["jet", "viridis", "inferno", "turbo", "gray"]:
            rgba = colormaps[n].resampled(256)(np.arange(256)).astype(np.float64)
            tabs.append(np.clip(np.rint(rgba[:, :3] * 255.0), 0, 255).astype(np.uint8))
        np.save(F.path("cmap.npy"), np.stack(tabs))
        # matplotlib's own lookup of float values (its Colormap.__call__), rounded like the tables
        v = np.linspace(-0.1, 1.1, 1001).astype(np.float32)
        eps = np.nextafter(np.float32(1 / 256), np.float32(0))
        v = np.concatenate([v, np.float32([0, 1, 0.5, 1 / 256, eps, 255 / 256, 0.99999994])])
        np.save(F.path("cmap_values.npy"), v)
        look = [np.rint(colormaps[n].resampled(256)(v)[:, :3].astype(np.float64) * 255).astype(np.uint8)
                for n in ["jet", "viridis", "inferno", "turbo", "gray"]]
        np.save(F.path("cmap_lookup.npy"), np.stack(look))
        print("matplotlib", matplotlib.__version__, "colour maps written")
    except ImportError:
        print("matplotlib not installed: colour maps checked against anchor values only")
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    with open(F.path("labels.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(_IMAGENET_CATEGORIES) + "\n")
    rng = np.random.default_rng(3)
    m = rng.normal(0, 1e-3, (3, 17, 23)).astype(np.float32)
    m[0, 0, 0] = 0.5  # an outlier that clips
    np.save(F.path("pixmap_in.npy"), m)
    x = m.astype(np.float64)
    x = x - x.mean()
    x = x / (x.std() + 1e-5)
    x = np.clip(x * 0.1 + 0.5, 0, 1)
    np.save(F.path("pixmap_out.npy"), np.uint8(x * 255).transpose(1, 2, 0).copy())


def write_tsv(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write("\t".join(r) + "\n")


def check_png(fname, truth):
    im = Image.open(fname)
    ok = im.mode == "RGB" and np.array_equal(np.asarray(im), np.load(truth))
    print("Pillow reads %s: %s" % (fname, "equal" if ok else "DIFFERENT (mode %s)" % im.mode))
    return 0 if ok else 1


def main():
    warnings.filterwarnings("ignore", "Corrupt EXIF data")  # the deliberately malformed EXIF case
    if len(sys.argv) == 4 and sys.argv[1] == "--check-png":
        sys.exit(check_png(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    outdir, testbin = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    F = Fixtures(outdir, testbin)
    make_png(F)
    make_jpeg(F)
    make_bad(F)
    make_preprocess(F)
    make_misc(F)
    write_tsv(F.path("decode.tsv"), F.decode)
    write_tsv(F.path("bad.tsv"), F.bad)
    write_tsv(F.path("pre.tsv"), F.pre)
    print("fixtures: %d decode, %d malformed, %d preprocess" % (len(F.decode), len(F.bad), len(F.pre)))


if __name__ == "__main__":
    main()
