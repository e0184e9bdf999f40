"""Command line: `speech2flame generate|mouth|serve|...` (filled in below)."""

import sys


def main(argv=None) -> int:
    print("speech2flame: work in progress", file=sys.stderr)
    return 0
