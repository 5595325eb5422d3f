#!/usr/bin/env python3
"""A second reader of blockgate's object format, written from docs/object-format.md alone.

    read_object.py OBJECT --scope UUID [--key HEX] [--range START:END] > DATA

Reads a version 1 chunk object (from a file holding the whole object), checks every frame it
decodes, and writes the object's data, or bytes START:END of it, to standard output. With
--range it reads only what a ranged GET would fetch: the header and the frame table, then the
bytes of the frames holding the range. Exits 1 with a message when anything fails its check.
Needs `cryptography`, `zstandard` and `lz4` (the repository's .venv has them).
"""
import argparse
import struct
import sys

import lz4.block
import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


TABLE = crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = (crc >> 8) ^ TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


class Damaged(Exception):
    pass


def parse_header(header):
    if len(header) < 64 or header[0:4] != b"BGOF":
        raise Damaged("no header")
    if header[4] != 1:
        raise Damaged(f"version {header[4]}")
    if crc32c(header[0:60]) != struct.unpack_from("<I", header, 60)[0]:
        raise Damaged("header CRC")
    compression, cipher, shift = header[5], header[6], header[7]
    key_id, frame_count, length = struct.unpack_from("<IIQ", header, 8)
    kind = header[24]
    first, second = struct.unpack_from("<QQ", header, 32)
    return dict(compression=compression, cipher=cipher, frame_size=1 << shift, key_id=key_id,
                frame_count=frame_count, length=length, kind=kind, first=first, second=second,
                bound=bytes(header[0:60]))


def object_key(data_key, scope, h):
    info = scope.encode() + b"\0" + bytes([h["kind"]]) + struct.pack("<QQ", h["first"], h["second"])
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"blockgate object v1", info=info).derive(data_key)


class Reader:
    def __init__(self, read, scope, data_key):
        """`read(offset, length)` returns bytes of the object, as a ranged GET would."""
        self.read = read
        self.h = parse_header(read(0, 64))
        h = self.h
        self.trailer = 4 if h["cipher"] == 0 else 16
        self.aead = None
        if h["cipher"] != 0:
            if data_key is None:
                raise Damaged("the object is encrypted: give --key")
            key = object_key(data_key, scope, h)
            self.aead = AESGCM(key) if h["cipher"] == 1 else ChaCha20Poly1305(key)
        self.entries = None
        if h["compression"] != 0:
            n = h["frame_count"]
            table = read(64, 4 * n + self.trailer)
            entries_bytes, trailer = table[: 4 * n], table[4 * n:]
            tag = b"\xff\xff\xff\xff\xff"
            if self.aead is None:
                if crc32c(h["bound"] + tag + entries_bytes) != struct.unpack("<I", trailer)[0]:
                    raise Damaged("frame table CRC")
            else:
                self.open(trailer, 0xFFFFFFFF, h["bound"] + tag + entries_bytes)
            self.entries = [struct.unpack_from("<I", entries_bytes, 4 * i)[0] for i in range(n)]
            self.offsets = []
            offset = 64 + 4 * n + self.trailer
            for entry in self.entries:
                self.offsets.append(offset)
                if entry >> 30 != 2:
                    offset += (entry & 0x3FFFFFFF) + self.trailer

    def open(self, sealed, number, aad):
        nonce = struct.pack("<I", number) + bytes(8)
        try:
            return self.aead.decrypt(nonce, sealed, aad)
        except Exception as error:  # cryptography's InvalidTag
            raise Damaged(f"frame {number} tag") from error

    def frame_length(self, i):
        return min(self.h["frame_size"], self.h["length"] - i * self.h["frame_size"])

    def frame(self, i):
        plain_length = self.frame_length(i)
        if self.entries is None:
            encoding, length = 0, plain_length
            offset = 64 + i * (self.h["frame_size"] + self.trailer)
        else:
            encoding, length, offset = self.entries[i] >> 30, self.entries[i] & 0x3FFFFFFF, self.offsets[i]
        if encoding == 2:
            return bytes(plain_length)
        stored = self.read(offset, length + self.trailer)
        tag = struct.pack("<I", i) + bytes([encoding])
        if self.aead is None:
            payload = stored[:length]
            if crc32c(self.h["bound"] + tag + payload) != struct.unpack("<I", stored[length:])[0]:
                raise Damaged(f"frame {i} CRC")
        else:
            payload = self.open(stored, i, self.h["bound"] + tag)
        if encoding == 0:
            data = payload
        elif self.h["compression"] == 1:
            data = lz4.block.decompress(payload, uncompressed_size=plain_length)
        else:
            data = zstandard.ZstdDecompressor().decompress(payload, max_output_size=plain_length)
        if len(data) != plain_length:
            raise Damaged(f"frame {i} length")
        return data

    def bytes(self, start, end):
        size = self.h["frame_size"]
        first, last = start // size, (end - 1) // size
        data = b"".join(self.frame(i) for i in range(first, last + 1))
        return data[start - first * size: end - first * size]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("object")
    parser.add_argument("--scope", required=True, help="the volume's uuid")
    parser.add_argument("--key", help="the volume's data key, 64 hex digits")
    parser.add_argument("--range", help="START:END of the object's data")
    arguments = parser.parse_args()
    assert crc32c(b"123456789") == 0xE3069283
    with open(arguments.object, "rb") as file:
        whole = file.read()

    def read(offset, length):
        if offset + length > len(whole):
            raise Damaged("the object is too short")
        return whole[offset: offset + length]

    try:
        reader = Reader(read, arguments.scope, bytes.fromhex(arguments.key) if arguments.key else None)
        if arguments.range:
            start, end = (int(part) for part in arguments.range.split(":"))
        else:
            start, end = 0, reader.h["length"]
        sys.stdout.buffer.write(reader.bytes(start, end))
    except Damaged as error:
        print(f"read_object: damaged: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
