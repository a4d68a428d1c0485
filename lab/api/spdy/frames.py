"""SPDY/3 frames: parsing a byte stream into frames, and writing the few the server sends."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from lab.api.spdy.dictionary import DICTIONARY

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN = 0x01
MAX_FRAME = 1 << 24


class ProtocolError(Exception):
    pass


@dataclass
class Frame:
    control: bool
    kind: int  # a control frame's type; 0 for data
    flags: int
    stream_id: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    status: int = 0  # RST_STREAM's status, PING's id

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class HeaderCodec:
    """One direction's header compression: a zlib stream primed with the dictionary."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    def decode(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        if len(raw) < 4:
            raise ProtocolError("a header block without its count")
        (count,), at = struct.unpack_from(">I", raw), 4
        headers: dict[str, str] = {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", raw, at)
            name = raw[at + 4 : at + 4 + size].decode()
            at += 4 + size
            (size,) = struct.unpack_from(">I", raw, at)
            # Several values of one name are NUL-separated: the first is what is used here.
            headers[name.lower()] = raw[at + 4 : at + 4 + size].decode().split("\0")[0]
            at += 4 + size
        return headers

    def encode(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for name, value in headers.items():
            raw += struct.pack(">I", len(name)) + name.lower().encode()
            raw += struct.pack(">I", len(value)) + value.encode()
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


class Parser:
    """Bytes in (in any pieces), frames out."""

    def __init__(self, codec: HeaderCodec) -> None:
        self.codec = codec
        self.buffer = b""

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= 8:
            word, flags_length = struct.unpack_from(">II", self.buffer)
            length = flags_length & 0xFFFFFF
            if len(self.buffer) < 8 + length:
                break
            body = self.buffer[8 : 8 + length]
            self.buffer = self.buffer[8 + length :]
            frames.append(self._frame(word, flags_length >> 24, body))
        return frames

    def _frame(self, word: int, flags: int, body: bytes) -> Frame:
        if not word & 0x80000000:
            return Frame(False, 0, flags, word & 0x7FFFFFFF, data=body)
        version, kind = (word >> 16) & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}, not {VERSION}")
        frame = Frame(True, kind, flags)
        if kind == SYN_STREAM:
            frame.stream_id = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            frame.headers = self.codec.decode(body[10:])
        elif kind in (SYN_REPLY, HEADERS):
            frame.stream_id = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            frame.headers = self.codec.decode(body[4:])
        elif kind == RST_STREAM:
            stream, status = struct.unpack_from(">II", body)
            frame.stream_id, frame.status = stream & 0x7FFFFFFF, status
        elif kind == PING:
            frame.status = struct.unpack_from(">I", body)[0]
        elif kind == WINDOW_UPDATE:
            frame.stream_id = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
        return frame


def _control(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body


def syn_reply(codec: HeaderCodec, stream_id: int, headers: dict[str, str]) -> bytes:
    return _control(SYN_REPLY, 0, struct.pack(">I", stream_id) + codec.encode(headers))


def rst_stream(stream_id: int, status: int) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def ping(ping_id: int) -> bytes:
    return _control(PING, 0, struct.pack(">I", ping_id))


def goaway(last_stream: int) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_stream, 0))


def data(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(payload)) + payload


def chunks(stream_id: int, payload: bytes, size: int = 1 << 16) -> list[bytes]:
    """A payload as data frames no larger than `size` (well under the 24-bit limit)."""
    return [data(stream_id, payload[i : i + size]) for i in range(0, len(payload), size)]
