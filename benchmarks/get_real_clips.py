"""Fetch real human speech with transcripts for measuring lip sync: PocketSphinx's test audio.

The PocketSphinx source package on PyPI (BSD licence) carries a few test recordings: five card
names and "go forward ten meters" (one male speaker; the same clips as ``../shared/speech``)
and five sentences of a LibriVox reading of *Sense and Sensibility* (public domain, another
speaker). This script downloads that package from PyPI (checked against its sha256), and writes

    OUT/pocketsphinx/{cards-001..005,goforward}.wav + transcripts.tsv
    OUT/librivox/sense_and_sensibility_*.wav + transcripts.tsv

for ``benchmarks/lipsync_quality.py --clips OUT/librivox`` (and the other folder). The clips
are for measuring only: nothing is trained on them.

    .venv/bin/python benchmarks/get_real_clips.py OUT
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import soundfile

VERSION = "5.1.1"
SHA256 = "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
INDEX = "https://pypi.org/simple/pocketsphinx/"


def download_sdist() -> bytes:
    """The pocketsphinx source archive, found through PyPI's simple index and checked."""
    page = urllib.request.urlopen(INDEX, timeout=60).read().decode()
    links = re.findall(rf'href="([^"]+/pocketsphinx-{re.escape(VERSION)}\.tar\.gz)[^"]*"', page)
    if not links:
        raise SystemExit(f"pocketsphinx {VERSION} source not listed at {INDEX}.")
    data = urllib.request.urlopen(links[0], timeout=300).read()
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise SystemExit("The downloaded pocketsphinx archive does not match its sha256.")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    archive = download_sdist()
    data = f"pocketsphinx-{VERSION}/test/data/"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}

        def read(name: str) -> bytes:
            return tar.extractfile(members[data + name]).read()

        ps, libri = args.out / "pocketsphinx", args.out / "librivox"
        ps.mkdir(parents=True, exist_ok=True)
        libri.mkdir(parents=True, exist_ok=True)
        rows = []
        for line in read("cards/cards.transcription").decode().splitlines():
            match = re.match(r"<s>\s*(.*?)\s*</s>\s*\((\d+)\)", line.strip())
            if match:
                (ps / f"cards-{match[2]}.wav").write_bytes(read(f"cards/{match[2]}.wav"))
                rows.append((f"cards-{match[2]}.wav", match[1]))
        pcm = np.frombuffer(read("goforward.raw"), "<i2")
        soundfile.write(str(ps / "goforward.wav"), pcm, 16000)
        rows.append(("goforward.wav", "go forward ten meters"))
        (ps / "transcripts.tsv").write_text("file\ttranscript\n" + "".join(f"{f}\t{t}\n" for f, t in rows))
        rows = []
        for name in sorted(n for n in members if n.startswith(data + "librivox/") and n.endswith(".wav")):
            stem = Path(name).stem
            (libri / f"{stem}.wav").write_bytes(read(f"librivox/{stem}.wav"))
            rows.append((f"{stem}.wav", " ".join(read(f"librivox/{stem}.txt").decode().split())))
        (libri / "transcripts.tsv").write_text("file\ttranscript\n" + "".join(f"{f}\t{t}\n" for f, t in rows))
    print(f"wrote {ps} and {libri}")


if __name__ == "__main__":
    main()
