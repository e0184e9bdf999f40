"""Training data: three on-disk layouts read into one kind of :class:`Clip`.

(a) ``vocaset``  -- the official VOCASET training-data release, read as it is:
        ROOT/data_verts.npy (frames, V, 3) metres at 60 fps (memory-mapped), ROOT/subj_seq_to_idx.pkl
        (subject -> sentence -> {frame: row}), ROOT/raw_audio_fixed.pkl (subject -> sentence ->
        {"audio", "sample_rate"}), ROOT/templates.pkl (subject -> (V, 3));
    or as processed by FaceFormer and followers:
        ROOT/wav/SUBJECT_SENTENCE.wav
        ROOT/vertices_npy/SUBJECT_SENTENCE.npy   (T, V*3) metres at 60 fps
        ROOT/templates.npz (SUBJECT -> (V, 3)) or templates.pkl
    (pickles through the FLAME files' restricted unpickler: numpy arrays only, no code).
    60 fps is downsampled to 30. With a head model given, FLAME expression + jaw
    parameters are fitted to the vertices once and cached in ROOT/flame_fits/ (one file per
    clip, head, frame rate and data; :meth:`MotionDataset.preload` fits them with a progress bar).
(b) ``flame_params`` -- per-frame FLAME parameters with emotion labels (MEAD / EMOCA style):
        ROOT/manifest.jsonl  lines {"audio": "a.wav", "params": "a.npz", "emotion": "happy",
                                    "intensity": 0.66, "style": "M003", "split": "train", "fps": 30}
    each npz holding ``expression``/``exp`` (T, E'), and ``jaw``/``jaw_pose`` (T, 3) or
    ``pose`` (T, 6) = global + jaw; optional ``neck``, ``global_rot``. E' is cut or
    zero-padded to the head's E; the head must be a FLAME head (unnamed ``exp000``... channels).
(c) ``synthetic`` -- this project's format (see :class:`SyntheticCorpusWriter`):
        ROOT/manifest.jsonl  lines {"id", "audio", "take", "split", "emotion", "intensity", "style"}
        ROOT/audio/ID.wav    16-bit PCM mono 16 kHz
        ROOT/takes/ID.npz    a :class:`speech2flame.take.Take`
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, from_array, load_audio
from ..controls import EMOTIONS, Controls
from ..curves import fit_channels, resample_frames
from ..take import Take

FORMATS = ("synthetic", "flame_params", "vocaset")
MANIFEST = "manifest.jsonl"


class DatasetError(ValueError):
    """A dataset folder that does not follow the layout it was declared as."""


@dataclass
class Clip:
    """One training sequence at the model frame rate (T frames).

    audio       (N,) float32 16 kHz
    expression  (T, E) rig expression weights; jaw, neck, global_rot (T, 3) radians
    emotion     (T, 8) emotion weights (intensity included, order of controls.EMOTIONS)
    style       key of the speaker/style; clips sharing it may serve as style references
    detail      optional (T, V, 3) per-vertex residual (metres) the FLAME parameters do not explain
    """

    id: str
    audio: np.ndarray
    expression: np.ndarray
    jaw: np.ndarray
    neck: np.ndarray
    global_rot: np.ndarray
    emotion: np.ndarray
    style: str = ""
    detail: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.expression.shape[0])

    def face_motion(self) -> np.ndarray:
        """(T, E+3) expression then jaw: the face decoder's output space."""
        return np.concatenate([self.expression, self.jaw], axis=1)

    def head_pose(self) -> np.ndarray:
        """(T, 6) neck then global rotation."""
        return np.concatenate([self.neck, self.global_rot], axis=1)


def emotion_weights(num_frames: int, fps: float, emotion: str = "neutral", intensity: float = 1.0,
                    schedule: list | None = None) -> np.ndarray:
    """(T, 8) per-frame emotion weights from a label (and intensity 0..1) or a schedule."""
    if emotion not in EMOTIONS:
        raise DatasetError(f"Unknown emotion label {emotion!r}; use one of {', '.join(EMOTIONS)}.")
    controls = Controls(emotion=emotion, intensity=float(intensity), emotion_schedule=list(schedule or []))
    return controls.validate().emotion_curves(num_frames, fps)


def _read_manifest(root: Path, kind: str = "", required: tuple[str, ...] = ()) -> list[dict]:
    """The manifest's lines as dicts; DatasetError (naming the line) when one is not a JSON
    object or lacks one of the ``required`` keys (text values)."""
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{root} has no {MANIFEST}; see docs/neural.md for the dataset layouts.")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise DatasetError(f"{path} line {number} is not JSON.") from None
        if not isinstance(item, dict):
            raise DatasetError(f"{path} line {number} is not a JSON object with keys.")
        for key in required:
            if not isinstance(item.get(key), str):
                raise DatasetError(f"{path} line {number} lacks the {key!r} path that every {kind} manifest "
                                   f"line needs ({', '.join(required)}).")
        items.append(item)
    return items


def _trim_audio(samples: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Cut or zero-pad audio so it covers exactly ``num_frames`` frames."""
    n = int(round(num_frames / fps * SAMPLE_RATE))
    out = np.zeros(n, np.float32)
    out[: min(n, len(samples))] = samples[:n]
    return out


# ---------------------------------------------------------------- (c) synthetic

class SyntheticCorpusWriter:
    """Writes the synthetic format: ``with SyntheticCorpusWriter(root) as w: w.add(...)``.

    Shared by the tests and the corpus generator. Appends to an existing manifest.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        (self.root / "audio").mkdir(parents=True, exist_ok=True)
        (self.root / "takes").mkdir(parents=True, exist_ok=True)
        self._manifest = open(self.root / MANIFEST, "a", encoding="utf-8")

    def add(self, item_id: str, samples: np.ndarray, take: Take, split: str = "train",
            emotion: str | None = None, intensity: float | None = None, style: str = "",
            sample_rate: int = SAMPLE_RATE, **extra) -> dict:
        """Write ``audio/ID.wav`` (16-bit PCM) and ``takes/ID.npz``; append the manifest line.

        emotion/intensity default to the take's ``metadata["controls"]`` (else neutral, 0).
        """
        import soundfile

        controls = take.metadata.get("controls", {})
        entry = {
            "id": str(item_id),
            "audio": f"audio/{item_id}.wav",
            "take": f"takes/{item_id}.npz",
            "split": split,
            "emotion": emotion or controls.get("emotion", "neutral"),
            "intensity": float(intensity if intensity is not None else controls.get("intensity", 0.0)),
            "style": style,
            **extra,
        }
        soundfile.write(self.root / entry["audio"], np.asarray(samples, np.float32), sample_rate, subtype="PCM_16")
        take.save(self.root / entry["take"])
        self._manifest.write(json.dumps(entry) + "\n")
        self._manifest.flush()
        return entry

    def close(self) -> None:
        self._manifest.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _load_synthetic(root: Path, entry: dict, head, fps: float) -> Clip:
    take = Take.load(root / entry["take"])
    if list(take.expression_names) != list(head.expression_names):
        raise DatasetError(f"Take {entry['take']} is for another rig: its expression names differ from the head's.")
    audio = load_audio(root / entry["audio"]).samples
    rs = lambda a: resample_frames(a, take.fps, fps)  # noqa: E731
    expression = rs(take.expression)
    t = len(expression)
    detail = None
    if take.detail_basis is not None:
        detail = np.einsum("tk,kvc->tvc", rs(take.detail_weights), take.detail_basis).astype(np.float32)
    return Clip(id=str(entry.get("id", Path(entry["take"]).stem)), audio=_trim_audio(audio, t, fps),
                expression=expression, jaw=rs(take.jaw), neck=rs(take.neck), global_rot=rs(take.global_rot),
                emotion=emotion_weights(t, fps, entry.get("emotion", "neutral"), entry.get("intensity", 0.0)),
                style=str(entry.get("style", "")), detail=detail)


# ---------------------------------------------------------------- (b) flame_params

def is_flame_rig(head) -> bool:
    """True when ``head``'s expression channels are FLAME's unnamed PCA basis (exp000, exp001, ...)."""
    return list(head.expression_names) == [f"exp{i:03d}" for i in range(len(head.expression_names))]


def _load_flame_params(root: Path, entry: dict, head, fps: float) -> Clip:
    path = root / entry["params"]
    try:
        with np.load(path, allow_pickle=False) as data:
            p = {k: np.asarray(data[k], np.float32) for k in data.files}
    except Exception:
        raise DatasetError(f"Cannot read FLAME parameters {path}: not a NumPy .npz archive, or a damaged one.") from None
    expression = p.get("expression", p.get("exp"))
    if expression is None:
        raise DatasetError(f"{path.name} has no 'expression' (or 'exp') array.")
    t = len(expression)
    zeros = np.zeros((t, 3), np.float32)
    jaw = p.get("jaw", p.get("jaw_pose"))
    global_rot = p.get("global_rot", p.get("global_pose"))
    if "pose" in p:  # FLAME / EMOCA: global (3) then jaw (3)
        global_rot = p["pose"][:, :3] if global_rot is None else global_rot
        jaw = p["pose"][:, 3:6] if jaw is None else jaw
    src_fps = float(entry.get("fps", p.get("fps", np.float32(fps))))
    rs = lambda a: resample_frames(zeros if a is None else a, src_fps, fps)  # noqa: E731
    expression = rs(fit_channels(expression, len(head.expression_names)))
    n = len(expression)
    audio = load_audio(root / entry["audio"]).samples
    return Clip(id=str(entry.get("id", path.stem)), audio=_trim_audio(audio, n, fps), expression=expression,
                jaw=rs(jaw), neck=rs(p.get("neck")), global_rot=rs(global_rot),
                emotion=emotion_weights(n, fps, entry.get("emotion", "neutral"), entry.get("intensity", 1.0)),
                style=str(entry.get("style", "")))


# ---------------------------------------------------------------- (a) vocaset

def _read_pickle(path: Path):
    """A pickle of dicts, numbers and numpy arrays (VOCASET's, Python 2 or 3) through the FLAME
    files' restricted unpickler: numpy arrays are rebuilt, no other code is imported or run."""
    from ..flame_pickle import read_pickle
    from ..head_model import HeadModelError

    try:
        return read_pickle(path, "VOCASET pickle")
    except HeadModelError as exc:
        raise DatasetError(str(exc)) from None


def read_templates(root: Path) -> dict[str, np.ndarray]:
    """Subject -> (V, 3) template vertices from templates.npz or templates.pkl."""
    if (root / "templates.npz").is_file():
        with np.load(root / "templates.npz", allow_pickle=False) as data:
            return {k: np.asarray(data[k], np.float32).reshape(-1, 3) for k in data.files}
    if (root / "templates.pkl").is_file():
        data = _read_pickle(root / "templates.pkl")
        return {str(k): np.asarray(v, np.float32).reshape(-1, 3) for k, v in data.items()}
    raise DatasetError(f"{root} has neither templates.npz nor templates.pkl.")


def fit_flame_parameters(head, vertices: np.ndarray, template: np.ndarray, steps: int = 200) -> dict:
    """Fit expression (T, E) and jaw (T, 3) so the head, with ``template`` as its identity,
    matches ``vertices`` (T, V, 3) metres; ``detail`` (T, V, 3) is what the fit leaves over.
    Needs :mod:`speech2flame.flame`; Adam on all frames at once, with gradients on whatever
    the caller's mode (``torch.no_grad`` or ``inference_mode``)."""
    import torch

    try:
        from ..flame import FlameLayer
    except ImportError:
        raise DatasetError("Fitting FLAME parameters to VOCASET needs speech2flame.flame, "
                           "which this installation lacks.") from None
    if vertices.shape[1] != head.num_vertices:
        raise DatasetError(f"VOCASET meshes have {vertices.shape[1]} vertices but the head has "
                           f"{head.num_vertices}; use the FLAME head the data was registered to.")
    from dataclasses import replace

    with torch.inference_mode(False), torch.enable_grad():
        layer = FlameLayer(replace(head, v_template=np.asarray(template, np.float32)))
        target = torch.as_tensor(vertices, dtype=torch.float32)
        t, e = len(vertices), len(head.expression_names)
        expression = torch.zeros(t, e, requires_grad=True)
        jaw = torch.zeros(t, 3, requires_grad=True)
        still, eyes = torch.zeros(t, 3), torch.zeros(t, 6)
        optimiser = torch.optim.Adam([expression, jaw], lr=0.05)
        for _ in range(steps):
            optimiser.zero_grad()
            verts = layer(expression, jaw, still, still, eyes)
            loss = (verts - target).pow(2).sum(-1).mean() + 1e-6 * expression.pow(2).mean()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            detail = (target - layer(expression, jaw, still, still, eyes)).numpy()
    return {"expression": expression.detach().numpy(), "jaw": jaw.detach().numpy(), "detail": detail}


VOCASET_RELEASE = ("data_verts.npy", "raw_audio_fixed.pkl", "subj_seq_to_idx.pkl", "templates.pkl")
"""The files of the official VOCASET training-data release (read as they are, no conversion)."""


def _split_of(subject: str, split_subjects: dict | None) -> str:
    split = "train"
    for name, subjects in (split_subjects or {}).items():
        if subject in subjects:
            split = name
    return split


def _vocaset_release_entries(root: Path, split_subjects: dict | None) -> list[dict]:
    """Entries of the official release: each subject's sentences with their rows of data_verts.npy
    (``subj_seq_to_idx.pkl``: subject -> sentence -> {frame: row}, frames in order)."""
    index = _read_pickle(root / "subj_seq_to_idx.pkl")
    entries = []
    for subject, sentences in sorted(index.items()):
        for sentence, frames in sorted(sentences.items()):
            rows = [int(row) for _, row in sorted(frames.items())]
            entries.append({"id": f"{subject}_{sentence}", "rows": rows, "subject": str(subject),
                            "sentence": str(sentence), "style": str(subject),
                            "split": _split_of(str(subject), split_subjects), "fps": 60.0})
    return entries


def _vocaset_entries(root: Path, split_subjects: dict | None) -> list[dict]:
    if all((root / name).is_file() for name in VOCASET_RELEASE):
        return _vocaset_release_entries(root, split_subjects)
    if not (root / "wav").is_dir() or not (root / "vertices_npy").is_dir():
        raise DatasetError(f"{root} is not a VOCASET folder: it needs the official release's "
                           f"{', '.join(VOCASET_RELEASE)}, or FaceFormer's wav/ and vertices_npy/.")
    entries = []
    for wav in sorted((root / "wav").glob("*.wav")):
        verts = root / "vertices_npy" / f"{wav.stem}.npy"
        if verts.is_file():
            subject = wav.stem.rsplit("_", 1)[0]
            entries.append({"id": wav.stem, "audio": f"wav/{wav.name}", "vertices": f"vertices_npy/{verts.name}",
                            "style": subject, "split": _split_of(subject, split_subjects), "fps": 60.0})
    return entries


def _vocaset_vertices(root: Path, entry: dict, head, fps: float, templates: dict) -> np.ndarray:
    """A clip's meshes (T, V, 3) metres at ``fps``, after checking them and the template against the head."""
    if entry["style"] not in templates:
        raise DatasetError(f"No template for VOCASET subject {entry['style']}.")
    path = root / entry.get("vertices", "data_verts.npy")
    try:
        if "rows" in entry:  # the release: one memory-mapped array of every frame of every clip
            verts = np.asarray(np.load(path, mmap_mode="r", allow_pickle=False)[entry["rows"]], np.float32)
        else:
            verts = np.load(path, allow_pickle=False).astype(np.float32)
    except Exception:
        raise DatasetError(f"Cannot read VOCASET meshes {path}: not a NumPy .npy array, or a damaged one.") from None
    if verts.ndim < 2:
        raise DatasetError(f"VOCASET meshes {path} must be a (frames, vertices x 3) array, not {verts.shape}.")
    verts = verts.reshape(len(verts), -1)
    count = verts.shape[1] / 3
    if count != head.num_vertices or templates[entry["style"]].shape[0] != head.num_vertices:
        what = f"{path.name} has meshes of {count:g}" if count != head.num_vertices else \
            f"the template of {entry['style']} has {templates[entry['style']].shape[0]}"
        raise DatasetError(f"VOCASET {what} vertices but the head {head.name!r} has {head.num_vertices}; "
                           f"use the FLAME head the data was registered to.")
    return resample_frames(verts, entry["fps"], fps).reshape(-1, head.num_vertices, 3)


FIT_STEPS = 200
"""Adam steps of :func:`fit_flame_parameters` for a VOCASET clip (part of the cache key)."""


def _head_fit_key(head) -> str:
    """RIG-HASH naming what a fit takes from the head: its expression basis, correctives and joints."""
    digest = hashlib.sha256(str(FIT_STEPS).encode())
    for array in (head.shapedirs, head.posedirs, head.J_regressor, head.weights):
        digest.update(np.ascontiguousarray(array, np.float32).tobytes())
    return f"{head.rig_id()}-{digest.hexdigest()[:8]}"


def _fit_cache_path(root: Path, entry: dict, head_key: str, fps: float, verts: np.ndarray,
                    template: np.ndarray) -> Path:
    """ROOT/flame_fits/ID_HEAD_FPSfps_HASH.npz, HASH of the meshes at ``fps`` and the subject template:
    a fit is reused only for the same data, head (:func:`_head_fit_key`), frame rate and fit steps."""
    digest = hashlib.sha256(np.ascontiguousarray(verts, np.float32).tobytes())
    digest.update(np.ascontiguousarray(template, np.float32).tobytes())
    return root / "flame_fits" / f"{entry['id']}_{head_key}_{fps:g}fps_{digest.hexdigest()[:12]}.npz"


def _read_fit(cache: Path) -> dict | None:
    """A cached fit, or None when there is none or it cannot be read (a damaged file is fitted again)."""
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as data:
            fit = {k: data[k] for k in ("expression", "jaw", "detail")}
    except Exception:  # truncated or damaged: BadZipFile, EOFError, KeyError, ValueError ...
        return None
    return fit if len(fit["expression"]) == len(fit["jaw"]) == len(fit["detail"]) else None


def _write_fit(cache: Path, fit: dict) -> None:
    """Write a fit under a temporary name and rename it, so an interrupted run leaves no half file."""
    cache.parent.mkdir(exist_ok=True)
    partial = cache.with_name(f".{cache.name}.partial")
    try:
        with open(partial, "wb") as fh:
            np.savez(fh, **fit)
        os.replace(partial, cache)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _release_audio(raw_audio: dict, entry: dict) -> np.ndarray:
    """(N,) float32 16 kHz speech of a release entry from raw_audio_fixed.pkl
    (subject -> sentence -> {"audio": samples, "sample_rate": Hz})."""
    try:
        item = raw_audio[entry["subject"]][entry["sentence"]]
        samples, rate = np.asarray(item["audio"]), int(item["sample_rate"])
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"raw_audio_fixed.pkl has no audio for {entry['subject']} {entry['sentence']}.") from None
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
    return from_array(samples, rate).samples


def _load_vocaset(root: Path, entry: dict, head, fps: float, templates: dict, head_key: str,
                  fit: bool = True, raw_audio=None) -> Clip | None:
    """The clip, its FLAME parameters from the cache or fitted now (then cached);
    with ``fit`` False, None when that fit is not cached yet. head_key: :func:`_head_fit_key`.
    raw_audio: a callable giving the release's raw_audio_fixed.pkl dict (release entries)."""
    verts = _vocaset_vertices(root, entry, head, fps, templates)
    cache = _fit_cache_path(root, entry, head_key, fps, verts, templates[entry["style"]])
    params = _read_fit(cache)
    if params is None:
        if not fit:
            return None
        params = fit_flame_parameters(head, verts, templates[entry["style"]], FIT_STEPS)
        _write_fit(cache, params)
    t = len(params["expression"])
    zeros = np.zeros((t, 3), np.float32)
    audio = _release_audio(raw_audio(), entry) if "rows" in entry else load_audio(root / entry["audio"]).samples
    return Clip(id=entry["id"], audio=_trim_audio(audio, t, fps), expression=params["expression"],
                jaw=params["jaw"], neck=zeros, global_rot=zeros, emotion=emotion_weights(t, fps),
                style=entry["style"], detail=np.asarray(params["detail"], np.float32))


# ---------------------------------------------------------------- one entry point

class MotionDataset:
    """The clips of one split of a dataset, loaded on first use and kept in memory.

    kind: "synthetic", "flame_params" or "vocaset"; head: the rig the targets are for;
    fps: model frame rate; split: "train", "val", ... (VOCASET: by ``split_subjects``).
    """

    def __init__(self, kind: str, root: str | os.PathLike, head, fps: float = 30.0, split: str = "train",
                 split_subjects: dict | None = None):
        if kind not in FORMATS:
            raise DatasetError(f"Unknown dataset format {kind!r}; choose one of {', '.join(FORMATS)}.")
        self.kind, self.root, self.head, self.fps, self.split = kind, Path(root), head, float(fps), split
        if not self.root.is_dir():
            raise DatasetError(f"Dataset folder not found: {self.root}.")
        if kind == "vocaset":
            entries = _vocaset_entries(self.root, split_subjects)
        else:
            entries = _read_manifest(self.root, kind, ("audio", "take") if kind == "synthetic" else ("audio", "params"))
        if kind == "flame_params" and head is not None and not is_flame_rig(head):
            raise DatasetError(f"flame_params data holds FLAME expression coefficients, but the head {head.name!r} "
                               f"has named expression channels ({', '.join(head.expression_names[:3])}, ...); "
                               f"train on the FLAME head the parameters belong to.")
        self.entries = [e for e in entries if e.get("split", "train") == split]
        self._clips: dict[int, Clip] = {}
        self._templates = None
        self._head_key = ""
        self._release_audio = None

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Clip:
        if index not in self._clips:
            self._clips[index] = self._load(index)
        return self._clips[index]

    def _load(self, index: int, fit: bool = True) -> Clip | None:
        entry = self.entries[index]
        if self.kind == "synthetic":
            return _load_synthetic(self.root, entry, self.head, self.fps)
        if self.kind == "flame_params":
            return _load_flame_params(self.root, entry, self.head, self.fps)
        if not self._head_key:
            self._head_key = _head_fit_key(self.head)
        return _load_vocaset(self.root, entry, self.head, self.fps, self.templates(), self._head_key, fit,
                             self._raw_audio)

    def templates(self) -> dict[str, np.ndarray]:
        """VOCASET: subject -> (V, 3) template vertices (metres), read once (:func:`read_templates`)."""
        if self._templates is None:
            self._templates = read_templates(self.root)
        return self._templates

    def _raw_audio(self) -> dict:
        """The VOCASET release's raw_audio_fixed.pkl, read once (every clip's speech)."""
        if self._release_audio is None:
            self._release_audio = _read_pickle(self.root / "raw_audio_fixed.pkl")
        return self._release_audio

    def preload(self, show_progress: bool = False, log=print) -> None:
        """Load every clip now. VOCASET clips whose FLAME fit is not cached yet are fitted here
        (one ``log`` line, then a progress bar): a one-off cost per clip, head and frame rate."""
        pending = []
        for index in range(len(self)):
            if index not in self._clips:
                clip = self._load(index, fit=False)
                if clip is None:
                    pending.append(index)
                else:
                    self._clips[index] = clip
        if pending:
            from tqdm import tqdm

            log(f"fitting FLAME parameters to {len(pending)} VOCASET clips of split {self.split!r} "
                f"(once, cached in {self.root / 'flame_fits'})...")
            for index in tqdm(pending, desc="FLAME fit", unit="clip", disable=not show_progress, leave=False):
                self[index]

    def style_partners(self, index: int) -> list[int]:
        """Indices of the other clips sharing clip ``index``'s style key (itself if none)."""
        key = self.entries[index].get("style", "")
        others = [i for i, e in enumerate(self.entries) if e.get("style", "") == key and i != index]
        return others or [index]
