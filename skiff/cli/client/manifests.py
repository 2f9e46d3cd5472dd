"""Reading manifests for `apply`, `create` and `delete -f`: files, directories (`-R`) and stdin, each a
stream of YAML or JSON documents; `kind: List` documents are unpacked."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from skiff.api.kinds import ResourceType
from skiff.cli.client.connect import Session
from skiff.cli.client.errors import CommandError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Manifest:
    """One object from a file, with the resource it is written to and the namespace it lands in."""

    obj: dict[str, Any]
    source: str
    resource: ResourceType | None = None
    namespace: str | None = None

    @property
    def name(self) -> str:
        return (self.obj.get("metadata") or {}).get("name") or ""


def _files(source: str, recursive: bool) -> list[Path]:
    path = Path(source)
    if not path.exists():
        raise CommandError(f'the path "{source}" does not exist')
    if path.is_file():
        return [path]
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix in MANIFEST_SUFFIXES)


def _documents(text: str, source: str) -> Iterator[dict[str, Any]]:
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise CommandError(f"error parsing {source}: {error}") from error
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, dict):
            raise CommandError(f"error parsing {source}: a manifest must be a mapping")
        if document.get("kind", "").endswith("List") and isinstance(document.get("items"), list):
            yield from (item for item in document["items"] if item)
        else:
            yield document


def read_manifests(sources: list[str], recursive: bool) -> list[Manifest]:
    manifests: list[Manifest] = []
    for source in sources:
        if source == "-":
            manifests += [Manifest(doc, "STDIN") for doc in _documents(sys.stdin.read(), "STDIN")]
            continue
        for path in _files(source, recursive):
            manifests += [Manifest(doc, str(path)) for doc in _documents(path.read_text(), str(path))]
    if not manifests:
        raise CommandError("no objects passed to apply")
    return manifests


def place(session: Session, manifest: Manifest) -> Manifest:
    """Find the manifest's resource and namespace, refusing what kubectl refuses."""
    obj = manifest.obj
    api_version, kind = obj.get("apiVersion") or "", obj.get("kind") or ""
    if not api_version or not kind:
        raise CommandError(f"error validating {manifest.source}: apiVersion and kind must be set")
    if not manifest.name:
        raise CommandError(f"error when retrieving current configuration of {manifest.source}: name is required")
    resource = session.resolver.for_kind(api_version, kind)
    if resource is None:
        meta = obj.get("metadata") or {}
        raise CommandError(
            f'resource mapping not found for name: "{manifest.name}" namespace: "{meta.get("namespace", "")}" '
            f'from "{manifest.source}": no matches for kind "{kind}" in version "{api_version}"\n'
            "ensure CRDs are installed first"
        )
    manifest.resource = resource
    if resource.namespaced:
        manifest.namespace = _namespace(session, manifest)
        obj.setdefault("metadata", {})["namespace"] = manifest.namespace
    return manifest


def _namespace(session: Session, manifest: Manifest) -> str:
    own = (manifest.obj.get("metadata") or {}).get("namespace")
    if own and session.explicit_namespace and own != session.namespace:
        raise CommandError(
            f'the namespace from the provided object "{own}" does not match the namespace "{session.namespace}". '
            f"You must pass '--namespace={own}' to perform this operation."
        )
    return own or session.namespace
