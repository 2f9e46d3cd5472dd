"""Encryption at rest, configured by a Kubernetes `EncryptionConfiguration` file.

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets]
        providers:
          - aesgcm:
              keys:
                - name: key2
                  secret: <base64 of 16, 24 or 32 random bytes>
          - identity: {}

For each listed resource the first provider (and its first key) encrypts every new write; all providers
are tried on reads, so a value written with an older key stays readable while keys are rotated. An
encrypted value carries the prefix `k8s:enc:<provider>:v1:<key name>:` naming the key that sealed it;
`identity` stores plaintext JSON and reads any value without that prefix.

A value read with anything but the current write key is reported as stale: the API server then writes it
again on an update even when the object did not change, which is how a rewrite of every secret moves
them all onto the current key (the same rule kube-apiserver follows).

The encryption happens at the storage boundary only: the database holds ciphertext, while the watch hub,
the handlers and the responses see plaintext objects. AES-GCM binds each value to its storage key
(resource, namespace, name) as additional authenticated data, so a sealed value copied to another row
does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
ENCRYPTED_PREFIX = b"k8s:enc:"
AES_KEY_SIZES = (16, 24, 32)
GCM_NONCE_SIZE = 12
CBC_BLOCK_SIZE = 16


class EncryptionConfigError(ValueError):
    """The configuration file is missing, malformed or names something unsupported."""


class DecryptionError(Exception):
    """A stored value could not be decrypted with any configured provider."""


class Provider(Protocol):
    def seal(self, plaintext: bytes, context: bytes) -> bytes: ...

    def open(self, stored: bytes, context: bytes) -> tuple[bytes, bool] | None:
        """(plaintext, sealed with this provider's write key) or None when the value is not this provider's."""
        ...


class Identity:
    """Plaintext storage: writes the value unchanged, reads any value that is not encrypted."""

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        return plaintext

    def open(self, stored: bytes, context: bytes) -> tuple[bytes, bool] | None:
        if stored.startswith(ENCRYPTED_PREFIX):
            return None
        return stored, True


@dataclass(frozen=True)
class _Key:
    name: str
    secret: bytes
    prefix: bytes


@dataclass
class _AesProvider:
    kind: str  # aesgcm | aescbc
    keys: list[_Key]

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        key = self.keys[0]
        if self.kind == "aesgcm":
            nonce = os.urandom(GCM_NONCE_SIZE)
            return key.prefix + nonce + AESGCM(key.secret).encrypt(nonce, plaintext, context)
        iv = os.urandom(CBC_BLOCK_SIZE)
        padder = padding.PKCS7(CBC_BLOCK_SIZE * 8).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(key.secret), modes.CBC(iv)).encryptor()
        return key.prefix + iv + encryptor.update(padded) + encryptor.finalize()

    def open(self, stored: bytes, context: bytes) -> tuple[bytes, bool] | None:
        for index, key in enumerate(self.keys):
            if stored.startswith(key.prefix):
                body = stored[len(key.prefix) :]
                return self._decrypt(key, body, context), index == 0
        return None

    def _decrypt(self, key: _Key, body: bytes, context: bytes) -> bytes:
        try:
            if self.kind == "aesgcm":
                return AESGCM(key.secret).decrypt(body[:GCM_NONCE_SIZE], body[GCM_NONCE_SIZE:], context)
            iv, ciphertext = body[:CBC_BLOCK_SIZE], body[CBC_BLOCK_SIZE:]
            decryptor = Cipher(algorithms.AES(key.secret), modes.CBC(iv)).decryptor()
            padded = decryptor.update(ciphertext) + decryptor.finalize()
            unpadder = padding.PKCS7(CBC_BLOCK_SIZE * 8).unpadder()
            return unpadder.update(padded) + unpadder.finalize()
        except (InvalidTag, ValueError):
            raise DecryptionError(f"{self.kind} key {key.name!r} could not decrypt the stored value") from None


@dataclass
class Transformer:
    """The providers of one group of resources, in configuration order (the first one writes)."""

    providers: list[Provider]

    def to_storage(self, plaintext: bytes, context: bytes) -> bytes:
        return self.providers[0].seal(plaintext, context)

    def from_storage(self, stored: bytes, context: bytes) -> tuple[bytes, bool]:
        """(plaintext, stale): stale when the value was not sealed with the current write key."""
        for index, provider in enumerate(self.providers):
            opened = provider.open(stored, context)
            if opened is not None:
                plaintext, current_key = opened
                return plaintext, not (index == 0 and current_key)
        if stored.startswith(ENCRYPTED_PREFIX):
            name = stored[len(ENCRYPTED_PREFIX) :].split(b":", 3)[:3]
            label = ":".join(part.decode("ascii", "replace") for part in name)
            raise DecryptionError(f"no configured key can decrypt a value sealed with {label}")
        raise DecryptionError("the stored value is not encrypted and the configuration has no identity provider")


@dataclass
class EncryptionConfig:
    """Which resources are encrypted, and how; looked up by storage key (`core/secrets`, `apps/deployments`)."""

    rules: list[tuple[list[str], Transformer]]
    source: str = ""
    _cache: dict[str, Transformer | None] = field(default_factory=dict, repr=False)

    def for_resource(self, storage_key: str) -> Transformer | None:
        if storage_key in self._cache:
            return self._cache[storage_key]
        group, _, plural = storage_key.partition("/")
        group = "" if group == "core" else group
        found = None
        for patterns, transformer in self.rules:
            if any(_matches(pattern, group, plural) for pattern in patterns):
                found = transformer
                break
        self._cache[storage_key] = found
        return found

    def encrypts(self, storage_key: str) -> bool:
        transformer = self.for_resource(storage_key)
        return transformer is not None and not isinstance(transformer.providers[0], Identity)


def _matches(pattern: str, group: str, plural: str) -> bool:
    """`secrets` (core), `deployments.apps`, `*.apps`, `*.` (every core resource) and `*.*` (everything)."""
    name, _, pattern_group = pattern.partition(".")
    if pattern_group != group and pattern_group != "*":
        return False
    return name in ("*", plural)


def storage_context(resource: str, namespace: str, name: str) -> bytes:
    """The additional authenticated data that ties a sealed value to its row."""
    return f"{resource}/{namespace}/{name}".encode()


# ---------------------------------------------------------------------------------------------------
# Loading


def load_encryption_config(path: Path) -> EncryptionConfig:
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise EncryptionConfigError(f"{path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise EncryptionConfigError(f"{path}: not valid YAML: {error}") from None
    try:
        return parse_encryption_config(document, str(path))
    except EncryptionConfigError as error:
        raise EncryptionConfigError(f"{path}: {error}") from None


def parse_encryption_config(document: Any, source: str = "") -> EncryptionConfig:
    if not isinstance(document, dict):
        raise EncryptionConfigError("expected an EncryptionConfiguration object")
    if document.get("kind") != KIND or document.get("apiVersion") != API_VERSION:
        raise EncryptionConfigError(f"expected apiVersion {API_VERSION} and kind {KIND}")
    entries = document.get("resources")
    if not isinstance(entries, list) or not entries:
        raise EncryptionConfigError("resources: at least one entry is required")
    rules: list[tuple[list[str], Transformer]] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"resources[{index}]"
        if not isinstance(entry, dict):
            raise EncryptionConfigError(f"{where}: expected an object")
        patterns = entry.get("resources")
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise EncryptionConfigError(f"{where}.resources: a list of resource names is required")
        for pattern in patterns:
            if pattern in seen:
                raise EncryptionConfigError(f"{where}.resources: {pattern!r} is listed more than once")
            seen.add(pattern)
        providers = entry.get("providers")
        if not isinstance(providers, list) or not providers:
            raise EncryptionConfigError(f"{where}.providers: at least one provider is required")
        parsed = [_parse_provider(p, f"{where}.providers[{i}]") for i, p in enumerate(providers)]
        rules.append(([p.lower() for p in patterns], Transformer(parsed)))
    return EncryptionConfig(rules, source)


def _parse_provider(raw: Any, where: str) -> Provider:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise EncryptionConfigError(f"{where}: exactly one provider type is required")
    ((kind, body),) = raw.items()
    if kind == "identity":
        return Identity()
    if kind in ("aesgcm", "aescbc"):
        keys = (body or {}).get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list) or not keys:
            raise EncryptionConfigError(f"{where}.{kind}.keys: at least one key is required")
        return _AesProvider(kind, _parse_keys(kind, keys, f"{where}.{kind}.keys"))
    if kind in ("secretbox", "kms"):
        raise EncryptionConfigError(f"{where}: the {kind} provider is not supported; use aesgcm or aescbc")
    raise EncryptionConfigError(f"{where}: unknown provider {kind!r}")


def _parse_keys(kind: str, raw_keys: Sequence[Any], where: str) -> list[_Key]:
    keys: list[_Key] = []
    for index, raw in enumerate(raw_keys):
        if not isinstance(raw, dict):
            raise EncryptionConfigError(f"{where}[{index}]: expected an object with name and secret")
        name = raw.get("name")
        if not isinstance(name, str) or not name or ":" in name:
            raise EncryptionConfigError(f"{where}[{index}].name: a name without ':' is required")
        if any(k.name == name for k in keys):
            raise EncryptionConfigError(f"{where}[{index}].name: {name!r} is used twice")
        try:
            secret = base64.b64decode(str(raw.get("secret") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise EncryptionConfigError(f"{where}[{index}].secret: not valid base64") from None
        if len(secret) not in AES_KEY_SIZES:
            raise EncryptionConfigError(
                f"{where}[{index}].secret: must be 16, 24 or 32 bytes once base64-decoded, not {len(secret)}"
            )
        keys.append(_Key(name, secret, f"k8s:enc:{kind}:v1:{name}:".encode()))
    return keys


def config_document(keys: Sequence[tuple[str, str]], resources: Sequence[str] = ("secrets",)) -> dict[str, Any]:
    """An EncryptionConfiguration with one aesgcm provider over (name, secret) keys, then identity."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "resources": [
            {
                "resources": list(resources),
                "providers": [
                    {"aesgcm": {"keys": [{"name": name, "secret": secret} for name, secret in keys]}},
                    {"identity": {}},
                ],
            }
        ],
    }
