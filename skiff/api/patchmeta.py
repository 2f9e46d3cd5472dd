"""The shape information that strategic merge patch and server-side apply need about a kind.

A lookup answers, for a field path from the object's root (list items add no path element, so the
containers' ports of a deployment are ("spec", "template", "spec", "containers", "ports")), the field's
patch strategy ("merge", "replace", "retainKeys", "merge,retainKeys" or None) and its merge key (e.g.
"name", "containerPort") or None.
"""

from __future__ import annotations

from collections.abc import Callable

FieldPath = tuple[str, ...]
PatchMeta = tuple[str | None, str | None]
PatchMetaLookup = Callable[[FieldPath], PatchMeta]


def no_patch_meta(path: FieldPath) -> PatchMeta:
    """The lookup for kinds without schema knowledge: every list is replaced atomically."""
    return (None, None)
