"""Resource names as users type them (`po`, `deploy`, `deployments.apps`, `widgets.example.com`),
resolved against the built-in kinds first and then the server's discovery, so custom resources work."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, GROUP_ORDER, ResourceTable, ResourceType
from skiff.cli.client.errors import CommandError
from skiff.client.rest import Client

_VERSION_RANK = {"v1": 0, "v2": 1, "v1beta1": 2, "v1beta2": 3, "v1alpha1": 4}


def _preference(resource: ResourceType) -> tuple[int, int, str]:
    order = GROUP_ORDER.index(resource.group) if resource.group in GROUP_ORDER else len(GROUP_ORDER)
    return order, _VERSION_RANK.get(resource.version, 9), resource.version


def qualified_kind(resource: ResourceType) -> str:
    """`deployment.apps`, `pod`: how kubectl names a kind in its messages."""
    kind = resource.kind.lower()
    return f"{kind}.{resource.group}" if resource.group else kind


def _from_discovery(group: str, version: str, entry: dict[str, Any], subresources: tuple[str, ...]) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        kind=entry["kind"],
        plural=entry["name"],
        namespaced=bool(entry.get("namespaced")),
        short_names=tuple(entry.get("shortNames") or ()),
        categories=tuple(entry.get("categories") or ()),
        subresources=subresources,
        verbs=tuple(entry.get("verbs") or ()),
        singular=entry.get("singularName") or "",
    )


def _resource_list(group: str, version: str, document: dict[str, Any]) -> list[ResourceType]:
    entries = document.get("resources") or []
    subs: dict[str, list[str]] = {}
    for entry in entries:
        main, _, sub = entry["name"].partition("/")
        if sub:
            subs.setdefault(main, []).append(sub)
    return [
        _from_discovery(group, version, entry, tuple(subs.get(entry["name"], ())))
        for entry in entries
        if "/" not in entry["name"]
    ]


class Resolver:
    """Maps typed names and manifest kinds to `ResourceType`s; asks discovery only for what is not built in."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._discovered: ResourceTable | None = None

    def _discovery(self) -> ResourceTable:
        if self._discovered is None:
            table = ResourceTable(())
            builtin_groups = {r.group for r in BUILTINS}
            groups = self.client.get_path("/apis").get("groups") or []
            for group in groups:
                if group["name"] in builtin_groups:
                    continue
                version = (group.get("preferredVersion") or group["versions"][0])["version"]
                document = self.client.get_path(f"/apis/{group['name']}/{version}")
                for resource in _resource_list(group["name"], version, document):
                    table.add(resource)
            self._discovered = table
        return self._discovered

    def resolve(self, name: str) -> ResourceType:
        """The resource a typed name means; an unknown name is kubectl's "doesn't have a resource type"."""
        matches = BUILTINS.resolve(name) or self._discovery().resolve(name)
        if not matches:
            raise CommandError(f'the server doesn\'t have a resource type "{name}"')
        return min(matches, key=_preference)

    def for_kind(self, api_version: str, kind: str) -> ResourceType | None:
        """The resource serving a manifest's apiVersion and kind, or None when the server has none."""
        found = BUILTINS.by_api_version(api_version, kind)
        if found is not None:
            return found
        group, _, version = api_version.rpartition("/")
        try:
            document = self.client.get_path(f"/apis/{group}/{version}" if group else f"/api/{version}")
        except ApiError as error:
            if error.code == 404:
                return None
            raise
        return next((r for r in _resource_list(group, version, document) if r.kind == kind), None)
