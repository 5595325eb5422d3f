#!/usr/bin/env python3
"""Writes the seed corpus of the NBD wire fuzzer: valid client sides of whole connections
(client flags, options, requests), one file each.   make-corpus.py DIRECTORY"""
import os
import struct
import sys

OPT_MAGIC = 0x49484156454F5054
REQUEST_MAGIC = 0x25609513
EXTENDED_MAGIC = 0x21E41C71
FLAGS = struct.pack(">I", 3)  # fixed newstyle, no zeroes


def option(code, data=b""):
    return struct.pack(">QII", OPT_MAGIC, code, len(data)) + data


def name(text):
    return struct.pack(">I", len(text)) + text.encode()


def go(export, infos=()):
    return option(7, name(export) + struct.pack(">H", len(infos)) + b"".join(struct.pack(">H", i) for i in infos))


def request(command, offset=0, length=0, payload=b"", flags=0, cookie=1):
    return struct.pack(">IHHQQI", REQUEST_MAGIC, flags, command, cookie, offset, length) + payload


def extended(command, offset=0, length=0, payload=b"", flags=0, cookie=1):
    return struct.pack(">IHHQQQ", EXTENDED_MAGIC, flags, command, cookie, offset, length) + payload


def meta_context(export, *queries):
    return option(10, name(export) + struct.pack(">I", len(queries)) + b"".join(name(q) for q in queries))


DISC = request(2)
SEEDS = {
    "flags-only": FLAGS,
    "list-abort": FLAGS + option(3) + option(2),
    "info-unknown-export": FLAGS + option(6, name("nope") + struct.pack(">H", 0)) + option(2),
    "go-read-write-flush-trim": FLAGS + option(8) + go("disk", (0, 3))
    + request(1, 4096, 512, b"\xab" * 512) + request(0, 0, 8192, cookie=2) + request(3, cookie=3)
    + request(4, 0, 4096, cookie=4) + DISC,
    "export-name-zeroes-cache": FLAGS + option(1, b"disk") + request(6, 8192, 4096, flags=2)
    + request(5, 0, 65536, cookie=2) + request(1, 0, 3, b"xyz", flags=1, cookie=3) + DISC,
    "meta-context-block-status": FLAGS + option(8) + meta_context("disk", "base:allocation")
    + go("disk") + request(7, 0, 1 << 20) + request(7, 4096, 4096, flags=8, cookie=2) + DISC,
    "extended-headers": FLAGS + option(11) + go("disk") + extended(1, 0, 8, b"12345678", flags=32)
    + extended(0, 0, 4096, cookie=2) + extended(2),
    "out-of-range": FLAGS + go("") + request(0, 1 << 20, 4096) + request(1, (1 << 20) - 2, 4, b"abcd") + DISC,
    "starttls-unsupported": FLAGS + option(5) + option(9, name("disk") + struct.pack(">I", 0)) + option(2),
}

directory = sys.argv[1]
os.makedirs(directory, exist_ok=True)
for key, data in SEEDS.items():
    with open(os.path.join(directory, "seed-" + key), "wb") as seed:
        seed.write(data)
print(f"wrote {len(SEEDS)} seeds to {directory}")
