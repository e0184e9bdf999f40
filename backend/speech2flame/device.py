"""Which torch device the neural parts run on: one rule for training, evaluation and inference.

Names: ``auto`` (CUDA if torch sees a GPU, else Apple MPS, else CPU), ``cpu``, ``cuda``,
``cuda:N`` or ``mps``. Inference (the neural engine in ``generate``, the add-on and the
server) uses ``$SPEECH2FLAME_DEVICE`` when set, else :data:`DEFAULT_INFERENCE_DEVICE`.
The other engines run on the CPU: for them neither ``--device`` nor the variable is checked.
"""

from __future__ import annotations

import os

DEVICE_ENV = "SPEECH2FLAME_DEVICE"
DEFAULT_INFERENCE_DEVICE = "cpu"
"""The shipped model is small: on CPU it runs hundreds of times faster than real time and
needs no GPU start-up (docs/neural.md has both figures); ``--device`` / $SPEECH2FLAME_DEVICE
choose a GPU, worth it for models with a wav2vec 2.0 / HuBERT encoder."""


class DeviceError(ValueError):
    """A device that does not exist here, in one sentence."""


def resolve_device(name: str | None = "auto", source: str | None = None):
    """``name`` -> torch.device; DeviceError when it is unknown or not available here, naming
    ``source`` (an environment variable) when the name came from there."""
    import torch

    name = (name or "auto").strip().lower()
    asked = f"{name!r}" + (f" (from ${source})" if source else "")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"Unknown device {asked}; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"Device {asked} was asked for, but this torch sees no CUDA GPU "
                              f"(torch {torch.__version__}); use cpu, or install a CUDA build of torch.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"Device {asked} was asked for, but only {torch.cuda.device_count()} "
                              f"CUDA GPU(s) are visible.")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"Device {asked} was asked for, but Apple's Metal backend is not available here.")
    elif device.type != "cpu":
        raise DeviceError(f"Unknown device {asked}; use auto, cpu, cuda, cuda:N or mps.")
    return device


def inference_device_name() -> str:
    """The device name inference uses: $SPEECH2FLAME_DEVICE, else DEFAULT_INFERENCE_DEVICE."""
    return os.environ.get(DEVICE_ENV, "").strip() or DEFAULT_INFERENCE_DEVICE


def inference_device():
    """The torch device inference runs on: $SPEECH2FLAME_DEVICE (a DeviceError names the
    variable), else DEFAULT_INFERENCE_DEVICE."""
    name = os.environ.get(DEVICE_ENV, "").strip()
    return resolve_device(name, source=DEVICE_ENV) if name else resolve_device(DEFAULT_INFERENCE_DEVICE)


def use_device(name: str) -> str:
    """Make inference in this process run on ``name`` (checked now: DeviceError if unavailable);
    sets $SPEECH2FLAME_DEVICE so the engine, the server and their workers all see it. Returns
    the resolved device name, e.g. "cuda" for "auto" on a GPU machine."""
    device = resolve_device(name)
    os.environ[DEVICE_ENV] = str(device)
    return str(device)
