"""Encoding a Swagger 2.0 document (as a dict) in the gnostic OpenAPIv2 protobuf format.

kubectl 1.27 and 1.28 fetch `/openapi/v2` asking for
`application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and decode the body with
`proto.Unmarshal` into gnostic's `openapi.v2.Document` whatever the Content-Type says, so a JSON
answer fails. Field numbers follow gnostic's openapiv2/OpenAPIv2.proto. Vendor extensions travel as
`NamedAny` whose `Any.yaml` holds the value as text (JSON is valid YAML).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

_WIRE_VARINT = 0
_WIRE_BYTES = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _key(number, _WIRE_BYTES) + _varint(len(payload)) + payload


def _string(number: int, value: str | None) -> bytes:
    return _bytes_field(number, value.encode()) if value else b""


def _strings(number: int, values: Iterable[str]) -> bytes:
    return b"".join(_bytes_field(number, value.encode()) for value in values)


def _bool(number: int, value: bool | None) -> bytes:
    return _key(number, _WIRE_VARINT) + b"\x01" if value else b""


def _message(number: int, payload: bytes) -> bytes:
    return _bytes_field(number, payload)


def _any(value: Any) -> bytes:
    """gnostic Any: the value as YAML text in field 2."""
    return _string(2, json.dumps(value, separators=(",", ":")))


def _named_any(number: int, name: str, value: Any) -> bytes:
    return _message(number, _string(1, name) + _message(2, _any(value)))


def _extensions(number: int, source: dict[str, Any]) -> bytes:
    return b"".join(_named_any(number, key, value) for key, value in source.items() if key.startswith("x-"))


def encode_schema(schema: dict[str, Any]) -> bytes:
    out = [
        _string(1, schema.get("$ref")),
        _string(2, schema.get("format")),
        _string(3, schema.get("title")),
        _string(4, schema.get("description")),
        _strings(19, schema.get("required", ())),
    ]
    if "default" in schema:
        out.append(_message(5, _any(schema["default"])))
    for value in schema.get("enum", ()):
        out.append(_message(20, _any(value)))
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        out.append(_message(21, _message(1, encode_schema(additional))))
    elif isinstance(additional, bool):
        out.append(_message(21, _key(2, _WIRE_VARINT) + (b"\x01" if additional else b"\x00")))
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        out.append(_message(22, _strings(1, types)))
    if "items" in schema:
        out.append(_message(23, _message(1, encode_schema(schema["items"]))))
    out.extend(_message(24, encode_schema(part)) for part in schema.get("allOf", ()))
    if "properties" in schema:
        out.append(_message(25, _named_schemas(1, schema["properties"])))
    out.append(_bool(27, schema.get("readOnly")))
    out.append(_extensions(31, schema))
    return b"".join(out)


def _named_schemas(number: int, schemas: dict[str, dict[str, Any]]) -> bytes:
    return b"".join(
        _message(number, _string(1, name) + _message(2, encode_schema(schema))) for name, schema in schemas.items()
    )


def _parameter(param: dict[str, Any]) -> bytes:
    """A ParametersItem holding an inline Parameter (body, query or path)."""
    where = param.get("in")
    if "$ref" in param:
        return _message(2, _string(1, param["$ref"]))
    if where == "body":
        body = (
            _string(1, param.get("description"))
            + _string(2, param["name"])
            + _string(3, "body")
            + _bool(4, param.get("required"))
            + _message(5, encode_schema(param.get("schema", {})))
        )
        return _message(1, _message(1, body))
    common = _bool(1, param.get("required")) + _string(2, where) + _string(3, param.get("description"))
    common += _string(4, param["name"])
    if where == "path":
        sub = common + _string(5, param.get("type")) + _string(6, param.get("format"))
        return _message(1, _message(2, _message(4, sub)))
    sub = common + _bool(5, param.get("allowEmptyValue")) + _string(6, param.get("type"))
    sub += _string(7, param.get("format")) + _bool(20, param.get("uniqueItems"))
    return _message(1, _message(2, _message(3, sub)))


def _responses(responses: dict[str, Any]) -> bytes:
    out = []
    for code, response in responses.items():
        body = _string(1, response.get("description"))
        if "schema" in response:
            body += _message(2, _message(1, encode_schema(response["schema"])))
        out.append(_message(1, _string(1, code) + _message(2, _message(1, body))))
    return b"".join(out)


def _operation(operation: dict[str, Any]) -> bytes:
    out = [
        _strings(1, operation.get("tags", ())),
        _string(2, operation.get("summary")),
        _string(3, operation.get("description")),
        _string(5, operation.get("operationId")),
        _strings(6, operation.get("produces", ())),
        _strings(7, operation.get("consumes", ())),
    ]
    out.extend(_message(8, _parameter(param)) for param in operation.get("parameters", ()))
    out.append(_message(9, _responses(operation.get("responses", {}))))
    out.append(_strings(10, operation.get("schemes", ())))
    out.append(_extensions(13, operation))
    return b"".join(out)


_PATH_ITEM_FIELDS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _path_item(item: dict[str, Any]) -> bytes:
    out = [_message(number, _operation(item[method])) for method, number in _PATH_ITEM_FIELDS.items() if method in item]
    out.extend(_message(9, _parameter(param)) for param in item.get("parameters", ()))
    out.append(_extensions(10, item))
    return b"".join(out)


def _security_definitions(definitions: dict[str, Any]) -> bytes:
    out = []
    for name, scheme in definitions.items():
        # Only API-key schemes (the bearer token header) are described by Skiff's documents.
        api_key = (
            _string(1, scheme.get("type"))
            + _string(2, scheme.get("name"))
            + _string(3, scheme.get("in"))
            + _string(4, scheme.get("description"))
        )
        out.append(_message(1, _string(1, name) + _message(2, _message(2, api_key))))
    return b"".join(out)


def _security(requirements: list[dict[str, list[str]]]) -> bytes:
    out = []
    for requirement in requirements:
        named = b"".join(
            _message(1, _string(1, name) + _message(2, _strings(1, scopes))) for name, scopes in requirement.items()
        )
        out.append(_message(12, named))
    return b"".join(out)


def encode_document(document: dict[str, Any]) -> bytes:
    """The gnostic `openapi.v2.Document` encoding of a Swagger 2.0 document."""
    info = document.get("info", {})
    paths = b"".join(
        _message(2, _string(1, path) + _message(2, _path_item(item)))
        for path, item in document.get("paths", {}).items()
    )
    out = [
        _string(1, document.get("swagger", "2.0")),
        _message(2, _string(1, info.get("title")) + _string(2, info.get("version"))),
        _strings(5, document.get("schemes", ())),
        _strings(6, document.get("consumes", ())),
        _strings(7, document.get("produces", ())),
        _message(8, paths),
        _message(9, _named_schemas(1, document.get("definitions", {}))),
        _security(document.get("security", [])),
    ]
    if "securityDefinitions" in document:
        out.append(_message(13, _security_definitions(document["securityDefinitions"])))
    out.append(_extensions(16, document))
    return b"".join(out)
