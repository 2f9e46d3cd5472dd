"""What the kubelet writes to disk: volume files (atomically replaced) and CRI-format container logs."""

from __future__ import annotations

import os
from pathlib import Path

from kubelet_sim import atomicwriter, containerlogs
from kubelet_sim.containerlogs import LogOptions
from kubelet_sim.volumes import field_value


def test_volume_updates_swap_the_whole_file_set(tmp_path: Path) -> None:
    target = tmp_path / "cfg"
    assert atomicwriter.write(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert (target / "a").read_text() == "1" and (target / "dir" / "b").read_text() == "2"
    assert os.readlink(target / "a") == "..data/a"
    assert not atomicwriter.write(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert atomicwriter.write(target, {"a": (b"changed", 0o644)})
    assert (target / "a").read_text() == "changed" and not (target / "dir").exists()
    assert len([p for p in target.iterdir() if p.name.startswith("..") and p.is_dir() and not p.is_symlink()]) == 1


def test_downward_api_renders_labels_like_the_kubelet() -> None:
    pod = {"metadata": {"name": "p", "labels": {"b": "2", "a": 'say "hi"'}, "annotations": {"x": "y"}}}
    assert field_value(pod, "metadata.labels") == 'a="say \\"hi\\""\nb="2"'
    assert field_value(pod, "metadata.annotations['x']") == "y"
    assert field_value(pod, "metadata.name") == "p"


def test_logs_honour_tail_since_and_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    containerlogs.append_lines(path, [(100.0, "one"), (200.5, "two"), (300.0, "three")])
    assert containerlogs.read_all(path, LogOptions())[0] == b"one\ntwo\nthree\n"
    assert containerlogs.read_all(path, LogOptions(tail_lines=1))[0] == b"three\n"
    assert containerlogs.read_all(path, LogOptions(since=200.0))[0] == b"two\nthree\n"
    stamped = containerlogs.read_all(path, LogOptions(tail_lines=1, timestamps=True))[0]
    assert stamped == b"1970-01-01T00:05:00.000000000Z three\n"
    assert containerlogs.last_timestamp(path) == 300.0
