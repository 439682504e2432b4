"""Text metadata in encoded image files, written and read without re-encoding any pixel.

OpenCV's encoders write no text, so :func:`embed_text` adds it to their bytes:

- PNG: one ``tEXt`` chunk per key (``iTXt``, UTF-8, when a value is not Latin-1), right after
  ``IHDR`` so that readers which stop at the pixels see it too;
- JPEG: one ``COM`` segment holding the keys as a JSON object, after the ``APPn`` segments;
- TIFF: the ``ImageDescription`` tag of the first image, the keys as a JSON object (ASCII);
- WebP: an ``EXIF`` chunk (the file made an extended WebP: a ``VP8X`` chunk first, its EXIF
  flag set), a little-endian TIFF structure whose one ``ImageDescription`` tag holds the keys
  as a JSON object (ASCII), as TIFF files carry them; exiftool and Pillow's ``getexif()`` read it.

:func:`read_text` reads them back (from facesr's files and from others that use the same
places) and never raises on a damaged or hostile file: it returns what it could read.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

FORMATS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_IMAGE_DESCRIPTION = 270
_MAX_TEXT = 1 << 20  # a reader ignores text chunks larger than this


def embed_text(data: bytes, ext: str, text: Mapping[str, str]) -> bytes:
    """``data`` (an encoded image of format ``ext``) with ``text`` added.

    Raises:
        ValueError: a format that cannot carry text here, malformed ``data`` or ``text``.
    """
    ext = ext.lower()
    items = {str(k): str(v) for k, v in text.items()}
    if not items:
        return data
    if ext == ".png":
        return _png_embed(data, items)
    if ext in (".jpg", ".jpeg"):
        return _jpeg_embed(data, items)
    if ext in (".tif", ".tiff"):
        return _tiff_embed(data, items)
    if ext == ".webp":
        return _webp_embed(data, items)
    raise ValueError(f"cannot write metadata into {ext} files (use .png, .jpg, .tif or .webp)")


def read_text(source: str | os.PathLike | bytes) -> dict[str, str]:
    """The text metadata of an image file (a path or its bytes), as :func:`embed_text` writes
    it; ``{}`` when there is none or the file cannot be read. The format is sniffed."""
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError:
        return {}
    try:
        if data.startswith(_PNG_SIG):
            return _png_read(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_read(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_read(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_read(data)
    except (ValueError, struct.error, zlib.error, IndexError):
        return {}
    return {}


# ----------------------------------------------------------------------------- PNG
def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_embed(data: bytes, items: dict[str, str]) -> bytes:
    if not data.startswith(_PNG_SIG) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file (no IHDR chunk first)")
    end = 8 + 12 + struct.unpack(">I", data[8:12])[0]  # after IHDR
    chunks = []
    for key, value in items.items():
        try:
            keyword = key.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"PNG text keyword {key!r} is not Latin-1") from None
        if not 1 <= len(keyword) <= 79 or b"\x00" in keyword:
            raise ValueError(f"PNG text keyword {key!r} must be 1-79 characters, no NUL")
        try:
            chunks.append(_png_chunk(b"tEXt", keyword + b"\x00" + value.encode("latin-1")))
        except UnicodeEncodeError:  # international text: iTXt, UTF-8, uncompressed
            chunks.append(_png_chunk(b"iTXt", keyword + b"\x00\x00\x00\x00\x00"
                                     + value.encode("utf-8")))
    return b"".join([data[:end], *chunks, data[end:]])


def _png_read(data: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I", data[pos:pos + 4])[0], data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IEND" or len(body) < length:
            break
        if kind not in (b"tEXt", b"iTXt", b"zTXt") or length > _MAX_TEXT or b"\x00" not in body:
            continue
        key, _, rest = body.partition(b"\x00")
        if kind == b"tEXt":
            value = rest.decode("latin-1")
        elif kind == b"zTXt":
            value = _inflate(rest[1:]).decode("latin-1")
        else:
            compressed, text = rest[:1] == b"\x01", rest[2:]
            text = text.split(b"\x00", 2)[-1]  # after the language tag and translated keyword
            value = (_inflate(text) if compressed else text).decode("utf-8", "replace")
        found[key.decode("latin-1")] = value
    return found


def _inflate(data: bytes) -> bytes:
    """zlib data, at most _MAX_TEXT bytes of it (a text bomb is cut, not inflated)."""
    return zlib.decompressobj().decompress(data, _MAX_TEXT)


# ----------------------------------------------------------------------------- JPEG
def _jpeg_embed(data: bytes, items: dict[str, str]) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG file (no SOI marker)")
    body = json.dumps(items, ensure_ascii=False).encode("utf-8")
    if len(body) > 65533:
        raise ValueError(f"JPEG comment too long ({len(body)} bytes; at most 65533)")
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]  # keep JFIF/EXIF first
    if pos > len(data):
        raise ValueError("truncated JPEG header")
    return data[:pos] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + data[pos:]


def _jpeg_read(data: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xDA, 0xD9):  # start of scan, end of image: no more headers
            break
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xFE:
            found.update(_json_text(data[pos + 4:pos + 2 + length]))
        pos += 2 + length
    return found


def _json_text(raw: bytes) -> dict[str, str]:
    """A JSON object of strings, or ``{}`` for any other text (someone else's comment)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(obj, dict):
        return {}
    return {str(k): v for k, v in obj.items() if isinstance(v, str)}


# ----------------------------------------------------------------------------- TIFF
def _tiff_embed(data: bytes, items: dict[str, str]) -> bytes:
    """Append the description and a copy of the first IFD with it, and point the header at the
    copy (every other offset stays valid: nothing before the end of the file moves)."""
    order = _tiff_order(data)
    if order is None:
        raise ValueError("not a classic TIFF file")
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    if ifd < 8 or ifd + 6 + 12 * count > len(data):
        raise ValueError("truncated TIFF directory")
    entries = [data[ifd + 2 + 12 * k:ifd + 14 + 12 * k] for k in range(count)]
    (next_ifd,) = struct.unpack(order + "I", data[ifd + 2 + 12 * count:ifd + 6 + 12 * count])
    text = json.dumps(items, ensure_ascii=True).encode("ascii") + b"\x00"
    out = bytearray(data)
    out += b"\x00" * (len(out) % 2)  # TIFF offsets are word aligned
    text_at = len(out)
    out += text + b"\x00" * (len(text) % 2)
    entry = struct.pack(order + "HHII", _IMAGE_DESCRIPTION, 2, len(text), text_at)
    entries = [e for e in entries if struct.unpack(order + "H", e[:2])[0] != _IMAGE_DESCRIPTION]
    entries = sorted([*entries, entry], key=lambda e: struct.unpack(order + "H", e[:2])[0])
    new_ifd = len(out)
    if new_ifd + 6 + 12 * len(entries) >= 1 << 32:
        raise ValueError("TIFF file too large for its 32-bit offsets")
    out += struct.pack(order + "H", len(entries)) + b"".join(entries)
    out += struct.pack(order + "I", next_ifd)
    out[4:8] = struct.pack(order + "I", new_ifd)
    return bytes(out)


def _tiff_order(data: bytes) -> str | None:
    return {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])


def _tiff_read(data: bytes) -> dict[str, str]:
    order = _tiff_order(data)
    if order is None:
        return {}
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    for k in range(count):
        at = ifd + 2 + 12 * k
        tag, kind, n, value = struct.unpack(order + "HHII", data[at:at + 12])
        if tag == _IMAGE_DESCRIPTION and kind == 2 and n <= _MAX_TEXT:
            raw = data[at + 8:at + 8 + n] if n <= 4 else data[value:value + n]
            return _json_text(raw.rstrip(b"\x00"))
    return {}


# ----------------------------------------------------------------------------- WebP
_VP8X_EXIF = 0x08  # the EXIF flag of the VP8X chunk's first byte
_EXIF_HEADER = b"Exif\x00\x00"  # some writers put it before the TIFF structure


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(fourcc, payload) of every chunk of a WebP file (a truncated last one is dropped)."""
    chunks, pos = [], 12
    end = min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    while pos + 8 <= end:
        kind, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if pos + 8 + size > end:
            break
        chunks.append((kind, data[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)


def _webp_size(chunks: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """(width, height) of a simple WebP's image (its ``VP8L`` or ``VP8 `` chunk)."""
    for kind, body in chunks:
        if kind == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
            bits = struct.unpack("<I", body[1:5])[0]
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
            w, h = struct.unpack("<HH", body[6:10])
            return w & 0x3FFF, h & 0x3FFF
    raise ValueError("not a WebP file (no VP8 or VP8L image chunk)")


def _webp_embed(data: bytes, items: dict[str, str]) -> bytes:
    """Add an ``EXIF`` chunk (any earlier one replaced), making the file an extended WebP."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file (no RIFF WEBP header)")
    chunks = [(k, b) for k, b in _riff_chunks(data) if k != b"EXIF"]
    if not chunks:
        raise ValueError("truncated WebP file")
    text = json.dumps(items, ensure_ascii=True).encode("ascii") + b"\x00"
    # a little-endian TIFF: header, one IFD with ImageDescription, no next IFD, the text
    exif = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack(
        "<HHII", _IMAGE_DESCRIPTION, 2, len(text), 8 + 2 + 12 + 4) + struct.pack("<I", 0) + text
    if chunks[0][0] == b"VP8X":
        head = chunks[0][1]
        chunks[0] = (b"VP8X", bytes([head[0] | _VP8X_EXIF]) + head[1:])
    else:
        w, h = _webp_size(chunks)
        vp8x = bytes([_VP8X_EXIF, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (
            h - 1).to_bytes(3, "little")
        chunks.insert(0, (b"VP8X", vp8x))
    xmp = [c for c in chunks if c[0] == b"XMP "]  # EXIF goes before XMP (the spec's order)
    chunks = [c for c in chunks if c[0] != b"XMP "] + [(b"EXIF", exif)] + xmp
    body = b"WEBP" + b"".join(_riff_chunk(k, b) for k, b in chunks)
    if len(body) >= 1 << 32:
        raise ValueError("WebP file too large for its 32-bit size")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_read(data: bytes) -> dict[str, str]:
    for kind, body in _riff_chunks(data):
        if kind == b"EXIF" and len(body) <= _MAX_TEXT + 1024:
            return _tiff_read(body[len(_EXIF_HEADER):] if body.startswith(_EXIF_HEADER)
                              else body)
    return {}
