"""Evaluation metrics for speech-driven face animation, and `speech2flame evaluate`.

Vertex metrics take arrays shaped (T, V, 3) in metres, computed the way the
field's published evaluation code computes them (FaceFormer / CodeTalker /
EmoTalk / UniTalker, VOCASET and BIWI protocols):

* :func:`lve` lip vertex error: per frame, the maximum over lip vertices of the
  squared L2 distance, then the mean over frames (over a dataset: all frames of all clips).
* :func:`fdd` upper-face dynamics deviation (CodeTalker's ``cal_fdd``):
  per upper-face vertex, the standard deviation over time of the squared
  displacement from the template; mean over vertices; ground truth minus prediction.
* :func:`mve` mean vertex error: mean over frames and vertices of the L2 distance.

Head motion: :func:`pose_diversity` (across seeds) and :func:`beat_alignment`
of head-motion beats with audio onsets; speed: :func:`real_time_factor`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE


class MetricsError(ValueError):
    """Arrays or region sets that a metric cannot use."""


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.ndim != 3 or pred.shape[2] != 3 or pred.shape != gt.shape:
        raise MetricsError(f"Vertex arrays must both be (frames, vertices, 3); got {pred.shape} and {gt.shape}.")
    return pred, gt


def _check_idx(idx, num_vertices: int) -> np.ndarray:
    idx = np.asarray(idx, np.int64).reshape(-1)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= num_vertices:
        raise MetricsError(f"Region indices must be a non-empty set of vertex ids below {num_vertices}.")
    return idx


def lve(pred: np.ndarray, gt: np.ndarray, lip_idx) -> float:
    """Lip vertex error (squared metres): mean_t max_{v in lips} ||gt[t,v] - pred[t,v]||^2.

    As in FaceFormer's / CodeTalker's ``cal_metric``: ``np.max(np.sum(np.square(gt - pred)
    [:, lips], axis=2), axis=1)``, averaged over all frames. (Papers print it x 1e-4 or x 1e-5.)
    """
    pred, gt = _check_pair(pred, gt)
    lips = _check_idx(lip_idx, gt.shape[1])
    per_frame = np.square(gt[:, lips] - pred[:, lips]).sum(axis=2).max(axis=1)
    return float(per_frame.mean())


def _upper_motion_std(vertices: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    motion = vertices[:, upper] - template[None, upper]
    return float(np.square(motion).sum(axis=2).std(axis=0).mean())   # population std (numpy default)


def fdd(pred: np.ndarray, gt: np.ndarray, template: np.ndarray, upper_idx) -> float:
    """Upper-face dynamics deviation (squared metres), CodeTalker (Xing et al. 2023) definition::

        FDD = mean_{v in upper} std_t ||gt[t,v] - template[v]||^2
            - mean_{v in upper} std_t ||pred[t,v] - template[v]||^2

    (``L2_dis_upper = np.std(np.sum(np.square(motion[:, upper]), axis=2), axis=0)``,
    ``gt_motion_std - pred_motion_std``; std with ddof=0). Positive: the prediction's
    upper face moves less than the ground truth's. template: (V, 3) neutral face.
    Note that torchmetrics' ``upper_face_dynamics_deviation`` uses frame-to-frame
    displacements instead; this follows the papers' released evaluation code.
    """
    pred, gt = _check_pair(pred, gt)
    template = np.asarray(template, np.float64).reshape(-1, 3)
    if template.shape[0] != gt.shape[1]:
        raise MetricsError(f"Template has {template.shape[0]} vertices, the sequences {gt.shape[1]}.")
    upper = _check_idx(upper_idx, gt.shape[1])
    return _upper_motion_std(gt, template, upper) - _upper_motion_std(pred, template, upper)


def mve(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean vertex error (metres): mean over frames and vertices of ||gt - pred||."""
    pred, gt = _check_pair(pred, gt)
    return float(np.linalg.norm(gt - pred, axis=2).mean())


def pose_diversity(poses: list[np.ndarray]) -> float:
    """Mean over pairs of samples (different seeds, same audio) of the mean per-frame L2
    distance of their head poses (T, C) radians. 0 = every seed gives the same motion."""
    if len(poses) < 2:
        raise MetricsError("Pose diversity needs at least two samples.")
    pairs = [np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1).mean()
             for a, b in itertools.combinations(poses, 2)]
    return float(np.mean(pairs))


def _peaks(x: np.ndarray, min_gap: int, threshold: float) -> np.ndarray:
    """Indices of local maxima of (N,) above ``threshold``, at least ``min_gap`` apart (greedy by height)."""
    cand = np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:]) & (x[1:-1] > threshold)) + 1
    chosen: list[int] = []
    for i in cand[np.argsort(-x[cand])]:
        if all(abs(i - j) >= min_gap for j in chosen):
            chosen.append(int(i))
    return np.sort(np.asarray(chosen, np.int64))


def audio_onsets(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, min_gap_s: float = 0.1) -> np.ndarray:
    """Onset times (seconds) of (N,) audio: peaks of the half-wave rectified log-energy flux
    in 10 ms hops, above mean + 0.5 std, at least ``min_gap_s`` apart."""
    hop = sample_rate // 100
    n = len(samples) // hop
    if n < 3:
        return np.zeros(0)
    frames = np.asarray(samples[: n * hop], np.float64).reshape(n, hop)
    log_energy = np.log(np.square(frames).mean(axis=1) + 1e-8)
    flux = np.maximum(np.diff(log_energy, prepend=log_energy[0]), 0.0)
    return _peaks(flux, max(1, int(min_gap_s * 100)), flux.mean() + 0.5 * flux.std()) / 100.0


def motion_beats(pose: np.ndarray, fps: float, min_gap_s: float = 0.2) -> np.ndarray:
    """Kinematic beat times (seconds) of head motion (T, C) radians: local minima of angular
    speed that follow a movement (speed dips below half of the preceding peak)."""
    speed = np.linalg.norm(np.diff(np.asarray(pose, np.float64), axis=0), axis=1) * fps
    if len(speed) < 3:
        return np.zeros(0)
    minima = _peaks(-speed, max(1, int(min_gap_s * fps)), -np.inf)
    keep = [m for m in minima if speed[max(0, m - int(min_gap_s * fps)):m + 1].max() > 2 * speed[m] + 1e-6]
    return (np.asarray(keep, np.float64) + 1) / fps


def beat_alignment(motion_times: np.ndarray, audio_times: np.ndarray, sigma_s: float = 0.1) -> float:
    """Beat alignment score 0..1 (BEAT, Liu et al. 2022): mean over motion beats of
    exp(-d^2 / (2 sigma^2)), d = distance in seconds to the nearest audio onset."""
    motion_times, audio_times = np.asarray(motion_times), np.asarray(audio_times)
    if len(motion_times) == 0 or len(audio_times) == 0:
        return 0.0
    d = np.abs(motion_times[:, None] - audio_times[None]).min(axis=1)
    return float(np.exp(-d ** 2 / (2 * sigma_s ** 2)).mean())


def real_time_factor(compute_seconds: float, audio_seconds: float) -> float:
    """Compute time divided by audio duration (0.01 = 100x faster than real time)."""
    return float(compute_seconds) / max(float(audio_seconds), 1e-9)


# ---------------------------------------------------------------- region sets

def region_indices(head, masks_path: str | None = None) -> dict[str, np.ndarray]:
    """``{"lips": idx, "upper_face": idx}`` vertex ids for LVE and FDD.

    From FLAME_masks.pkl when given (lips = ``lips``; upper face = ``forehead`` and
    ``eye_region``), else from the head's own ``regions`` (the demo head carries both).
    """
    if masks_path:
        masks = _read_masks(Path(masks_path))
        missing = [k for k in ("lips", "forehead", "eye_region") if k not in masks]
        if missing:
            raise MetricsError(f"{Path(masks_path).name} lacks the FLAME masks {', '.join(missing)}.")
        upper = np.union1d(np.asarray(masks["forehead"]), np.asarray(masks["eye_region"]))
        return {"lips": np.asarray(masks["lips"], np.int64), "upper_face": upper.astype(np.int64)}
    regions = getattr(head, "regions", {}) or {}
    if "lips" not in regions or "upper_face" not in regions:
        raise MetricsError(f"Head {head.name} has no lips / upper_face regions; pass --masks FLAME_masks.pkl.")
    return {"lips": np.asarray(regions["lips"], np.int64), "upper_face": np.asarray(regions["upper_face"], np.int64)}


def _read_masks(path: Path) -> dict:
    """FLAME_masks.pkl (a dict of vertex-id arrays; Python 2 or 3 pickles) through the FLAME
    files' restricted unpickler: only numpy arrays are rebuilt, nothing else is imported."""
    from .flame_pickle import read_pickle
    from .head_model import HeadModelError

    try:
        masks = read_pickle(path, "FLAME_masks.pkl")
    except HeadModelError as exc:
        raise MetricsError(str(exc)) from None
    if not isinstance(masks, dict):
        raise MetricsError(f"{path.name} is not a FLAME_masks.pkl (a dict of vertex ids).")
    return masks


# ---------------------------------------------------------------- speech2flame evaluate

def evaluate_model(model_path: str, data_root: str, head, data_format: str = "synthetic", split: str = "val",
                   seeds: int = 3, masks_path: str | None = None, temperature: float = 1.0,
                   device: str = "cpu", split_subjects: dict | None = None, progress: bool = False) -> dict:
    """Run a checkpoint over a dataset split and return the metrics.

    LVE and MVE pool all frames of all clips (as FaceFormer's / CodeTalker's evaluation code);
    FDD, pose diversity and beat alignment are means over clips; ``per_clip`` lists each clip's. ``device`` (auto, cpu, cuda,
    ...) is where the model runs; the metrics are computed in numpy. ``split_subjects``
    ({split: [subject, ...]}) assigns VOCASET subjects to splits (others are "train").
    ``progress`` shows a bar on stderr.

    Ground truth is the dataset's own geometry: the target's FLAME parameters posed on the head
    plus the per-vertex detail they leave over (VOCASET: on each subject's template, so the
    ground truth is the captured mesh itself); the prediction is posed the same way with the
    model's own detail, if it has any. Lips are closed where a lip-contact model says they touch,
    as in the engine; eyes are left at rest in both, so only the model's output is compared.
    """
    import dataclasses

    import torch
    from tqdm import tqdm

    from .device import resolve_device
    from .engines.neural import apply_lip_contact, contact_closure
    from .flame import FlameLayer, take_vertices
    from .models.checkpoint import check_head, load_checkpoint
    from .take import Take
    from .training.datasets import MotionDataset

    target = resolve_device(device)
    model = load_checkpoint(model_path, target)
    check_head(model.config, head)
    fps = float(model.config.fps)
    data = MotionDataset(data_format, data_root, head, fps, split, split_subjects)
    if len(data) == 0:
        raise MetricsError(f"The dataset at {data_root} has no clips in split {split!r}"
                           + (" (VOCASET subjects go to splits with --split-subjects)." if data_format == "vocaset"
                              and not split_subjects else "."))
    regions = region_indices(head, masks_path)
    templates = data.templates() if data_format == "vocaset" else {}  # read once, with the clips
    layers: dict[str, tuple] = {}  # template key -> (head posed on it, its FlameLayer)
    names = list(head.expression_names)
    detail_basis = getattr(getattr(model, "face", None), "detail_basis", None)
    rows, frames, compute, duration = [], [], 0.0, 0.0
    for i in tqdm(range(len(data)), desc="evaluate", unit="clip", disable=not progress, file=sys.stderr):
        clip = data[i]
        started = time.perf_counter()
        with torch.inference_mode():
            feats = model.encode_audio(torch.from_numpy(clip.audio)[None].to(target), clip.num_frames)[0].cpu().numpy()
            outs = [model.generate(feats, clip.emotion, None, seed=s, temperature=temperature)
                    for s in range(max(1, seeds))]
        compute += (time.perf_counter() - started) / max(1, seeds)
        duration += len(clip.audio) / SAMPLE_RATE

        key = clip.style if templates else ""
        if key not in layers:
            posed = dataclasses.replace(head, v_template=templates[key]) if templates else head
            layers[key] = (posed, FlameLayer(posed))
        posed, layer = layers[key]

        expression, jaw = outs[0]["expression"].copy(), outs[0]["jaw"].copy()
        if "lip_contact" in outs[0]:  # as the engine does: lips closed where the model says they touch
            apply_lip_contact(expression, names, jaw, contact_closure(outs[0]["lip_contact"]))
        pred_take = Take(fps, expression, names, jaw, clip.neck, clip.global_rot,
                         np.zeros((len(expression), 6), np.float32))  # the ground truth's head pose, eyes at rest
        if "detail_weights" in outs[0] and detail_basis is not None:
            pred_take.detail_basis = detail_basis.detach().float().cpu().numpy() / 1000.0  # mm -> metres
            pred_take.detail_weights = np.asarray(outs[0]["detail_weights"], np.float32)
        gt_v, pred_v = ground_truth_vertices(posed, clip, fps, layer), take_vertices(posed, pred_take, layer=layer)
        poses = [np.concatenate([o["neck"], o["global_rot"]], axis=1) for o in outs]
        onsets = audio_onsets(clip.audio)
        frames.append(len(gt_v))
        rows.append({
            "id": clip.id,
            "frames": len(gt_v),
            "lve": lve(pred_v, gt_v, regions["lips"]),
            "fdd": fdd(pred_v, gt_v, posed.v_template, regions["upper_face"]),
            "mve": mve(pred_v, gt_v),
            "pose_diversity": pose_diversity(poses) if len(poses) > 1 else 0.0,
            "beat_alignment": beat_alignment(motion_beats(poses[0], fps), onsets),
            "beat_alignment_gt": beat_alignment(motion_beats(clip.head_pose(), fps), onsets),
        })
    pooled = {"lve", "mve"}  # means over all frames: each clip weighs by its length
    result = {key: float(np.average([r[key] for r in rows], weights=frames if key in pooled else None))
              for key in rows[0] if key not in ("id", "frames")}
    result.update({"clips": len(rows), "frames": int(sum(frames)), "seeds": seeds,
                   "real_time_factor": real_time_factor(compute, duration), "model": str(model_path), "split": split,
                   "per_clip": rows})
    return result


def ground_truth_vertices(head, clip, fps: float, layer=None) -> np.ndarray:
    """(T, V, 3) metres: ``clip``'s FLAME parameters posed on ``head`` (eyes at rest) plus the
    per-vertex detail they leave over; for a VOCASET clip on its subject's template, the
    captured mesh itself."""
    from .flame import take_vertices
    from .take import Take

    t = clip.num_frames
    take = Take(fps, clip.expression, list(head.expression_names), clip.jaw, clip.neck, clip.global_rot,
                np.zeros((t, 6), np.float32))
    vertices = take_vertices(head, take, layer=layer)
    return vertices + clip.detail if clip.detail is not None else vertices


def parse_split_subjects(text: str) -> dict[str, list[str]]:
    """"val=FaceTalk_A,FaceTalk_B;test=FaceTalk_C" -> {"val": [...], "test": [...]}."""
    result: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        split, sep, subjects = part.partition("=")
        names = [n.strip() for n in subjects.split(",") if n.strip()]
        if not sep or not split.strip() or not names:
            raise MetricsError(f"--split-subjects takes SPLIT=SUBJECT,SUBJECT;SPLIT=...; got {part!r}.")
        result.setdefault(split.strip(), []).extend(names)
    return result


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `speech2flame evaluate`."""
    parser.add_argument("--model", required=True, help="checkpoint folder (or .safetensors with sibling .json)")
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--format", default="synthetic", choices=("synthetic", "flame_params", "vocaset"),
                        help="dataset layout")
    parser.add_argument("--split", default="val", help="dataset split to evaluate (default val)")
    parser.add_argument("--split-subjects", help="VOCASET: subjects of each split, e.g. "
                                                 "'val=FaceTalk_170811_03274_TA;test=FaceTalk_170809_00138_TA' "
                                                 "(the training config's data.split_subjects); others are train")
    parser.add_argument("--head", help="head model the model was trained for: demo, a .npz or a FLAME .pkl "
                                       "(default demo)")
    parser.add_argument("--masks", help="FLAME_masks.pkl for the lip / upper-face regions (FLAME heads)")
    parser.add_argument("--seeds", type=int, default=3, help="samples per clip for pose diversity")
    parser.add_argument("--temperature", type=float, default=1.0, help="head-pose sampling temperature")
    parser.add_argument("--output", help="also write the metrics JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:1, mps (default cpu)")


def run_evaluate(args: argparse.Namespace) -> int:
    """Entry of `speech2flame evaluate`: prints the metrics as JSON; returns the exit code."""
    from .head_model import HeadModelError, load_head_model
    from .models.checkpoint import CheckpointError, check_head, read_config
    from .training.datasets import DatasetError

    output = Path(args.output).expanduser() if args.output else None
    try:
        if output is not None and not output.parent.is_dir():
            raise MetricsError(f"The folder of --output {output} does not exist.")
        split_subjects = parse_split_subjects(args.split_subjects) if args.split_subjects else None
        head = load_head_model(args.head or "demo")
        if args.head is None:  # the demo head by default: a model made for another rig needs --head
            check_head(read_config(args.model)[0], head,
                       advice="pass --head with the rig it was trained for (without --head: the demo head)")
        result = evaluate_model(args.model, args.data, head, args.format, args.split, args.seeds, args.masks,
                                args.temperature, args.device, split_subjects, progress=not args.quiet)
    except (MetricsError, CheckpointError, DatasetError, HeadModelError, ValueError) as exc:
        print(f"speech2flame: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if output is not None:
        try:
            output.write_text(text + "\n")
        except OSError as exc:
            print(f"speech2flame: error: cannot write {output} ({exc.strerror or exc}); the metrics are above.",
                  file=sys.stderr)
            return 2
    return 0
