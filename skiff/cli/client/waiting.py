"""Wait-style watches, as kubectl's `wait`, `delete` and `rollout status` use them: list one object by
name, then watch from the list's resourceVersion with bookmarks; a 410 Gone or an ended stream lists again."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.kinds import ResourceType
from skiff.client.rest import Client

# Seconds one watch request may stay open before it is renewed (kubectl uses 5 to 10 minutes).
WATCH_SECONDS = 300

Check = Callable[[dict[str, Any] | None], bool]


class WaitTimeout(Exception):
    """The condition was not met in time."""


def _list_one(client: Client, resource: ResourceType, namespace: str | None, name: str) -> tuple[Any, str]:
    reply = client.list(resource, namespace, field_selector=f"metadata.name={name}")
    items = reply.get("items") or []
    return (items[0] if items else None), (reply.get("metadata") or {}).get("resourceVersion", "")


def _watch_seconds(deadline: float | None) -> int:
    if deadline is None:
        return WATCH_SECONDS
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise WaitTimeout()
    return max(1, min(WATCH_SECONDS, math.ceil(remaining)))


def watch_until(
    client: Client,
    resource: ResourceType,
    namespace: str | None,
    name: str,
    check: Check,
    timeout: float | None,
) -> dict[str, Any] | None:
    """Follow one object until `check(object or None when absent)` holds; returns that state.
    Raises `WaitTimeout` after `timeout` seconds (None: wait as long as it takes)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        obj, rv = _list_one(client, resource, namespace, name)
        if check(obj):
            return obj
        try:
            return _follow(client, resource, namespace, name, rv, check, deadline)
        except _StreamEnded:
            continue
        except ApiError as error:
            if error.code != 410:
                raise


class _StreamEnded(Exception):
    pass


def _follow(
    client: Client,
    resource: ResourceType,
    namespace: str | None,
    name: str,
    rv: str,
    check: Check,
    deadline: float | None,
) -> dict[str, Any] | None:
    seconds = _watch_seconds(deadline)
    selector = f"metadata.name={name}"
    with client.watch(
        resource, namespace, resource_version=rv, field_selector=selector, timeout_seconds=seconds
    ) as stream:
        for event_type, obj in stream:
            if event_type == "BOOKMARK":
                if deadline is not None and time.monotonic() > deadline:
                    raise WaitTimeout()
                continue
            state = None if event_type == "DELETED" else obj
            if check(state):
                return state
    if deadline is not None and time.monotonic() >= deadline:
        raise WaitTimeout()
    raise _StreamEnded()
