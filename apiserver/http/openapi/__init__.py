"""The OpenAPI documents the server publishes: `/openapi/v3` (index and one document per
group-version) and `/openapi/v2` (Swagger 2.0, as JSON or in the gnostic protobuf encoding).

kubectl reads them to decide that server-side field validation exists (a `fieldValidation` query
parameter on the PATCH operation of a kind), for `kubectl explain`, and, for client-side apply, for
the merge keys of lists. `paths` turns the resource table into paths and operations, `v3` and `v2`
render them with the schemas in `skiff.api.schema`, and this module serves the rendered documents from
a cache that holds until the served resources or the schemas change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from apiserver.http.openapi.v2 import build_v2_document
from apiserver.http.openapi.v3 import build_v3_document, v3_path_key
from skiff.api import schema
from skiff.api.kinds import ResourceTable
from skiff.api.schema.gnostic import encode_document

# kubectl asks with the first name; Go's mime parser rejects "@" in a Content-Type, so the answer
# must carry the second one.
OPENAPI_V2_PROTOBUF_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
OPENAPI_V2_PROTOBUF_ALIASES = (OPENAPI_V2_PROTOBUF_ACCEPT, OPENAPI_V2_PROTOBUF)


@dataclass(frozen=True)
class Rendered:
    """A serialized document and its content hash (for ETags and the v3 index's ?hash=)."""

    body: bytes
    etag: str


def _rendered(body: bytes) -> Rendered:
    return Rendered(body, hashlib.sha512(body).hexdigest().upper())


def openapi_cache_key(resources: ResourceTable) -> tuple[Any, ...]:
    """Changes whenever the served resources or the registered schemas change."""
    return (id(resources), tuple(resources), schema.schema_generation())


class _DocumentCache:
    """Documents for the most recent cache key; older ones are dropped on the first change."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._entries: dict[tuple[str, ...], Any] = {}

    def get(self, resources: ResourceTable, entry: tuple[str, ...], build: Any) -> Any:
        key = openapi_cache_key(resources)
        if key != self._key:
            self._key, self._entries = key, {}
        if entry not in self._entries:
            self._entries[entry] = build()
        return self._entries[entry]


_CACHE = _DocumentCache()


def openapi_v3_document(resources: ResourceTable, group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI 3.0 document of one group-version, or None when nothing is served there."""
    return _CACHE.get(resources, ("v3", group, version), lambda: build_v3_document(resources, group, version))


def openapi_v3_document_json(resources: ResourceTable, group: str, version: str) -> Rendered | None:
    def render() -> Rendered | None:
        document = openapi_v3_document(resources, group, version)
        return _rendered(orjson.dumps(document)) if document is not None else None

    return _CACHE.get(resources, ("v3-json", group, version), render)


def openapi_v3_index(resources: ResourceTable) -> dict[str, Any]:
    """The /openapi/v3 discovery document: each group-version's path and the hash of its content."""

    def build() -> dict[str, Any]:
        paths = {}
        for group, versions in resources.group_versions().items():
            for version in versions:
                rendered = openapi_v3_document_json(resources, group, version)
                if rendered is not None:
                    key = v3_path_key(group, version)
                    paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={rendered.etag}"}
        return {"paths": paths}

    return _CACHE.get(resources, ("v3-index",), build)


def openapi_v2_document(resources: ResourceTable) -> dict[str, Any]:
    """The Swagger 2.0 document of everything served."""
    return _CACHE.get(resources, ("v2",), lambda: build_v2_document(resources))


def openapi_v2_json(resources: ResourceTable) -> Rendered:
    return _CACHE.get(resources, ("v2-json",), lambda: _rendered(orjson.dumps(openapi_v2_document(resources))))


def openapi_v2_protobuf(resources: ResourceTable) -> Rendered:
    """The Swagger 2.0 document in gnostic's protobuf encoding, which kubectl 1.27/1.28 require."""
    return _CACHE.get(resources, ("v2-pb",), lambda: _rendered(encode_document(openapi_v2_document(resources))))


def wants_v2_protobuf(accept: str) -> bool:
    """Whether an Accept header asks /openapi/v2 for the protobuf encoding."""
    return any(media in accept for media in OPENAPI_V2_PROTOBUF_ALIASES)
