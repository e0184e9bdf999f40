"""Benchmark: how well phone recognition (no transcript) finds the /p b m/ of real speech, and how fast.

For folders of real clips with a ``transcripts.tsv`` (as benchmarks/lipsync_quality.py; the
reference phones come from forced alignment with the transcript), each recogniser's phones
are compared with the reference:

* ``bilabials found``: reference /p b m/ overlapped (within 20 ms) by a recognised /p b m/;
* ``false``: other reference phones (not silence, not next to a /p b m/) overlapped by one;
* RTF: recognition time / audio duration, one thread.

Recognisers:

* ``phone loop``: the shipped :mod:`speech2flame.engines.phonetic.phone_loop` (context-
  independent phones, what both engines use without a transcript);
* ``context max``: the same search, but each phone state scored with the best of all its
  context-dependent (triphone) senones of the same acoustic model (read here from the binary
  ``mdef``), an experiment: the search stays the fast CI loop, but scoring all 5000 senones
  instead of 126 triples the recognition time;
* ``pocketsphinx ci`` / ``pocketsphinx cd`` (``--pocketsphinx``): PocketSphinx's own
  allphone search, context-independent and with triphones (the latter ~15x slower than real time).

    .venv/bin/python benchmarks/phone_recognition.py --clips DIR [--clips DIR ...] [--pocketsphinx]
"""

from __future__ import annotations

import argparse
import struct
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from lipsync_quality import read_transcripts
from speech2flame.audio import load_audio
from speech2flame.engines.phonetic import phone_loop
from speech2flame.engines.phonetic.phonemes import BILABIALS
from speech2flame.lipsync_quality import reference_phones

NEAR_S = 0.02  # a recognised bilabial within this of a reference phone counts as overlapping it


def senone_groups(mdef: Path) -> np.ndarray:
    """(senones,) CI phone index * 3 + state of every senone, from a binary ``mdef``'s
    phone table (each context-dependent phone: senone sequence, base phone)."""
    data, order, counts, _, off = phone_loop.read_mdef(mdef)
    n_ci, n_phone, n_emit, _, n_sen, _, _, _, n_cd_tree, _ = counts
    off += 8 * n_cd_tree
    entry = np.dtype([("ssid", order + "i4"), ("tmat", order + "i4"), ("wpos", "u1"), ("ctx", "u1", 3)])
    table = np.frombuffer(data, entry, n_phone, off)
    off += 12 * n_phone
    (sseq_size,) = struct.unpack_from(order + "i", data, off)
    sequences = np.frombuffer(data, order + "u2", sseq_size, off + 4).reshape(-1, n_emit)
    groups = np.full(n_sen, -1)
    base = np.where(np.arange(n_phone) < n_ci, np.arange(n_phone), table["ctx"][:, 0])
    for state in range(n_emit):
        groups[sequences[table["ssid"], state]] = base * n_emit + state
    return groups


class ContextMax:
    """Scores each CI phone state by its best context-dependent senone (see module docstring)."""

    def __init__(self, loop: phone_loop.PhoneLoop):
        folder = phone_loop.default_model_dir()
        self.loop, n = loop, len(loop.phones)
        self.groups = torch.from_numpy(senone_groups(folder / "mdef"))
        means, variances = phone_loop.read_gaussians(folder / "means"), phone_loop.read_gaussians(folder / "variances")
        weights = phone_loop.read_mixture_weights(folder / "sendump", len(means))
        base = self.groups.numpy() // 3
        self.members = [torch.from_numpy(np.flatnonzero(base == b)) for b in range(n)]
        self.streams = []
        for mean, var, logw in zip(means, variances, weights):
            project, const = phone_loop.gaussian_projection(mean, var)
            mix = np.exp(logw - np.logaddexp.reduce(logw, axis=0)).T  # (senones, densities)
            self.streams.append((torch.from_numpy(project), torch.from_numpy(const),
                                 [torch.tensor(mix[m.numpy()], dtype=torch.float32) for m in self.members]))

    def senone_scores(self, samples: np.ndarray) -> np.ndarray:
        """(frames, phones, 3) as PhoneLoop.senone_scores, each state its best senone's score."""
        streams = phone_loop.feature_streams(phone_loop.cepstra(samples))
        x = [torch.from_numpy(np.ascontiguousarray(s[::phone_loop.SCORE_EVERY], np.float32)) for s in streams]
        frames, n = len(x[0]), len(self.loop.phones)
        total = torch.zeros(frames, len(self.groups))
        with torch.inference_mode():
            for xs, (project, const, mixes) in zip(x, self.streams):
                ll = torch.addmm(const, torch.cat([xs * xs, xs], 1), project.T).view(frames, n, -1)
                top = ll.amax(-1, keepdim=True)
                dens = (ll - top).clamp_(min=-80.0).exp_()
                for b, (members, mix) in enumerate(zip(self.members, mixes)):
                    total[:, members] += (dens[:, b] @ mix.T).clamp_min_(1e-30).log_() + top[:, b]
            best = torch.full((frames, 3 * n), -torch.inf).scatter_reduce_(
                1, self.groups.expand(frames, -1), total, "amax")
        scores = best.view(frames, n, 3).numpy()
        return np.repeat(scores, phone_loop.SCORE_EVERY, axis=0)[:len(streams[0])]

    def recognise(self, samples: np.ndarray) -> list:
        """[(ARPAbet phone, start_s, end_s)] as PhoneLoop.recognise (no silence relabelling)."""
        return [(self.loop.phones[i], a * 0.01, b * 0.01) for i, a, b in self.loop.decode(self.senone_scores(samples))]


def pocketsphinx_phones(samples: np.ndarray, triphones: bool) -> list:
    """PocketSphinx's allphone search with its phone bigram: [(phone, start_s, end_s)]."""
    import pocketsphinx

    model = Path(pocketsphinx.get_model_path()) / "en-us"
    decoder = pocketsphinx.Decoder(allphone=str(model / "en-us-phone.lm.bin"), allphone_ci=not triphones,
                                   bestpath=False, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), full_utt=True)
    decoder.end_utt()
    return [(s.word, s.start_frame * 0.01, (s.end_frame + 1) * 0.01) for s in decoder.seg()]


def score(recognised: list, reference: list) -> tuple[int, int, int, int]:
    """(bilabials found, bilabials, false overlaps, other phones) of one clip."""
    spans = [(s - NEAR_S, e + NEAR_S) for name, s, e in recognised if name in BILABIALS]
    hit = lambda s, e: any(a < e and s < b for a, b in spans)  # noqa: E731
    found = total = false = others = 0
    for i, (name, s, e) in enumerate(reference):
        if name in BILABIALS:
            total += 1
            found += hit(s, e)
        elif name != "SIL" and not any(reference[j][0] in BILABIALS for j in (i - 1, i + 1) if 0 <= j < len(reference)):
            others += 1
            false += hit(s, e)
    return found, total, false, others


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", action="append", required=True, help="folder with transcripts.tsv (repeatable)")
    parser.add_argument("--pocketsphinx", action="store_true", help="also PocketSphinx's allphone search (slow)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loop = phone_loop.get_phone_loop()
    recognisers = {"phone loop": loop.recognise, "context max": ContextMax(loop).recognise}
    if args.pocketsphinx:
        recognisers["pocketsphinx ci"] = lambda x: pocketsphinx_phones(x, False)
        recognisers["pocketsphinx cd"] = lambda x: pocketsphinx_phones(x, True)
    clips = []
    for folder in args.clips:
        for path, text in read_transcripts(Path(folder)):
            audio = load_audio(str(path))  # mono float32 at 16 kHz
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clips.append((audio.samples, reference_phones(audio, text)))
    duration = sum(len(x) for x, _ in clips) / 16000
    print(f"{len(clips)} clips, {duration:.0f} s")
    for name, recognise in recognisers.items():
        recognise(clips[0][0])  # warm-up
        counts, seconds = np.zeros(4, int), 0.0
        for samples, reference in clips:
            start = time.perf_counter()
            phones = recognise(samples)
            seconds += time.perf_counter() - start
            counts += score(phones, reference)
        found, total, false, others = counts
        print(f"{name:16s} bilabials found {found}/{total} ({100 * found / total:.0f}%), "
              f"false {100 * false / others:.1f}% of {others} other phones, RTF {seconds / duration:.4f}")


if __name__ == "__main__":
    main()
