"""Decoding of `application/vnd.kubernetes.protobuf` request bodies.

kubectl 1.32 and later send typed-client writes (`create deployment`, `create token`, `auth can-i`, ...)
as protobuf: the magic bytes `k8s\\x00`, then a `runtime.Unknown` envelope carrying the apiVersion, the
kind and the object in its protobuf encoding. `decode_protobuf_object` turns such a body into the dict
that the same object's JSON encoding would give, so everything after content negotiation sees one shape.

The decoder is driven by the message tables in `protobuf_messages`, checks every length against the
bytes that remain and bounds nesting, so hostile bodies end in a 400 rather than a crash or a hang.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from apiserver.http.protobuf_messages import MESSAGES, NULL_WHEN_ABSENT, TOP_LEVEL, VARINT_KINDS, Field, Kind
from skiff.api import errors

MAGIC = b"k8s\x00"
PROTOBUF_MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

# Nesting is bounded by the schema (no message contains itself) except through embedded raw objects;
# this cap keeps even a hand-made body from recursing deeply.
MAX_DEPTH = 64

WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_BYTES = 2
WIRE_FIXED32 = 5

_MAX_VARINT_BYTES = 10
# 0001-01-01T00:00:00Z, Go's zero time, as Unix seconds.
_GO_ZERO_TIME_SECONDS = -62135596800
_UINT64 = 1 << 64


class _Malformed(Exception):
    """The body is not a well-formed protobuf message; becomes a 400 at the public boundary."""


def decode_protobuf_object(body: bytes) -> dict[str, Any]:
    """Decode a Kubernetes protobuf request body into its JSON-shaped dict.

    Raises ApiError 400 when the body is not a well-formed Kubernetes protobuf object and 415 when it
    is well formed but its kind is not one this server can decode.
    """
    if not body.startswith(MAGIC):
        raise errors.bad_request(
            "the body is not a Kubernetes protobuf object: it does not start with the 'k8s\\x00' prefix"
        )
    try:
        return _decode_envelope(memoryview(body)[len(MAGIC) :], depth=0)
    except _Malformed as exc:
        raise errors.bad_request(f"the protobuf body could not be decoded: {exc}") from None


def _decode_envelope(data: memoryview, depth: int) -> dict[str, Any]:
    envelope = _read_envelope(data)
    api_version, kind = envelope.api_version, envelope.kind
    if not api_version or not kind:
        raise _Malformed("the envelope does not name the object's apiVersion and kind")
    if envelope.content_encoding:
        raise _unsupported(f'content encoding "{envelope.content_encoding}"')
    if envelope.content_type in ("", PROTOBUF_MEDIA_TYPE):
        obj = _decode_typed(envelope.raw, api_version, kind, depth)
    elif envelope.content_type == "application/json":
        obj = _parse_json_object(envelope.raw)
    else:
        raise _unsupported(f'content type "{envelope.content_type}" inside the protobuf envelope')
    return {"kind": kind, "apiVersion": api_version, **obj}


@dataclass
class _Envelope:
    """runtime.Unknown: typeMeta = 1, raw = 2, contentEncoding = 3, contentType = 4."""

    api_version: str = ""
    kind: str = ""
    raw: memoryview = field(default_factory=lambda: memoryview(b""))
    content_encoding: str = ""
    content_type: str = ""


def _read_envelope(data: memoryview) -> _Envelope:
    # Read by hand rather than through the tables so that `raw` stays a view, not a copy.
    envelope = _Envelope()
    reader = _Reader(data)
    while not reader.at_end():
        key = reader.varint()
        number, wire_type = key >> 3, key & 7
        if number not in (1, 2, 3, 4):
            reader.skip(wire_type)
            continue
        _expect_wire(wire_type, WIRE_BYTES, "Unknown")
        chunk = reader.length_delimited()
        if number == 1:
            type_meta = _decode_message(chunk, "TypeMeta", 1)
            envelope.api_version = type_meta.get("apiVersion", "")
            envelope.kind = type_meta.get("kind", "")
        elif number == 2:
            envelope.raw = chunk
        elif number == 3:
            envelope.content_encoding = _text(chunk, "Unknown.contentEncoding")
        else:
            envelope.content_type = _text(chunk, "Unknown.contentType")
    return envelope


def _decode_typed(raw: memoryview, api_version: str, kind: str, depth: int) -> dict[str, Any]:
    message = TOP_LEVEL.get((api_version, kind))
    if message is None:
        raise _unsupported(f"{kind} in {api_version}", kind=kind)
    # Objects carry no typeMeta of their own in protobuf; the envelope's names them.
    return _decode_message(raw, message, depth + 1)


def _unsupported(what: str, kind: str | None = None) -> errors.ApiError:
    return errors.ApiError(
        415,
        "UnsupportedMediaType",
        f"the server cannot decode {what} from {PROTOBUF_MEDIA_TYPE}; send it as application/json",
        kind=kind,
    )


def _parse_json_object(raw: memoryview) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Malformed(f"embedded JSON is invalid: {exc}") from None
    if not isinstance(obj, dict):
        raise _Malformed("embedded JSON is not an object")
    return obj


# ---------------------------------------------------------------------------------------------------
# Wire format


class _Reader:
    """A cursor over one message's bytes that refuses to read past the end."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def at_end(self) -> bool:
        return self.pos >= self.end

    def varint(self) -> int:
        result = 0
        for shift in range(0, 7 * _MAX_VARINT_BYTES, 7):
            if self.pos >= self.end:
                raise _Malformed("truncated varint")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                if result >= _UINT64:
                    raise _Malformed("varint does not fit in 64 bits")
                return result
        raise _Malformed("varint longer than 10 bytes")

    def take(self, length: int) -> memoryview:
        if length > self.end - self.pos:
            raise _Malformed(f"field length {length} runs past the end of the message")
        chunk = self.data[self.pos : self.pos + length]
        self.pos += length
        return chunk

    def length_delimited(self) -> memoryview:
        return self.take(self.varint())

    def skip(self, wire_type: int) -> None:
        if wire_type == WIRE_VARINT:
            self.varint()
        elif wire_type == WIRE_FIXED64:
            self.take(8)
        elif wire_type == WIRE_BYTES:
            self.length_delimited()
        elif wire_type == WIRE_FIXED32:
            self.take(4)
        else:
            raise _Malformed(f"unsupported wire type {wire_type}")


def _signed64(value: int) -> int:
    return value - _UINT64 if value >= 1 << 63 else value


def _signed32(value: int) -> int:
    # Go writes a negative int32 as a sign-extended 64-bit varint; the low 32 bits are the value.
    low = value & 0xFFFFFFFF
    return low - (1 << 32) if low >= 1 << 31 else low


def _text(chunk: memoryview, where: str) -> str:
    try:
        return str(chunk, "utf-8")
    except UnicodeDecodeError:
        raise _Malformed(f"{where} is not valid UTF-8") from None


# ---------------------------------------------------------------------------------------------------
# Schema-driven decoding


def _decode_message(data: memoryview, message: str, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise _Malformed(f"messages are nested more than {MAX_DEPTH} deep")
    fields = MESSAGES[message]
    out: dict[str, Any] = {}
    reader = _Reader(data)
    while not reader.at_end():
        key = reader.varint()
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise _Malformed(f"field number 0 in {message}")
        field = fields.get(number)
        if field is None:
            # Fields newer than this table are skipped, as an older kube-apiserver would skip them.
            reader.skip(wire_type)
            continue
        _decode_field(reader, wire_type, field, out, f"{message}.{field.name}", depth)
    for name in NULL_WHEN_ABSENT[message]:
        # Lists without omitempty appear in JSON as null when they are empty.
        out.setdefault(name, None)
    return out


def _decode_field(reader: _Reader, wire_type: int, field: Field, out: dict[str, Any], where: str, depth: int) -> None:
    if field.is_map:
        _expect_wire(wire_type, WIRE_BYTES, where)
        key, value = _decode_map_entry(reader.length_delimited(), field, where, depth)
        entries = out.get(field.name)
        if entries is None:
            entries = out[field.name] = {}
        entries[key] = value
    elif field.repeated:
        items = out.get(field.name)
        if items is None:
            items = out[field.name] = []
        items.extend(_decode_repeated(reader, wire_type, field, where, depth))
    elif field.inline:
        _expect_wire(wire_type, WIRE_BYTES, where)
        out.update(_decode_message(reader.length_delimited(), field.message, depth + 1))
    else:
        value = _decode_single(reader, wire_type, field, where, depth)
        if field.keep or field.kind not in _OMIT_WHEN_ZERO or value:
            out[field.name] = value
        else:
            out.pop(field.name, None)


# Scalars whose zero value `omitempty` drops; messages (Go structs) are always written.
_OMIT_WHEN_ZERO = frozenset({Kind.STRING, Kind.BYTES, Kind.BOOL, Kind.INT32, Kind.INT64})


def _decode_repeated(reader: _Reader, wire_type: int, field: Field, where: str, depth: int) -> list[Any]:
    if field.kind in VARINT_KINDS and wire_type == WIRE_BYTES:
        # Packed encoding: one length-delimited run of varints.
        packed = _Reader(reader.length_delimited())
        values = []
        while not packed.at_end():
            values.append(_varint_value(packed.varint(), field.kind))
        return values
    return [_decode_single(reader, wire_type, field, where, depth)]


def _decode_map_entry(chunk: memoryview, field: Field, where: str, depth: int) -> tuple[str, Any]:
    value_field = Field("value", field.kind, field.message)
    entry = _Reader(chunk)
    key = ""
    value: Any = _zero_value(value_field)
    while not entry.at_end():
        tag = entry.varint()
        number, wire_type = tag >> 3, tag & 7
        if number == 1:
            _expect_wire(wire_type, WIRE_BYTES, where)
            key = _text(entry.length_delimited(), f"{where} key")
        elif number == 2:
            value = _decode_single(entry, wire_type, value_field, f"{where}[{key}]", depth)
        else:
            entry.skip(wire_type)
    return key, value


def _zero_value(field: Field) -> Any:
    if field.kind in (Kind.STRING, Kind.BYTES):
        return ""
    if field.kind in VARINT_KINDS:
        return _varint_value(0, field.kind)
    if field.kind is Kind.MESSAGE:
        return {}
    return None


def _expect_wire(actual: int, expected: int, where: str) -> None:
    if actual != expected:
        raise _Malformed(f"{where} has wire type {actual}, expected {expected}")


def _varint_value(raw: int, kind: Kind) -> bool | int:
    if kind is Kind.BOOL:
        return raw != 0
    if kind is Kind.INT32:
        return _signed32(raw)
    return _signed64(raw)


def _decode_single(reader: _Reader, wire_type: int, field: Field, where: str, depth: int) -> Any:
    if field.kind in VARINT_KINDS:
        _expect_wire(wire_type, WIRE_VARINT, where)
        return _varint_value(reader.varint(), field.kind)
    _expect_wire(wire_type, WIRE_BYTES, where)
    chunk = reader.length_delimited()
    decode = _BYTES_DECODERS.get(field.kind)
    if decode is not None:
        return decode(chunk, where)
    if field.kind is Kind.JSON:
        return _decode_raw_json(chunk, depth)
    return _decode_message(chunk, field.message, depth + 1)


def _decode_bytes(chunk: memoryview, where: str) -> str:
    # JSON carries []byte as standard base64, so the dict holds what a JSON body would.
    return base64.b64encode(chunk).decode("ascii")


def _decode_quantity(chunk: memoryview, where: str) -> str:
    return _decode_message(chunk, "Quantity", 0).get("string", "")


def _decode_intstr(chunk: memoryview, where: str) -> int | str:
    value = _decode_message(chunk, "IntOrString", 0)
    if value.get("type", 0) == 1:
        return value.get("strVal", "")
    return value.get("intVal", 0)


def _decode_string_list(chunk: memoryview, where: str) -> list[str]:
    return _decode_message(chunk, "StringList", 0).get("items", [])


def _decode_time(chunk: memoryview, where: str) -> str | None:
    # An empty Time message is Go's zero time, which JSON writes as null; seconds are all JSON keeps.
    if len(chunk) == 0:
        return None
    seconds = _decode_message(chunk, "Timestamp", 0).get("seconds", 0)
    if seconds == _GO_ZERO_TIME_SECONDS:
        return None
    return _rfc3339(_utc(seconds, where)) + "Z"


def _decode_microtime(chunk: memoryview, where: str) -> str | None:
    if len(chunk) == 0:
        return None
    stamp = _decode_message(chunk, "Timestamp", 0)
    nanos = stamp.get("nanos", 0)
    if not 0 <= nanos < 1_000_000_000:
        raise _Malformed(f"{where} has nanoseconds out of range")
    moment = _utc(stamp.get("seconds", 0), where)
    return f"{_rfc3339(moment)}.{nanos // 1000:06d}Z"


def _rfc3339(moment: datetime) -> str:
    # Spelled out because strftime does not pad years below 1000 on every platform.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def _utc(seconds: int, where: str) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise _Malformed(f"{where} is out of the representable time range") from None


def _decode_raw_json(chunk: memoryview, depth: int) -> Any:
    """A RawExtension or FieldsV1: a message whose field 1 holds JSON, or (rarely) a nested object."""
    raw = _raw_field(chunk)
    if len(raw) == 0:
        return None
    if bytes(raw[: len(MAGIC)]) == MAGIC:
        return _decode_envelope(raw[len(MAGIC) :], depth + 1)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Malformed(f"embedded JSON is invalid: {exc}") from None


def _raw_field(chunk: memoryview) -> memoryview:
    reader = _Reader(chunk)
    raw = memoryview(b"")
    while not reader.at_end():
        key = reader.varint()
        if key >> 3 == 1:
            _expect_wire(key & 7, WIRE_BYTES, "raw")
            raw = reader.length_delimited()
        else:
            reader.skip(key & 7)
    return raw


_BYTES_DECODERS = {
    Kind.STRING: lambda chunk, where: _text(chunk, where),
    Kind.BYTES: _decode_bytes,
    Kind.QUANTITY: _decode_quantity,
    Kind.INTSTR: _decode_intstr,
    Kind.TIME: _decode_time,
    Kind.MICROTIME: _decode_microtime,
    Kind.STRING_LIST: _decode_string_list,
}
