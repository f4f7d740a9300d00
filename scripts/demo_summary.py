"""The closing summary of `make demo`: one screen of text and outputs/demo/summary.png.

Usage: python scripts/demo_summary.py outputs/demo
Reads the train/, eval/ and analyze/ outputs of the demo (protein_performer/study/demo.py).
"""

from __future__ import annotations

import sys


def main(demo_dir: str) -> None:
    from protein_performer.study.demo import DemoOutputError, write_summary

    try:
        text, png = write_summary(demo_dir)
    except DemoOutputError as err:
        print(f"demo_summary: {err}", file=sys.stderr)
        sys.exit(2)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
