"""Checkpoints: safetensors weights + a JSON config, never pickles.

A checkpoint is either a directory holding ``model.safetensors`` and
``config.json``, or a ``NAME.safetensors`` file with a sibling ``NAME.json``.
The JSON names the architecture, the rig space (expression names + basis hash),
fps and audio encoder (see :class:`speech2flame.models.config.ModelConfig`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from .config import ARCHITECTURE, ModelConfig, expression_basis_hash
from .talking_head import TalkingHeadModel

CHECKPOINT_FORMAT = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or made for another rig."""


def checkpoint_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, config) paths of a checkpoint directory or ``.safetensors`` file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return path, path.with_suffix(".json")
    return path / WEIGHTS_NAME, path / CONFIG_NAME


def write_atomically(path: str | os.PathLike, write) -> Path:
    """Call ``write(partial_path)`` to write a file next to ``path`` under a temporary name, then
    rename it to ``path``: an interrupted write (Ctrl-C, a full disk) leaves the old file whole."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(model: TalkingHeadModel, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``model`` as safetensors + JSON at ``path`` (a directory, or a .safetensors file).

    Each file is written under a temporary name and then renamed. ``extra`` (e.g. epoch, val_loss)
    goes into the JSON, and its numbers and texts also into the weights' safetensors metadata,
    so a weights file can be matched with its JSON."""
    from .. import __version__

    weights, config = checkpoint_files(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt", "architecture": ARCHITECTURE,
                **{k: str(v) for k, v in (extra or {}).items() if isinstance(v, (int, float, str))}}
    write_atomically(weights, lambda p: save_model(model, str(p), metadata=metadata))
    doc = {"format_version": CHECKPOINT_FORMAT, "architecture": model.config.architecture,
           "software_version": __version__, "config": model.config.to_dict(), **(extra or {})}
    write_atomically(config, lambda p: p.write_text(json.dumps(doc, indent=2)))
    return Path(path)


def read_config(path: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """The ModelConfig of a checkpoint and its whole JSON document, without loading weights."""
    weights, config = checkpoint_files(path)
    if not weights.is_file() or not config.is_file():
        raise CheckpointError(f"No speech2flame checkpoint at {path}: expected {weights.name} and {config.name}.")
    try:
        doc = json.loads(config.read_text(encoding="utf-8"))
        if doc.get("architecture") != ARCHITECTURE:
            raise CheckpointError(f"{config} describes a {doc.get('architecture')!r} model; "
                                  f"this speech2flame runs {ARCHITECTURE}.")
        return ModelConfig.from_dict(doc["config"]), doc
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{config} is not a valid speech2flame model config ({exc}).") from None


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> TalkingHeadModel:
    """Rebuild the model from a checkpoint (eval mode, on ``device``)."""
    cfg, _ = read_config(path)
    model = TalkingHeadModel(cfg)
    weights, _ = checkpoint_files(path)
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=str(device))
    except Exception:
        raise CheckpointError(f"Cannot read the weights in {weights}: not a safetensors file, or a damaged one.") from None
    if missing or unexpected:
        raise CheckpointError(f"The weights in {weights} do not match their config "
                              f"({len(missing)} missing, {len(unexpected)} unexpected tensors).")
    return model.to(device).eval()


def check_head(config: ModelConfig, head, advice: str = "pick a model made for this head") -> None:
    """Raise CheckpointError (one sentence ending in ``advice``) unless ``head`` has the rig space
    the model outputs."""
    names = list(head.expression_names)
    if names != list(config.expression_names):
        raise CheckpointError(
            f"This model was trained for the rig {config.rig_name!r} with {config.num_expressions} expression "
            f"channels, but the head {head.name!r} has {len(names)} different ones; {advice}.")
    if config.expression_basis_hash and config.expression_basis_hash != expression_basis_hash(head):
        raise CheckpointError(
            f"This model was trained for the rig {config.rig_name!r}, whose expression shapes differ from those "
            f"of the head {head.name!r}; {advice}.")
