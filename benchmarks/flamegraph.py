"""Draw py-spy's collapsed stacks as a flame graph: one self-contained SVG, no other tool needed.

``python -m benchmarks.flamegraph DIR/run.txt -o docs/img/run.svg`` reads what
``--profile DIR`` recorded (``--format raw``: one ``frame;frame;... count`` line per stack) and
draws each frame as a box as wide as its share of the samples, callers below callees. Hovering
a box shows its function and share. The package's own frames are drawn blue, the rest warm, so
what this project can change stands out.
"""

from __future__ import annotations

import argparse
import zlib
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from .profiling import stacks

WIDTH = 1200.0
ROW = 17.0
MARGIN = 10.0
TITLE_SPACE = 34.0
#: Boxes narrower than this many pixels are left out (they could not be read anyway).
MIN_WIDTH = 0.3
#: An 11-pixel monospace-ish font: about this many pixels per character.
CHAR = 6.6


@dataclass
class Node:
    """One frame in one calling context, with the samples spent in it and below it."""

    name: str
    samples: int = 0
    children: dict[str, Node] = field(default_factory=dict)

    def child(self, name: str) -> Node:
        node = self.children.get(name)
        if node is None:
            node = self.children[name] = Node(name)
        return node

    def depth(self) -> int:
        return 1 + max((c.depth() for c in self.children.values()), default=0)


def read_stacks(text: str) -> Node:
    """The call tree of a collapsed-stack file, under a root that counts every sample."""
    root = Node("all")
    for frames, count in stacks(text):
        root.samples += count
        node = root
        for frame in frames:
            node = node.child(frame)
            node.samples += count
    return root


def _colour(name: str, ours: str) -> str:
    shade = zlib.crc32(name.encode()) % 55
    if name.startswith(ours):
        return f"rgb({60 + shade},{120 + shade},{210})"
    return f"rgb({225},{100 + shade * 2},{50 + shade})"


def _label(name: str, width: float) -> str:
    fits = int((width - 6) / CHAR)
    if fits < 3:
        return ""
    return name if len(name) <= fits else name[: fits - 2] + ".."


def render(root: Node, title: str, ours: str = "fastapi_streaming/") -> str:
    """The flame graph of ``root`` as an SVG document."""
    if root.samples == 0:
        raise ValueError("no samples to draw")
    depth = root.depth()
    height = TITLE_SPACE + depth * ROW + MARGIN
    scale = (WIDTH - 2 * MARGIN) / root.samples
    boxes: list[str] = []

    def draw(node: Node, x: float, level: int) -> None:
        width = node.samples * scale
        if width < MIN_WIDTH:
            return
        y = height - MARGIN - (level + 1) * ROW
        share = node.samples / root.samples
        tip = escape(f"{node.name} ({node.samples} samples, {share:.1%})")
        boxes.append(
            f'<g><title>{tip}</title><rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" '
            f'height="{ROW - 1:.0f}" fill="{_colour(node.name, ours)}" rx="2"/>'
            f'<text x="{x + 3:.2f}" y="{y + ROW - 5:.2f}">{escape(_label(node.name, width))}'
            "</text></g>"
        )
        for child in sorted(node.children.values(), key=lambda c: c.name):
            draw(child, x, level + 1)
            x += child.samples * scale

    draw(root, MARGIN, 0)
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH:.0f} {height:.0f}" font-family="monospace" font-size="11">',
            '<rect width="100%" height="100%" fill="#fdfdf8"/>',
            f'<text x="{WIDTH / 2:.0f}" y="22" text-anchor="middle" font-size="15">'
            f"{escape(title)} ({root.samples} samples)</text>",
            *boxes,
            "</svg>",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stacks", type=Path, help="a collapsed-stack file recorded by --profile")
    parser.add_argument("-o", "--output", type=Path, help="the SVG to write (default: beside it)")
    parser.add_argument("--title", help="the graph's title (default: the file's name)")
    args = parser.parse_args(argv)
    output = args.output or args.stacks.with_suffix(".svg")
    root = read_stacks(args.stacks.read_text())
    output.write_text(render(root, args.title or args.stacks.stem))
    print(f"{output}: {root.samples} samples, {root.depth() - 1} frames deep")


if __name__ == "__main__":
    main()
