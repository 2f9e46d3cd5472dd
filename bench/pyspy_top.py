"""Summarise a py-spy raw (collapsed stacks) profile: where the samples are, by function.

    python bench/pyspy_top.py PROFILE.txt [--top 30] [--lines] [--match apiserver/]

Prints the share of samples spent in each function itself (self) and in it or below it (total).
Frames are aggregated by function and file unless --lines keeps line numbers apart. Samples whose
innermost frame is a worker thread waiting for work (aiosqlite's `_connection_worker_thread` blocked in
its queue, which py-spy does not see as idle) are left out unless --keep-waiting.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

WAITING = "_connection_worker_thread "
LINE_NUMBER = re.compile(r":\d+\)$")


def frame_name(frame: str, keep_lines: bool) -> str:
    frame = frame.strip()
    if not keep_lines:
        frame = LINE_NUMBER.sub(")", frame)
    return frame.replace("/root/.pyenv/versions/", "").replace("lib/python3.11/site-packages/", "")


def main() -> None:
    parser = argparse.ArgumentParser(description="Summarise a py-spy raw profile by function.")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--lines", action="store_true", help="keep line numbers apart")
    parser.add_argument("--match", default="", help="only list frames whose text contains this")
    parser.add_argument("--keep-waiting", action="store_true", help="keep samples of threads waiting for work")
    args = parser.parse_args()

    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    dropped = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f, args.lines) for f in stack.split(";") if f.strip()]
        if not frames or (not args.keep_waiting and frames[-1].startswith(WAITING)):
            dropped += count
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    print(f"{samples} samples in {args.profile} ({dropped} of waiting threads left out)")
    for title, counter in (("self", own), ("total (self + callees)", total)):
        print(f"\n-- {title}")
        shown = 0
        for name, count in counter.most_common():
            if args.match and args.match not in name:
                continue
            print(f"{100 * count / max(samples, 1):6.1f}%  {name}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    main()
