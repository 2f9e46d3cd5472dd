"""ConfigMaps, Secrets and ServiceAccounts."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from apiserver.registry import printing as p
from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Obj, Strategy, age_of
from skiff.api import validation as v
from skiff.api.errors import Cause

MAX_DATA_SIZE = 1024 * 1024
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"
REDACTED = "<secret contents redacted>"
SERVICE_ACCOUNT_NAME_ANNOTATION = "kubernetes.io/service-account.name"

# Keys that each typed Secret must carry in its data.
REQUIRED_SECRET_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}
JSON_SECRET_KEYS = {
    "kubernetes.io/dockercfg": ".dockercfg",
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
}


def _decode(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def validate_immutable_data(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[Cause]:
    """Once `immutable: true` is stored, the data and the flag itself are fixed."""
    if not old.get("immutable"):
        return []
    causes: list[Cause] = []
    if not new.get("immutable"):
        causes.append(v.forbidden("immutable", IMMUTABLE_WHEN_SET))
    for field_name in fields:
        if (new.get(field_name) or {}) != (old.get(field_name) or {}):
            causes.append(v.forbidden(field_name, IMMUTABLE_WHEN_SET))
    return causes


def _validate_keys(data: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for data_key in data:
        causes += v.invalid_each(path, data_key, v.config_key(data_key))
    return causes


class ConfigMapStrategy(Strategy):
    tracks_generation = False

    def validate(self, obj: Obj) -> list[Cause]:
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        causes = _validate_keys(data, "data") + _validate_keys(binary, "binaryData")
        for data_key in set(data) & set(binary):
            causes.append(v.invalid(f"data[{data_key}]", data_key, "duplicate of key present in binaryData"))
        size = sum(len(k) + len(str(val).encode()) for k, val in data.items())
        for data_key, value in binary.items():
            decoded = _decode(value)
            if decoded is None:
                causes.append(v.invalid(f"binaryData[{data_key}]", value, "illegal base64 data"))
            size += len(data_key) + len(decoded or b"")
        if size > MAX_DATA_SIZE:
            causes.append(v.too_long("data", MAX_DATA_SIZE))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_immutable_data(new, old, ("data", "binaryData"))

    def table_columns(self) -> list[Column]:
        return [NAME_COLUMN, p.column("Data", "integer", "Number of keys in the config map."), AGE_COLUMN]

    def table_row(self, obj: Obj) -> list[Any]:
        keys = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
        return [p.name(obj), keys, age_of(obj)]


class SecretStrategy(Strategy):
    tracks_generation = False

    def default(self, obj: Obj) -> None:
        if not obj.get("type"):
            obj["type"] = "Opaque"
        # `stringData` is a write-only convenience: it lands in `data`, encoded, and is not stored.
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict) and string_data:
            data = obj.get("data") or {}
            for data_key, value in string_data.items():
                data[data_key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data

    def validate(self, obj: Obj) -> list[Cause]:
        data = obj.get("data") or {}
        causes = _validate_keys(data, "data")
        size = 0
        for data_key, value in data.items():
            decoded = _decode(value)
            if decoded is None:
                causes.append(v.invalid(f"data[{data_key}]", REDACTED, "illegal base64 data"))
            size += len(decoded or b"")
        if size > MAX_DATA_SIZE:
            causes.append(v.too_long("data", MAX_DATA_SIZE))
        return causes + self._validate_type(obj, data)

    def _validate_type(self, obj: Obj, data: Obj) -> list[Cause]:
        secret_type = obj.get("type", "")
        causes = [v.required(f"data[{k}]") for k in REQUIRED_SECRET_KEYS.get(secret_type, ()) if k not in data]
        json_key = JSON_SECRET_KEYS.get(secret_type)
        if json_key and json_key in data:
            causes += _validate_json(data[json_key], f"data[{json_key}]")
        if secret_type == "kubernetes.io/service-account-token":
            annotations = p.meta(obj).get("annotations") or {}
            if not annotations.get(SERVICE_ACCOUNT_NAME_ANNOTATION):
                causes.append(v.required(f"metadata.annotations[{SERVICE_ACCOUNT_NAME_ANNOTATION}]"))
        if secret_type == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
            causes += [v.required("data[username]"), v.required("data[password]")]
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = validate_immutable_data(new, old, ("data",))
        if new.get("type") != old.get("type"):
            causes.append(v.immutable("type", new.get("type")))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Type", description="The type of the secret."),
            p.column("Data", "integer", "Number of keys in the secret."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        return [p.name(obj), obj.get("type", ""), len(obj.get("data") or {}), age_of(obj)]

    def field_selectors(self) -> dict[str, Any]:
        return {"type": lambda o: o.get("type", "")}


def _validate_json(value: object, path: str) -> list[Cause]:
    decoded = _decode(value)
    if decoded is None:
        return []
    try:
        json.loads(decoded)
    except ValueError as error:
        return [v.invalid(path, REDACTED, str(error))]
    return []


class ServiceAccountStrategy(Strategy):
    return_deleted_object = True

    tracks_generation = False

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for list_name in ("secrets", "imagePullSecrets"):
            for position, reference in enumerate(obj.get(list_name) or []):
                name = reference.get("name") or ""
                if name:
                    path = f"{list_name}[{position}].name"
                    causes += v.invalid_each(path, name, v.dns1123_subdomain(name))
        return causes

    def table_columns(self) -> list[Column]:
        return [NAME_COLUMN, p.column("Secrets", "integer", "Number of secrets of the account."), AGE_COLUMN]

    def table_row(self, obj: Obj) -> list[Any]:
        return [p.name(obj), len(obj.get("secrets") or []), age_of(obj)]
