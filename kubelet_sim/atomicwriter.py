"""Writing a volume's files so that readers see the old set or the new set, never a mix.

The same layout as the kubelet's AtomicWriter: the files live in a timestamped directory
(`..2024_05_01_12_00_00.123456789`), `..data` is a symlink to the current one, and every top-level
name the user sees is a symlink through `..data`. An update writes a new directory and swaps `..data`
with one rename, which is what lets a ConfigMap volume change under a running container.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

DATA_DIR_NAME = "..data"

# path inside the volume -> (content, file mode)
Payload = dict[str, tuple[bytes, int]]


def _current(target: Path) -> Path | None:
    link = target / DATA_DIR_NAME
    return target / os.readlink(link) if link.is_symlink() else None


def _matches(directory: Path, payload: Payload) -> bool:
    present = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
    if present != set(payload):
        return False
    for path, (content, mode) in payload.items():
        file = directory / path
        if file.read_bytes() != content or (file.stat().st_mode & 0o777) != mode:
            return False
    return True


def write(target: Path, payload: Payload) -> bool:
    """Make the volume at `target` hold exactly `payload`; False when it already did."""
    for path in payload:
        if path.startswith("/") or ".." in Path(path).parts or path.startswith(".."):
            raise ValueError(f"invalid path {path!r}: must be relative and may not contain '..'")
    target.mkdir(parents=True, exist_ok=True)
    old = _current(target)
    if old is not None and old.exists() and _matches(old, payload):
        return False
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime()) + f".{time.time_ns() % 1_000_000_000:09d}"
    fresh = Path(tempfile.mkdtemp(prefix=f"..{stamp}", dir=target))
    fresh.chmod(0o755)
    for path, (content, mode) in payload.items():
        file = fresh / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(content)
        file.chmod(mode)
    staging = target / "..data_tmp"
    staging.unlink(missing_ok=True)
    staging.symlink_to(fresh.name)
    os.replace(staging, target / DATA_DIR_NAME)
    _link_top_level(target, {Path(path).parts[0] for path in payload})
    if old is not None and old.exists():
        shutil.rmtree(old, ignore_errors=True)
    return True


def _link_top_level(target: Path, names: set[str]) -> None:
    for name in names:
        link = target / name
        if not link.is_symlink():
            link.symlink_to(Path(DATA_DIR_NAME) / name)
    for entry in target.iterdir():
        if not entry.name.startswith("..") and entry.is_symlink() and entry.name not in names:
            entry.unlink()
