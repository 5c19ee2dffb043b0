#!/usr/bin/env python3
"""Decodes the loss plot ssm wrote with Python's zlib (a real inflater) and checks it.

    check_png.py ARTIFACT_DIR

Needs only the standard library. Reads ARTIFACT_DIR/loss.png and expected.json (written by
`ssm_test_train --gtest_filter=PythonArtifacts.*`) and checks: the signature, every chunk's
CRC-32, IHDR (size, 8-bit RGB, no interlace), that zlib inflates the IDAT stream (which also
verifies its Adler-32), filter bytes, and that every expected curve point has the curve's
colour within one pixel.
"""
import json
import os
import struct
import sys
import zlib


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "bad signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(ctype + body), f"CRC of {ctype!r} chunk"
        chunks.append((ctype, body))
        pos += 12 + length
    assert pos == len(data), "trailing bytes"
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", [c[0] for c in chunks]
    width, height, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color, comp, filt, interlace) == (8, 2, 0, 0, 0), chunks[0][1]
    raw = zlib.decompress(b"".join(body for ctype, body in chunks if ctype == b"IDAT"))
    row = width * 3
    assert len(raw) == (row + 1) * height, (len(raw), width, height)
    pixels = []
    for y in range(height):
        line = raw[y * (row + 1):(y + 1) * (row + 1)]
        assert line[0] == 0, f"filter type {line[0]} on row {y}"
        pixels.append(line[1:])
    return width, height, pixels


def main():
    art = sys.argv[1]
    with open(os.path.join(art, "expected.json")) as f:
        exp = json.load(f)["png"]
    width, height, pixels = read_png(os.path.join(art, "loss.png"))
    assert (width, height) == (exp["width"], exp["height"]), (width, height)

    def color_near(x, y, rgb):
        for yy in range(max(0, y - 1), min(height, y + 2)):
            for xx in range(max(0, x - 1), min(width, x + 2)):
                if tuple(pixels[yy][3 * xx:3 * xx + 3]) == rgb:
                    return True
        return False

    checked = 0
    for curve in exp["curves"]:
        rgb = tuple(curve["color"])
        count = sum(1 for y in range(height) for x in range(width) if tuple(pixels[y][3 * x:3 * x + 3]) == rgb)
        assert count > 100, (curve["name"], count)
        for x, y in curve["points"]:
            assert color_near(x, y, rgb), (curve["name"], x, y)
            checked += 1
    print(f"check_png: {width}x{height}, {len(exp['curves'])} curves, {checked} points on their colour: OK")


if __name__ == "__main__":
    main()
