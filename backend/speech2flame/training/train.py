"""`speech2flame train CONFIG.yaml`: seeded, resumable training of the neural engine.

A config (YAML) names the rig, the data and the model size; paths are relative to
the YAML file. Defaults are in :data:`DEFAULTS`; a minimal file::

    head: demo
    output: runs/small
    data: {format: synthetic, root: corpus}
    train: {epochs: 30}

Each epoch ends with validation (split ``data.val_split`` when it has clips) and
writes ``OUTPUT/last`` (model + optimiser + RNG state: ``--resume`` continues from
it), ``OUTPUT/best`` (lowest validation loss) and ``OUTPUT/history.json``. Checkpoints
are safetensors + JSON; every file is written under a temporary name and renamed, and
the four files of ``last`` carry the epoch, so a resume from a half-written ``last`` is
refused in one sentence. On CUDA the forward pass runs in bfloat16 autocast (mixed precision).

``train.init`` (a checkpoint folder) starts from another model's weights; with ``train.only:
pose`` only the head-pose VQ-VAE and prior are trained, from scratch, on top of that model's
audio encoder and face decoder, which stay exactly as they were (its architecture is kept; the
``model.pose_*`` keys of this config apply). ``model.pose_scale: auto`` sets the pose networks'
per-channel scale from the training poses' spread.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from dataclasses import MISSING, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file, save_file

from ..audio import SAMPLE_RATE
from ..device import resolve_device
from ..head_model import HeadModelError, load_head_model
from ..models.checkpoint import checkpoint_files, load_checkpoint, read_config, save_checkpoint, write_atomically
from ..models.config import AudioEncoderConfig, ModelConfig, config_for_head
from ..models.lip_contact import LipAperture, contact_labels
from ..models.pose_vqvae import POSE_SCALE
from ..models.talking_head import TalkingHeadModel
from .datasets import MotionDataset

DEFAULTS = {
    "seed": 0,
    "head": "demo",
    "output": "runs/neural",
    "data": {"format": "synthetic", "root": "corpus", "train_split": "train", "val_split": "val",
             "split_subjects": None},
    "model": {"fps": 30.0, "audio": {"kind": "logmel", "dim": 64}},
    "train": {"epochs": 20, "batch_size": 8, "clip_seconds": 3.0, "lr": 1e-3, "weight_decay": 0.0,
              "device": "auto", "amp": True, "grad_clip": 1.0, "style_drop": 0.2, "init": "", "only": "all",
              "loss": {"face": 1.0, "velocity": 0.5, "sparsity": 1e-3, "pose": 1.0, "vq": 1.0, "prior": 0.1,
                       "detail": 1.0, "contact": 0.1, "aperture": 0.0}},
}


class TrainConfigError(ValueError):
    """A training config that cannot be used."""


DERIVED_MODEL_KEYS = ("expression_names", "rig_name", "expression_basis_hash", "num_vertices", "architecture")
"""ModelConfig fields taken from the head (or fixed), not from the training config."""
MODEL_KEYS = {f.name: f for f in fields(ModelConfig) if f.name not in DERIVED_MODEL_KEYS}
AUDIO_KEYS = {f.name: f for f in fields(AudioEncoderConfig) if f.name != "hf_config"}


def _check_model_value(name: str, value, default) -> None:
    """TrainConfigError unless ``value`` has the type of the ModelConfig field's ``default``."""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(default, float):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(default, str) or default is None:
        ok, kind = isinstance(value, str) or (default is None and value is None), "text"
    else:
        return
    if not ok:
        raise TrainConfigError(f"Training config key {name!r} must be {kind}, got {value!r}.")


def merge_config(base: dict, update: dict, where: str = "") -> dict:
    """``base`` updated by ``update``, recursively. Unknown keys are an error; under ``model`` and
    ``model.audio`` the known keys are the fields of :class:`speech2flame.models.config.ModelConfig`
    and ``AudioEncoderConfig`` (less those taken from the head), whose values must have the field's type."""
    out = copy.deepcopy(base)
    if update is not None and not isinstance(update, dict):
        raise TrainConfigError(f"The training config{' section ' + where.rstrip('.') if where else ''} must be "
                               f"keys with values, not {type(update).__name__}.")
    model_fields = {"model.": MODEL_KEYS, "model.audio.": AUDIO_KEYS}.get(where)
    for key, value in (update or {}).items():
        known = model_fields if model_fields is not None else out
        if key not in known:
            raise TrainConfigError(f"Unknown training config key {where + key!r}; "
                                   f"expected one of {', '.join(known)}.")
        if isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value, f"{where}{key}.")
        elif isinstance(out.get(key), str) and not isinstance(value, str):
            raise TrainConfigError(f"Training config key {where + key!r} must be text, got {value!r}.")
        else:
            if model_fields is not None and model_fields[key].default is not MISSING:
                _check_model_value(where + key, value, model_fields[key].default)
            out[key] = value
    return out


def load_train_config(path: str | Path) -> dict:
    """Read a YAML training config, fill defaults, make paths absolute (relative to the file)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"Training config not found: {path}.")
    try:
        user = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise TrainConfigError(f"{path.name} is not valid YAML{where}: {problem}.") from None
    cfg = merge_config(DEFAULTS, user)
    base = path.resolve().parent
    cfg["output"] = str((base / cfg["output"]).resolve())
    cfg["data"]["root"] = str((base / cfg["data"]["root"]).resolve())
    if cfg["head"] != "demo":
        cfg["head"] = str((base / cfg["head"]).resolve())
    if cfg["train"]["init"]:
        cfg["train"]["init"] = str((base / cfg["train"]["init"]).resolve())
    if cfg["train"]["only"] not in ("all", "pose"):
        raise TrainConfigError(f"train.only must be 'all' or 'pose', got {cfg['train']['only']!r}.")
    scale = cfg["model"].get("pose_scale")
    if scale is not None and scale != "auto" and not (
            isinstance(scale, list) and len(scale) == 6 and all(isinstance(v, (int, float)) and v > 0 for v in scale)):
        raise TrainConfigError(f"model.pose_scale must be 'auto' or 6 positive numbers, got {scale!r}.")
    source = cfg["model"]["audio"].get("source")
    if source and (base / source).exists():
        cfg["model"]["audio"]["source"] = str((base / source).resolve())
    return cfg


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- batches

def make_batch(dataset: MotionDataset, indices: list[int], frames: int, fps: float, rng: np.random.Generator,
               random_crop: bool = True) -> dict:
    """Crop ``frames`` frames (zero-padded, with a mask) from each clip, plus a style
    reference crop from another clip of the same style. Returns torch tensors (B first);
    ``detail`` (B, T, V, 3) only when every clip has a detail residual."""
    samples_per_frame = SAMPLE_RATE / fps
    n_audio = int(round(frames * samples_per_frame))
    out = {k: [] for k in ("audio", "face", "pose", "emotion", "mask", "style", "style_mask", "detail")}

    def crop(clip, length):
        start = int(rng.integers(0, clip.num_frames - length + 1)) if random_crop and clip.num_frames > length else 0
        return start, min(length, clip.num_frames - start)

    def padded(x, n):
        y = np.zeros((n, *x.shape[1:]), np.float32)
        y[: len(x)] = x
        return y

    for i in indices:
        clip = dataset[i]
        start, n = crop(clip, frames)
        a0 = int(round(start * samples_per_frame))
        out["audio"].append(padded(clip.audio[a0: a0 + int(round(n * samples_per_frame))], n_audio))
        out["face"].append(padded(clip.face_motion()[start:start + n], frames))
        out["pose"].append(padded(clip.head_pose()[start:start + n], frames))
        out["emotion"].append(padded(clip.emotion[start:start + n], frames))
        out["mask"].append(padded(np.ones(n, np.float32), frames))
        if clip.detail is not None:
            out["detail"].append(padded(clip.detail[start:start + n], frames))
        partners = dataset.style_partners(i)
        ref = dataset[partners[int(rng.integers(len(partners)))] if random_crop else partners[0]]
        r_start, r_n = crop(ref, frames)
        out["style"].append(padded(ref.face_motion()[r_start:r_start + r_n], frames))
        out["style_mask"].append(padded(np.ones(r_n, np.float32), frames))
    if len(out["detail"]) != len(indices):
        del out["detail"]
    return {k: torch.from_numpy(np.stack(v)) for k, v in out.items()}


def compute_losses(model: TalkingHeadModel, batch: dict, weights: dict, use_style: bool = True,
                   lips: LipAperture | None = None, only: str = "all") -> dict:
    """Weighted training losses for one batch (keys: total, face, velocity, sparsity, pose, vq, prior,
    and detail, contact, aperture when the model and ``weights`` have them).

    lips: the rig's :class:`LipAperture`, needed for ``contact`` (binary cross-entropy of the
    lip-contact head against contact labels from the target geometry) and ``aperture`` (mean
    absolute inner-lip aperture error, millimetres). only="pose": the pose losses alone (pose, vq,
    prior), the audio features computed without gradients."""
    mask = batch["mask"]
    frames = mask.shape[1]
    if only == "pose":
        with torch.no_grad():
            features = model.encode_audio(batch["audio"], frames)
        losses = _pose_losses(model, batch, features, mask[..., None])
        losses["total"] = sum(weights.get(k, 0.0) * v for k, v in losses.items())
        return losses
    features = model.encode_audio(batch["audio"], frames)
    style = model.face.style(batch["style"], batch["style_mask"]) if use_style else \
        model.face.style(None, batch=mask.shape[0])
    out = model.face(features, batch["emotion"], style, mask)
    pred = torch.cat([out["expression"], out["jaw"]], dim=-1).float()
    target, m = batch["face"], mask[..., None]
    count = m.sum().clamp(min=1) * pred.shape[-1]
    face = ((pred - target) ** 2 * m).sum() / count
    vm = m[:, 1:] * m[:, :-1]
    velocity = (((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])) ** 2 * vm).sum() / count
    losses = {"face": face, "velocity": velocity, "sparsity": model.face.sparsity(),
              **_pose_losses(model, batch, features, m)}
    if "detail" in batch and "detail_weights" in out:  # per-vertex residual, in millimetres
        detail_mm = torch.einsum("btk,kvc->btvc", out["detail_weights"].float(), model.face.detail_basis.float())
        dm = mask[..., None, None]
        losses["detail"] = ((detail_mm - batch["detail"] * 1000.0) ** 2 * dm).sum() / (
            dm.sum().clamp(min=1) * detail_mm.shape[2] * 3)
    if lips is not None and ("lip_contact" in out or weights.get("aperture", 0.0)):
        frames_valid = mask.sum().clamp(min=1)
        with torch.no_grad():
            target_aperture = lips(target)
        if "lip_contact" in out:
            bce = F.binary_cross_entropy_with_logits(out["lip_contact"].float(), contact_labels(target_aperture),
                                                     reduction="none")
            losses["contact"] = (bce * mask).sum() / frames_valid
        if weights.get("aperture", 0.0):
            losses["aperture"] = ((lips(pred) - target_aperture).abs() * mask).sum() / frames_valid
    losses["total"] = sum(weights.get(k, 0.0) * v for k, v in losses.items())
    return losses


def _pose_losses(model: TalkingHeadModel, batch: dict, features: torch.Tensor, m: torch.Tensor) -> dict:
    """pose: squared reconstruction error in the pose networks' units; vq: codebook and commitment;
    prior: cross-entropy of the codes given the audio features. m: (B, T, 1) frame mask."""
    recon, codes, vq = model.pose_vq(batch["pose"])
    error = (recon.float() - batch["pose"]) * model.pose_vq.scale
    pose = (error ** 2 * m).sum() / (m.sum().clamp(min=1) * error.shape[-1])
    return {"pose": pose, "vq": vq.float(), "prior": model.pose_prior.loss(features, codes)}


def pose_scale_from(dataset: MotionDataset) -> list[float]:
    """``model.pose_scale: auto``: per pose channel, 1 / the spread (standard deviation, radians)
    of the dataset's head poses, so each axis weighs alike in the pose VQ-VAE (POSE_SCALE for an
    axis that does not move)."""
    poses = np.concatenate([dataset[i].head_pose() for i in range(len(dataset))])
    spread = poses.std(axis=0)
    return [round(float(1.0 / v), 3) if v > 1e-4 else POSE_SCALE for v in spread]  # still axes: the default


# ---------------------------------------------------------------- training state without pickles

STATE_TENSORS, STATE_JSON = "training_state.safetensors", "training_state.json"
RESUME_FILES = (STATE_TENSORS, STATE_JSON, "model.safetensors", "config.json")
"""The files of OUTPUT/last, in the order they are written; each records the epoch."""
HEAD_MODEL_KEYS = {"expression_names", "rig_name", "expression_basis_hash", "num_vertices"}
AGAIN = "train again without --resume, or into another output folder"


def rng_state() -> tuple[dict, dict]:
    """(tensors, JSON) state of every random generator training draws from: torch's (CPU, and
    each CUDA device once CUDA is in use), numpy's global one (transformers' SpecAugment masks
    and layer drop) and Python's."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    version, internal, gauss_next = random.getstate()
    doc = {"numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
           "python": {"version": version, "state": list(internal), "gauss_next": gauss_next}}
    return tensors, doc


def set_rng_state(tensors: dict, doc: dict) -> None:
    """Restore what :func:`rng_state` returned (states missing from an older checkpoint are left as they are;
    CUDA states only where this machine has as many CUDA devices)."""
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.numpy" in tensors and "numpy" in doc:
        n = doc["numpy"]
        np.random.set_state((n["kind"], tensors["rng.numpy"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))
    if "python" in doc:
        p = doc["python"]
        random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    cuda = [tensors[f"rng.cuda.{i}"] for i in range(sum(k.startswith("rng.cuda.") for k in tensors))]
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)


def save_training_state(folder: Path, optimiser: torch.optim.Optimizer, info: dict) -> None:
    """Optimiser tensors + RNG states in safetensors; the rest (``info``, with its ``epoch``) in JSON.
    Each file is written under a temporary name and renamed; both record the epoch."""
    state = optimiser.state_dict()
    tensors, rng = rng_state()
    scalars = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / STATE_TENSORS, lambda p: save_file(tensors, str(p), metadata={"epoch": str(info["epoch"])}))
    doc = {**info, "rng": rng, "param_groups": state["param_groups"], "scalars": scalars}
    write_atomically(folder / STATE_JSON, lambda p: p.write_text(json.dumps(doc, indent=2)))


def load_training_state(folder: Path, optimiser: torch.optim.Optimizer) -> dict:
    """Restore what :func:`save_training_state` wrote (optimiser and RNG states); returns the JSON info.
    TrainConfigError (one sentence) when the files are damaged."""
    try:
        doc = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
        # read into memory, not mapped: the optimiser keeps these tensors, and Windows cannot
        # replace a mapped file, which the next epoch's save does
        tensors = load_safetensors((folder / STATE_TENSORS).read_bytes())
        state: dict = {}
        for name, value in tensors.items():
            if name.startswith("state."):
                _, index, key = name.split(".", 2)
                state.setdefault(int(index), {})[key] = value
        for name, value in doc.pop("scalars").items():
            index, key = name.split(".", 1)
            state.setdefault(int(index), {})[key] = value
        optimiser.load_state_dict({"state": state, "param_groups": doc.pop("param_groups")})
        set_rng_state(tensors, doc.pop("rng", {}))
    except Exception as exc:
        raise TrainConfigError(f"Cannot resume from {folder}: its training state cannot be read "
                               f"({type(exc).__name__}; training stopped while writing it?); {AGAIN}.") from None
    return doc


def check_resumable(folder: Path) -> int:
    """The epoch OUTPUT/last was saved at. TrainConfigError (one sentence) when one of its four files is
    missing, unreadable, or from another epoch than the rest (training stopped while saving)."""
    missing = [name for name in RESUME_FILES if not (folder / name).is_file()]
    if missing:
        raise TrainConfigError(f"Cannot resume from {folder}: {', '.join(missing)} "
                               f"{'is' if len(missing) == 1 else 'are'} missing (training stopped while saving?); "
                               f"{AGAIN}.")
    epochs = {}
    for name in RESUME_FILES:
        try:
            if name.endswith(".safetensors"):
                with safe_open(str(folder / name), "pt") as fh:
                    epoch = (fh.metadata() or {}).get("epoch")
            else:
                epoch = json.loads((folder / name).read_text(encoding="utf-8"))["epoch"]
            if epoch is not None:  # older checkpoints: no epoch in the safetensors files
                epochs[name] = int(epoch)
        except Exception:
            raise TrainConfigError(f"Cannot resume from {folder}: {name} is damaged "
                                   f"(training stopped while writing it?); {AGAIN}.") from None
    if len(set(epochs.values())) > 1:
        found = ", ".join(f"{name} from epoch {epoch}" for name, epoch in epochs.items())
        raise TrainConfigError(f"Cannot resume from {folder}: its files are from different epochs ({found}) "
                               f"because training stopped while saving; {AGAIN}.")
    return max(epochs.values(), default=0)


def _flat(tree: dict, prefix: str = "") -> dict:
    """Nested dicts as one dict of dotted keys."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "hf_config":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def resume_differences(folder: Path, saved_model: ModelConfig, wanted_model: ModelConfig,
                       saved_settings: dict | None, cfg: dict) -> list[str]:
    """Compare the run being resumed with ``cfg``. A different model (architecture, sizes, head,
    fps, encoder settings) is a TrainConfigError in one sentence; the returned notes name the other
    settings that differ ("train.lr 0.001 -> 0.01"), where the new values are used."""
    old, new = _flat(saved_model.to_dict()), _flat(wanted_model.to_dict())
    notes = []
    for tree in (old, new):
        tree.pop("audio.hf_config", None)  # filled in from the source when the encoder is built
    old_source, new_source = old.pop("audio.source", None), new.pop("audio.source", None)
    if old_source != new_source:  # the checkpoint carries its encoder
        notes.append(f"model.audio.source {old_source!r} -> {new_source!r} (the checkpoint's encoder weights are used)")
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    problems = [f"model.{k}: {old.get(k)!r} there, {new.get(k)!r} here" for k in changed if k not in HEAD_MODEL_KEYS]
    if any(k in HEAD_MODEL_KEYS for k in changed):
        problems.insert(0, f"another head: rig {saved_model.rig_name!r} there, {wanted_model.rig_name!r} here, "
                           f"with different expression channels")
    if problems:
        raise TrainConfigError(f"Cannot resume from {folder}: it was trained with other model settings "
                               f"({'; '.join(problems)}); use the config it was trained with, or train into "
                               f"another output folder.")
    if saved_settings is not None:
        old, new = _flat(saved_settings), _flat(training_settings(cfg))
        for key in sorted(old.keys() | new.keys()):
            if key == "train.device" or old.get(key) == new.get(key):
                continue
            if key == "train.epochs" and isinstance(old.get(key), int) and int(new.get(key)) >= old[key]:
                continue
            notes.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    return notes


def training_settings(cfg: dict) -> dict:
    """The parts of a training config besides the model that a resumed run should keep (stored with the state)."""
    return copy.deepcopy({"seed": cfg["seed"], "head": cfg["head"], "data": cfg["data"], "train": cfg["train"]})


# ---------------------------------------------------------------- the loop

def evaluate_loss(model, dataset, frames, fps, weights, device, batch_size, lips=None, only="all") -> dict:
    """Mean losses (same keys as :func:`compute_losses`) over a dataset with fixed crops
    (the start of each clip) and the clips' own style."""
    model.eval()
    parts: dict = {}
    count = 0
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for s in range(0, len(dataset), batch_size):
            idx = list(range(s, min(s + batch_size, len(dataset))))
            batch = {k: v.to(device) for k, v in make_batch(dataset, idx, frames, fps, rng, False).items()}
            for key, value in compute_losses(model, batch, weights, lips=lips, only=only).items():
                parts[key] = parts.get(key, 0.0) + float(value) * len(idx)
            count += len(idx)
    return {key: value / max(count, 1) for key, value in parts.items()}


def train(cfg: dict, resume: bool = False, show_progress: bool = True, log=print) -> dict:
    """Train per ``cfg`` (see :func:`load_train_config`); returns a summary dict with the
    checkpoint paths and the per-epoch history."""
    from tqdm import tqdm

    tc = cfg["train"]
    seed_everything(int(cfg["seed"]))
    device = resolve_device(tc["device"])
    head = load_head_model(cfg["head"])
    fps = float(cfg["model"].get("fps", 30.0))
    output = Path(cfg["output"])
    last, best = output / "last", output / "best"
    data = cfg["data"]
    train_set = MotionDataset(data["format"], data["root"], head, fps, data["train_split"], data["split_subjects"])
    val_set = MotionDataset(data["format"], data["root"], head, fps, data["val_split"], data["split_subjects"])
    if len(train_set) == 0:
        raise TrainConfigError(f"The dataset at {data['root']} has no clips in split {data['train_split']!r}.")
    if len(val_set) == 0:
        log(f"warning: the dataset has no clips in split {data['val_split']!r}: 'val' below is the training "
            f"loss, and 'best' is chosen by it.")

    only = tc["only"]
    if cfg["model"].get("pose_scale") == "auto":  # measured on the training poses (VOCASET: fitted first)
        train_set.preload(show_progress, log)
    if resume and any((last / name).exists() for name in RESUME_FILES):
        check_resumable(last)
        saved_model, _ = read_config(last)
        notes = resume_differences(last, saved_model, wanted_model_config(cfg, head, train_set, saved_model),
                                   json.loads((last / STATE_JSON).read_text(encoding="utf-8")).get("settings"), cfg)
        if notes:
            log(f"warning: settings differ from the run being resumed, the new values are used: {'; '.join(notes)}.")
        model = load_checkpoint(last, device).train()
        model_cfg = model.config
    else:
        if resume:
            log(f"Nothing to resume in {last}: training starts at epoch 1.")
        resume = False
        if only == "pose" and not tc["init"]:
            raise TrainConfigError("train.only: pose needs train.init, the checkpoint whose audio encoder and face "
                                   "decoder it keeps.")
        model_cfg = wanted_model_config(cfg, head, train_set)
        model = TalkingHeadModel(model_cfg)
        if tc["init"]:
            start_from(model, tc["init"], keep_pose=only != "pose")
        model = model.to(device)
    trained = [p for name, p in model.named_parameters() if only == "all" or name.startswith(POSE_MODULES)]
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(only == "all" or name.startswith(POSE_MODULES))
    optimiser = torch.optim.AdamW(trained, lr=float(tc["lr"]), weight_decay=float(tc["weight_decay"]))
    start_epoch, history, best_val = 0, [], float("inf")
    if resume:
        info = load_training_state(last, optimiser)
        for group in optimiser.param_groups:  # the config's values, not the saved ones
            group["lr"], group["weight_decay"] = float(tc["lr"]), float(tc["weight_decay"])
        start_epoch, history, best_val = info["epoch"], info["history"], info["best_val"]
        log(f"Resuming from epoch {start_epoch} in {last}.")
    for dataset in (train_set, val_set):  # VOCASET: fits FLAME parameters to clips not fitted yet
        dataset.preload(show_progress, log)

    frames = max(model_cfg.pose_block, int(round(float(tc["clip_seconds"]) * fps)))
    weights = {k: float(v) for k, v in tc["loss"].items()}
    amp = bool(tc["amp"]) and device.type == "cuda"
    try:
        lips = LipAperture(head).to(device) if only == "all" and (
            model_cfg.lip_contact or weights.get("aperture", 0.0)) else None
    except HeadModelError as exc:
        raise TrainConfigError(f"model.lip_contact / loss.aperture: {exc}") from None
    batch_size = int(tc["batch_size"])
    for epoch in range(start_epoch, int(tc["epochs"])):
        rng = np.random.default_rng([int(cfg["seed"]), epoch])
        model.train()
        if only == "pose":  # the features exactly as at inference (no SpecAugment)
            model.audio_encoder.eval()
        else:
            model.audio_encoder.set_frozen(epoch < model_cfg.audio.freeze_epochs)
        order = rng.permutation(len(train_set)).tolist()
        batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
        sums, started = {}, time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{tc['epochs']}", disable=not show_progress, leave=False)
        for done, idx in enumerate(bar, 1):
            batch = {k: v.to(device) for k, v in make_batch(train_set, idx, frames, fps, rng).items()}
            use_style = bool(rng.random() >= float(tc["style_drop"]))
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                losses = compute_losses(model, batch, weights, use_style, lips, only)
            optimiser.zero_grad(set_to_none=True)
            losses["total"].backward()
            if tc["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(trained, float(tc["grad_clip"]))
            optimiser.step()
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            bar.set_postfix(loss=f"{sums['total'] / done:.4f}")  # mean over the epoch's batches so far
        parts = {key: value / len(batches) for key, value in sums.items()}
        train_loss = parts["total"]
        val_parts = evaluate_loss(model, val_set, frames, fps, weights, device, batch_size, lips,
                                  only) if len(val_set) else parts
        val_loss = val_parts["total"]
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                        "train_parts": parts, "val_parts": val_parts,
                        "seconds": round(time.perf_counter() - started, 3)})
        log(f"epoch {epoch + 1}: train {train_loss:.5f}  val {val_loss:.5f}")
        if val_loss < best_val:
            best_val = val_loss
            save_checkpoint(model, best, extra={"epoch": epoch + 1, "val_loss": val_loss})
        # training state first, then the weights: each file records the epoch (see check_resumable)
        save_training_state(last, optimiser, {"epoch": epoch + 1, "history": history, "best_val": best_val,
                                              "seed": int(cfg["seed"]), "settings": training_settings(cfg)})
        save_checkpoint(model, last, extra={"epoch": epoch + 1, "val_loss": val_loss})
        write_atomically(output / "history.json", lambda p: p.write_text(json.dumps(history, indent=2)))
    return {"best": str(best), "last": str(last), "history": history, "device": str(device)}


POSE_MODULES = ("pose_vq.", "pose_prior.")
"""Parameter name prefixes of the head-pose VQ-VAE and prior (what ``train.only: pose`` trains)."""


def wanted_model_config(cfg: dict, head, dataset: MotionDataset, saved: ModelConfig | None = None) -> ModelConfig:
    """The ModelConfig a training config asks for: ``model`` for ``head``, or with ``train.init``
    that checkpoint's config (``saved``'s, a run being resumed) with this config's ``model.pose_*``
    keys; ``pose_scale: auto`` taken from ``saved`` or measured on ``dataset`` (:func:`pose_scale_from`)."""
    wanted = copy.deepcopy(cfg["model"])
    if wanted.get("pose_scale") == "auto":
        wanted["pose_scale"] = list(saved.pose_scale) if saved is not None and saved.pose_scale \
            else pose_scale_from(dataset)
    init = cfg["train"]["init"]
    if not init and not (saved is not None and cfg["train"]["only"] == "pose"):  # pose-only: init's architecture
        return config_for_head(head, **wanted)
    from ..models.checkpoint import check_head

    if saved is not None:  # a run being resumed holds the init's architecture: init itself may be gone
        base = saved
    else:
        base, _ = read_config(init)
        check_head(base, head)
    merged = base.to_dict()
    merged.update({key: value for key, value in wanted.items() if key.startswith("pose_")})
    return ModelConfig.from_dict(merged)


def start_from(model: TalkingHeadModel, path: str, keep_pose: bool = True) -> None:
    """Copy the weights of the checkpoint at ``path`` into ``model`` (same architecture), all but
    the pose VQ-VAE and prior when ``keep_pose`` is False (they start from scratch)."""
    weights, _ = checkpoint_files(path)
    state = {k: v for k, v in load_file(str(weights)).items() if keep_pose or not k.startswith(POSE_MODULES)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if keep_pose or not k.startswith(POSE_MODULES)]
    if missing or unexpected:
        raise TrainConfigError(f"train.init {path} does not fit this model (e.g. "
                               f"{(missing + unexpected)[0]}); start from a checkpoint of the same architecture.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `speech2flame train`."""
    parser.add_argument("config", help="training config (YAML); see docs/neural.md")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/last if it exists")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1, mps (default: the config's, else auto)")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--init", help="override train.init: a checkpoint folder to start from")
    parser.add_argument("--seed", type=int, help="override seed: initial weights and batch order")
    parser.add_argument("--output", help="override output: the run folder (checkpoints, history.json)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Entry of `speech2flame train`; returns the process exit code."""
    from ..audio import AudioError
    from ..head_model import HeadModelError
    from ..models.checkpoint import CheckpointError
    from .datasets import DatasetError

    try:
        cfg = load_train_config(args.config)
        if args.device:
            cfg["train"]["device"] = args.device
        if args.epochs:
            cfg["train"]["epochs"] = args.epochs
        if args.init:
            cfg["train"]["init"] = str(Path(args.init).resolve())
        if args.seed is not None:
            if args.seed < 0:
                raise TrainConfigError(f"--seed must be a whole number from 0, got {args.seed}.")
            cfg["seed"] = args.seed
        if args.output:
            cfg["output"] = str(Path(args.output).resolve())
        Path(cfg["output"]).mkdir(parents=True, exist_ok=True)  # an output that cannot be made fails now, not after an epoch
        summary = train(cfg, resume=args.resume, show_progress=not args.quiet,
                        log=lambda m: print(m, file=sys.stderr))
    except (TrainConfigError, DatasetError, CheckpointError, HeadModelError, AudioError, ValueError) as exc:
        print(f"speech2flame: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"speech2flame: error: cannot write {exc.filename or cfg['output']}: {exc.strerror or exc}.", file=sys.stderr)
        return 2
    print(json.dumps({"best": summary["best"], "last": summary["last"], "device": summary["device"],
                      "final": summary["history"][-1] if summary["history"] else None}))
    return 0


__all__ = ["add_arguments", "run", "train", "load_train_config", "merge_config"]
