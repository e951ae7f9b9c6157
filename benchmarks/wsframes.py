"""Just enough RFC 6455 for a client that receives text frames: handshake, frame walk, pong.

A full WebSocket client library costs more CPU per message than the servers under test spend, so
the load client walks frame headers itself. Server frames are never masked; the client's own
few frames (pongs, RPC replies) use an all-zero masking key, which leaves the payload as is:
valid framing that servers accept, and free to produce. No extensions are offered, so nothing is
compressed.
"""

from __future__ import annotations

import base64
import os
import struct

TEXT = 0x1
BINARY = 0x2
CONTINUATION = 0x0
CLOSE = 0x8
PING = 0x9
PONG = 0xA


def handshake(host: str, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked client frame (masking key 0, so the payload bytes are unchanged)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + b"\x00\x00\x00\x00" + payload


def walk(buf: bytes | bytearray) -> tuple[int, list[tuple[int, int, int]]]:
    """Find the complete frames at the start of ``buf``.

    Returns how many bytes they take, and ``(opcode, payload_start, payload_end)`` of each frame
    that is not a plain text frame (control frames, binary, continuations), so the caller can
    treat the common case, all text, without looking at frames one by one.
    """
    pos, end = 0, len(buf)
    others: list[tuple[int, int, int]] = []
    while pos + 2 <= end:
        first, second = buf[pos], buf[pos + 1]
        size = second & 0x7F
        start = pos + 2
        if size == 126:
            if start + 2 > end:
                break
            size = (buf[start] << 8) | buf[start + 1]
            start += 2
        elif size == 127:
            if start + 8 > end:
                break
            size = int.from_bytes(buf[start : start + 8], "big")
            start += 8
        if second & 0x80:  # a masked server frame is a protocol error; skip its key
            start += 4
        stop = start + size
        if stop > end:
            break
        opcode = first & 0x0F
        if opcode != TEXT:
            others.append((opcode, start, stop))
        pos = stop
    return pos, others
