"""A worker program that recognises pieces of audio for :func:`.alignment._each_piece`.

    python -m speech2flame.engines.phonetic.recognition_worker

reads one pickle (kind, [pieces: (N,) float32 16 kHz arrays]) on stdin and writes one pickle per
piece, in order, on stdout as each is done: the result of ``alignment.PIECE_FUNCTIONS[kind]``
for it (so the caller can show progress piece by piece).
Anything else written to standard output goes to stderr, clear of the result.
"""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    from speech2flame.worker_process import exit_with_parent, result_stream

    exit_with_parent()  # the command was killed: stop, do not recognise for nobody
    results = result_stream()
    from speech2flame.engines.phonetic import alignment

    kind, pieces = pickle.load(sys.stdin.buffer)
    function = getattr(alignment, alignment.PIECE_FUNCTIONS[kind])
    for piece in pieces:
        pickle.dump(function(piece), results)
        results.flush()


if __name__ == "__main__":
    main()
