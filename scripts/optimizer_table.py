"""Regenerate the optimizer table of docs/optimizers.md from the catalogue.

    python scripts/optimizer_table.py           # rewrite the table between its markers
    python scripts/optimizer_table.py --check   # exit 1 if the docs' table is not current
"""

from __future__ import annotations

import pathlib
import re
import sys

from lab.optim import catalogue

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "optimizers.md"
BLOCK = re.compile(r"(<!-- catalogue:start -->\n).*?(<!-- catalogue:end -->)", re.S)


def render(text: str) -> str:
    """``text`` with the block between the markers replaced by the catalogue's table."""
    if not BLOCK.search(text):
        raise SystemExit(f"{DOC}: no <!-- catalogue:start --> ... <!-- catalogue:end --> block")
    return BLOCK.sub(lambda m: m.group(1) + catalogue.markdown_table() + "\n" + m.group(2), text)


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    new = render(text)
    if "--check" in argv:
        return 0 if new == text else 1
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
