"""The protobuf wire format, decoded by hand: enough for TensorBoard events and W&B records, with no protobuf,
tensorflow or wandb import.

A message is a sequence of fields ``(tag varint, value)``; the tag's low 3 bits give the wire type (0 varint,
1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit). Length-delimited values (strings, bytes, sub-messages,
packed arrays) are returned as ``memoryview`` slices, so a large payload that is not needed (an image) is skipped
without being copied. Malformed input raises ``WireError``; the readers turn it into a message on the model.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, I64, LEN, I32 = 0, 1, 2, 5


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Each field of a message as ``(number, wire type, value)``: an int for varints and fixed-width values (their
    raw bits), a memoryview for length-delimited ones."""
    view = memoryview(buf)
    pos, end = 0, len(view)
    while pos < end:
        tag, pos = varint(view, pos)
        number, wire = tag >> 3, tag & 7
        if wire == VARINT:
            value, pos = varint(view, pos)
            yield number, wire, value
        elif wire == LEN:
            size, pos = varint(view, pos)
            if pos + size > end:
                raise WireError("truncated field")
            yield number, wire, view[pos:pos + size]
            pos += size
        elif wire == I64:
            if pos + 8 > end:
                raise WireError("truncated field")
            yield number, wire, int.from_bytes(view[pos:pos + 8], "little")
            pos += 8
        elif wire == I32:
            if pos + 4 > end:
                raise WireError("truncated field")
            yield number, wire, int.from_bytes(view[pos:pos + 4], "little")
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire}")


def as_double(bits: int) -> float:
    return struct.unpack("<d", bits.to_bytes(8, "little"))[0]


def as_float(bits: int) -> float:
    return struct.unpack("<f", bits.to_bytes(4, "little"))[0]


def as_signed(value: int) -> int:
    """An int64 varint as a signed number (negatives are written as 64-bit two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def text(value: int | memoryview) -> str:
    if isinstance(value, int):
        raise WireError("expected a string field")
    return bytes(value).decode("utf-8", errors="replace")


def packed_floats(value: memoryview, width: int) -> list[float]:
    """A packed repeated float (width 4) or double (width 8) field."""
    count = len(value) // width
    return list(struct.unpack(f"<{count}{'f' if width == 4 else 'd'}", value[:count * width]))
