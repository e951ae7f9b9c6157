"""Sample a server under load with py-spy and summarise where its time goes.

``python -m benchmarks --medium --only fs-memory --profile DIR`` records every fastapi-streaming
run (``--nonblocking``, so sampling does not stall the server) as collapsed stacks in ``DIR``;
``python -m benchmarks.profiling DIR/*.txt`` prints, for each file, the functions with the most
samples: *self* (the function itself was running) and *total* (it was on the stack), with the
package's own functions listed apart so they are easy to act on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

#: py-spy's collapsed frames look like ``function (path/to/file.py:123)``.
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def record(pid: int, output: Path, duration: float) -> subprocess.Popen[bytes] | None:
    """Start sampling ``pid`` for ``duration`` seconds; None when py-spy is not installed."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [exe, "record", "--pid", str(pid), "--format", "raw", "--output", str(output)]
    command += ["--rate", "250", "--nonblocking", "--duration", str(max(1, round(duration)))]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def frame_name(text: str) -> str:
    """A collapsed frame as ``path:function``, the path cut to where it names a package."""
    match = FRAME.match(text.strip())
    if match is None:
        return text.strip()
    path = match["file"]
    for marker in ("site-packages/", "fastapi_streaming/", "benchmarks/"):
        at = path.find(marker)
        if at >= 0:
            path = path[at + len(marker) if marker == "site-packages/" else at :]
            break
    return f"{path}:{match['func']}"


def stacks(text: str) -> Iterator[tuple[list[str], int]]:
    """Each stack of a collapsed-stack file (``frame;frame;... count``), outermost frame first."""
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            yield [frame_name(f) for f in stack.split(";")], int(count_text)


def summarise(path: Path, top: int = 15, ours: str = "fastapi_streaming/") -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for frames, count in stacks(path.read_text()):
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return f"{path.name}: no samples"
    lines = [f"## {path.stem} ({samples} samples)", "", "Self time, everything:"]
    lines += [f"- {n / samples:6.1%} {f}" for f, n in own.most_common(top)]
    mine = [(f, n) for f, n in total.most_common() if f.startswith(ours)][:top]
    lines += ["", f"On the stack, {ours} only (inclusive):"]
    lines += [f"- {n / samples:6.1%} {f}" for f, n in mine]
    mine_self = [(f, n) for f, n in own.most_common() if f.startswith(ours)][:top]
    lines += ["", f"Self time, {ours} only:"]
    lines += [f"- {n / samples:6.1%} {f}" for f, n in mine_self]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    for name in argv if argv is not None else sys.argv[1:]:
        print(summarise(Path(name)))


if __name__ == "__main__":
    main()
