"""Request body decoding and response media-type negotiation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from skiff.api.errors import ApiError, bad_request, not_acceptable

MAX_BODY_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 100
MAX_YAML_ALIASES = 100

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class _BoundedLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses alias bombs (a few aliases expanding to gigabytes)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError("too many aliases")
        return super().compose_node(parent, index)


def load_json(raw: bytes) -> Any:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {_short(exc)}") from None
    check_depth(value)
    return value


def load_yaml(raw: bytes) -> Any:
    try:
        value = yaml.load(raw, Loader=_BoundedLoader)
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError) as exc:
        raise bad_request(f"error converting YAML to JSON: {_short(exc)}") from None
    check_depth(value)
    return value


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def check_depth(value: Any) -> None:
    """Refuse documents nested deeper than any Kubernetes object needs, before recursive code sees them."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, dict | list))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))


def decode_object(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """Decode a create/update body (JSON, YAML or Kubernetes protobuf) into an object."""
    kind = media_type(content_type)
    if kind in (JSON, "", "*/*"):
        value = load_json(raw)
    elif kind in (YAML, "application/x-yaml", "text/yaml"):
        value = load_yaml(raw)
    elif kind == PROTOBUF:
        from apiserver.http.protobuf import decode_protobuf_object

        value = decode_protobuf_object(raw)
    else:
        raise unsupported_media_type(kind)
    if not isinstance(value, dict):
        raise bad_request("the request body must be an object")
    return value


def unsupported_media_type(kind: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f'{JSON}, {YAML}, {PROTOBUF} (got "{kind}")',
    )


@dataclass(frozen=True, slots=True)
class Output:
    """What the client asked to receive."""

    form: str  # "object" | "table" | "partial"
    yaml: bool = False
    include_object: str = "Metadata"  # for tables: None | Metadata | Object


def negotiate(accept: str | None, include_object: str | None = None) -> Output:
    """Pick the response form from an Accept header, as kube-apiserver does (first acceptable wins)."""
    if not accept:
        return Output("object")
    for clause in accept.split(","):
        fields = [f.strip() for f in clause.split(";")]
        mtype = fields[0].lower()
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        as_kind = params.get("as", "")
        if as_kind:
            if params.get("g") != "meta.k8s.io" or params.get("v") not in ("v1", "v1beta1"):
                continue
            if mtype not in (JSON, "application/*", "*/*", YAML):
                continue
            if as_kind == "Table":
                return Output("table", mtype == YAML, include_object or "Metadata")
            if as_kind in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return Output("partial", mtype == YAML)
            continue
        if mtype in (JSON, "application/*", "*/*", "application/json-seq"):
            return Output("object")
        if mtype == YAML:
            return Output("object", yaml=True)
        # protobuf-only clients also list JSON; JSON responses are accepted by every kubectl.
    if any(media_type(c) == PROTOBUF for c in accept.split(",")):
        return Output("object")
    raise not_acceptable(f"only the following media types are accepted: {JSON}, {YAML}")


def dump_json(value: Any) -> bytes:
    return orjson.dumps(value)


def dump_yaml(value: Any) -> bytes:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).encode()
