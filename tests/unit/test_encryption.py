"""Encryption at rest: the EncryptionConfiguration format, sealing, key rotation and refusals."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest
import yaml

from apiserver.storage.encryption import (
    DecryptionError,
    EncryptionConfigError,
    load_encryption_config,
    parse_encryption_config,
    storage_context,
)

SECRET = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'
CONTEXT = storage_context("core/secrets", "default", "db")


def key(size: int = 32) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def config(*providers: dict, resources: tuple[str, ...] = ("secrets",)) -> dict:
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": list(resources), "providers": list(providers)}],
    }


def aes(kind: str, *keys: tuple[str, str]) -> dict:
    return {kind: {"keys": [{"name": name, "secret": secret} for name, secret in keys]}}


K1, K2 = ("key1", key()), ("key2", key())


def secrets_transformer(document: dict):
    transformer = parse_encryption_config(document).for_resource("core/secrets")
    assert transformer is not None
    return transformer


@pytest.mark.parametrize("kind", ["aesgcm", "aescbc"])
def test_sealed_value_names_its_key_and_hides_the_plaintext(kind: str) -> None:
    transformer = secrets_transformer(config(aes(kind, K1), {"identity": {}}))
    sealed = transformer.to_storage(SECRET, CONTEXT)
    assert sealed.startswith(f"k8s:enc:{kind}:v1:key1:".encode())
    assert b"aHVudGVyMg==" not in sealed and b"password" not in sealed
    assert transformer.from_storage(sealed, CONTEXT) == (SECRET, False)


def test_rotation_reads_old_key_and_reports_it_stale() -> None:
    old = secrets_transformer(config(aes("aesgcm", K1)))
    rotated = secrets_transformer(config(aes("aesgcm", K2, K1)))
    sealed_with_old = old.to_storage(SECRET, CONTEXT)
    assert rotated.from_storage(sealed_with_old, CONTEXT) == (SECRET, True)
    resealed = rotated.to_storage(SECRET, CONTEXT)
    assert resealed.startswith(b"k8s:enc:aesgcm:v1:key2:")
    assert rotated.from_storage(resealed, CONTEXT) == (SECRET, False)
    # Once the old key is removed, values still sealed with it cannot be read, and the error says which.
    only_new = secrets_transformer(config(aes("aesgcm", K2)))
    with pytest.raises(DecryptionError, match="aesgcm:v1:key1"):
        only_new.from_storage(sealed_with_old, CONTEXT)


def test_plaintext_from_before_encryption_is_read_through_identity_and_is_stale() -> None:
    transformer = secrets_transformer(config(aes("aesgcm", K1), {"identity": {}}))
    assert transformer.from_storage(SECRET, CONTEXT) == (SECRET, True)
    without_identity = secrets_transformer(config(aes("aesgcm", K1)))
    with pytest.raises(DecryptionError, match="identity"):
        without_identity.from_storage(SECRET, CONTEXT)


def test_identity_first_decrypts_everything_on_rewrite() -> None:
    encrypting = secrets_transformer(config(aes("aesgcm", K1)))
    decrypting = secrets_transformer(config({"identity": {}}, aes("aesgcm", K1)))
    sealed = encrypting.to_storage(SECRET, CONTEXT)
    assert decrypting.from_storage(sealed, CONTEXT) == (SECRET, True)
    assert decrypting.to_storage(SECRET, CONTEXT) == SECRET


def test_a_sealed_value_is_bound_to_its_object() -> None:
    transformer = secrets_transformer(config(aes("aesgcm", K1)))
    sealed = transformer.to_storage(SECRET, CONTEXT)
    with pytest.raises(DecryptionError):
        transformer.from_storage(sealed, storage_context("core/secrets", "default", "other"))


def test_a_tampered_value_is_refused() -> None:
    transformer = secrets_transformer(config(aes("aesgcm", K1)))
    sealed = bytearray(transformer.to_storage(SECRET, CONTEXT))
    sealed[-1] ^= 1
    with pytest.raises(DecryptionError):
        transformer.from_storage(bytes(sealed), CONTEXT)


def test_resource_names_select_what_is_encrypted() -> None:
    parsed = parse_encryption_config(config(aes("aesgcm", K1), resources=("secrets", "deployments.apps")))
    assert parsed.encrypts("core/secrets")
    assert parsed.encrypts("apps/deployments")
    assert not parsed.encrypts("core/configmaps")
    assert parsed.for_resource("apps/secrets") is None
    everything = parse_encryption_config(config(aes("aesgcm", K1), resources=("*.*",)))
    assert everything.encrypts("core/configmaps") and everything.encrypts("apps/deployments")
    core_only = parse_encryption_config(config(aes("aesgcm", K1), resources=("*.",)))
    assert core_only.encrypts("core/configmaps") and not core_only.encrypts("apps/deployments")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**config({"identity": {}}), "kind": "EncryptionConfig"}, "kind EncryptionConfiguration"),
        (config(aes("aesgcm", ("k", "not base64!"))), "not valid base64"),
        (config(aes("aesgcm", ("k", key(20)))), "16, 24 or 32 bytes"),
        (config(aes("aesgcm", ("a:b", key()))), "without ':'"),
        (config(aes("aesgcm", K1, ("key1", key()))), "used twice"),
        (config({"secretbox": {"keys": [{"name": "k", "secret": key()}]}}), "not supported"),
        (config({"aesgcm": {"keys": []}}), "at least one key"),
        (config(), "at least one provider"),
    ],
)
def test_bad_configurations_are_refused_with_the_reason(document: dict, message: str) -> None:
    with pytest.raises(EncryptionConfigError, match=message):
        parse_encryption_config(document)


def test_load_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(yaml.safe_dump(config(aes("aesgcm", ("k", "x")))))
    with pytest.raises(EncryptionConfigError, match=re.escape(str(path))):
        load_encryption_config(path)
    with pytest.raises(EncryptionConfigError, match=r"missing\.yaml"):
        load_encryption_config(tmp_path / "missing.yaml")
