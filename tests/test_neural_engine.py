"""Neural engine end to end on a toy corpus: training, checkpoints, seeds, style, rig checks."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from speech2flame.audio import from_array
from speech2flame.controls import Controls
from speech2flame.engines import EngineError, neural
from speech2flame.models.checkpoint import load_checkpoint, save_checkpoint
from speech2flame.pipeline import generate_take
from speech2flame.take import Take
from speech2flame.training.datasets import MotionDataset
from speech2flame.training.toy import TOY_EXPRESSIONS, toy_clip, toy_head, write_toy_corpus
from speech2flame.training.train import DEFAULTS, TrainConfigError, merge_config, train

SMALL = {"hidden": 32, "num_blocks": 2, "num_regions": 8, "pose_codebook": 32, "pose_code_dim": 16,
         "pose_layers": 1, "audio": {"dim": 32}}


def small_config(tmp, epochs, **train_overrides):
    return merge_config(DEFAULTS, {
        "head": str(tmp / "toy.npz"), "output": str(tmp / "run"), "data": {"root": str(tmp / "corpus")},
        "model": SMALL,
        "train": {"epochs": epochs, "batch_size": 4, "clip_seconds": 2.0, "lr": 3e-3, **train_overrides}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("neural")
    head = toy_head()
    head.save_npz(tmp / "toy.npz")
    write_toy_corpus(tmp / "corpus", num_clips=8, seconds=2.0, seed=0)
    summary = train(small_config(tmp, epochs=12, batch_size=2), show_progress=False, log=lambda m: None)
    return {"tmp": tmp, "head": head, "summary": summary, "model": summary["last"]}


def toy_audio(seconds=2.0, seed=5):
    samples, _ = toy_clip(seconds, np.random.default_rng(seed))
    return from_array(samples, 16000)


def test_training_loss_falls(trained):
    history = trained["summary"]["history"]
    first, last = history[0]["train_parts"]["face"], history[-1]["train_parts"]["face"]
    assert last < 0.5 * first, history
    assert (trained["tmp"] / "run" / "best" / "model.safetensors").is_file()


def test_checkpoint_round_trips_bit_exactly(trained, tmp_path):
    model = load_checkpoint(trained["model"])
    save_checkpoint(model, tmp_path / "copy")
    again = load_checkpoint(tmp_path / "copy")
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # safetensors, not a pickle: 8-byte header length then a JSON header
    raw = (tmp_path / "copy" / "model.safetensors").read_bytes()
    assert raw[8:9] == b"{" and json.loads((tmp_path / "copy" / "config.json").read_text())["config"][
        "expression_names"] == TOY_EXPRESSIONS
    # single-file form: NAME.safetensors + NAME.json
    save_checkpoint(model, tmp_path / "single.safetensors")
    single = load_checkpoint(tmp_path / "single.safetensors")
    assert all(torch.equal(a[k], single.state_dict()[k]) for k in a)


def test_resume_gives_the_same_weights_as_one_run(tmp_path):
    torch.set_num_threads(1)
    toy_head().save_npz(tmp_path / "toy.npz")
    write_toy_corpus(tmp_path / "corpus", num_clips=4, seconds=1.0, seed=1, val_clips=1)
    straight = train(small_config(tmp_path, epochs=2), show_progress=False, log=lambda m: None)
    w_straight = {k: v.clone() for k, v in load_checkpoint(straight["last"]).state_dict().items()}
    for epochs, resume in ((1, False), (2, True)):
        cfg = small_config(tmp_path, epochs=epochs)
        cfg["output"] = str(tmp_path / "run2")
        resumed = train(cfg, resume=resume, show_progress=False, log=lambda m: None)
    w_resumed = load_checkpoint(resumed["last"]).state_dict()
    assert len(resumed["history"]) == 2
    assert all(torch.equal(w_straight[k], w_resumed[k]) for k in w_straight)
    # the optimiser state read on resuming is in memory, not a mapped file (Windows could not
    # replace a mapped file at the next save)
    from torch.optim import Adam

    from speech2flame.training.train import STATE_TENSORS, load_training_state

    state_file = Path(resumed["last"]) / STATE_TENSORS
    optimiser = Adam(load_checkpoint(resumed["last"]).parameters())
    load_training_state(state_file.parent, optimiser)
    maps = Path("/proc/self/maps")
    if maps.is_file():  # Linux only: where a process's mapped files can be listed
        assert optimiser.state and str(state_file.resolve()) not in maps.read_text()


def test_resume_with_a_pretrained_encoder_gives_the_same_weights_as_one_run(tmp_path, monkeypatch):
    """wav2vec 2.0's SpecAugment masks draw from numpy's global generator: its state is resumed too."""
    from test_neural_encoders import TINY
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.set_num_threads(1)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config(**TINY, mask_time_prob=0.2)).save_pretrained(tmp_path / "tiny")
    toy_head().save_npz(tmp_path / "toy.npz")
    write_toy_corpus(tmp_path / "corpus", num_clips=2, seconds=1.0, seed=1, val_clips=1)

    def config(epochs, output):
        cfg = small_config(tmp_path, epochs, batch_size=2, clip_seconds=1.0)
        cfg["model"] = {**cfg["model"], "hidden": 16, "num_blocks": 1,
                        "audio": {"kind": "wav2vec2", "source": str(tmp_path / "tiny"), "dim": 8, "freeze_epochs": 1}}
        cfg["output"] = str(tmp_path / output)
        return cfg

    straight = train(config(3, "straight"), show_progress=False, log=lambda m: None)
    train(config(2, "resumed"), show_progress=False, log=lambda m: None)
    resumed = train(config(3, "resumed"), resume=True, show_progress=False, log=lambda m: None)
    a, b = load_checkpoint(straight["last"]).state_dict(), load_checkpoint(resumed["last"]).state_dict()
    assert [h["train_loss"] for h in straight["history"]] == [h["train_loss"] for h in resumed["history"]]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_interrupted_run_resumes_or_says_why_not(tmp_path):
    torch.set_num_threads(1)
    toy_head().save_npz(tmp_path / "toy.npz")
    write_toy_corpus(tmp_path / "corpus", num_clips=2, seconds=1.0, seed=1, val_clips=1)
    last = tmp_path / "run" / "last"
    train(small_config(tmp_path, 1), show_progress=False, log=lambda m: None)
    shutil.copytree(last, tmp_path / "epoch1")

    def stop_at_epoch_3(message):                 # Ctrl-C after epoch 3's training, before its save
        if message.startswith("epoch 3:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(small_config(tmp_path, 4), resume=True, show_progress=False, log=stop_at_epoch_3)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]  # written after every epoch
    assert not list(last.glob(".*"))              # no temporary files left
    shutil.copytree(last, tmp_path / "epoch2")

    def resume_fails(match):
        with pytest.raises(TrainConfigError, match=match) as error:
            train(small_config(tmp_path, 3), resume=True, show_progress=False, log=lambda m: None)
        assert "\n" not in str(error.value) and "train again without --resume" in str(error.value)

    # stopped between the training state (epoch 2) and the weights (still epoch 1)
    for name in ("model.safetensors", "config.json"):
        shutil.copy(tmp_path / "epoch1" / name, last / name)
    resume_fails(r"files are from different epochs \(training_state.safetensors from epoch 2, .*"
                 r"model.safetensors from epoch 1")
    for name in ("training_state.safetensors", "training_state.json", "model.safetensors"):
        shutil.rmtree(last)
        shutil.copytree(tmp_path / "epoch2", last)
        (last / name).write_bytes((last / name).read_bytes()[:200])   # stopped while writing it
        resume_fails(f"{name} is damaged")
    shutil.rmtree(last)
    shutil.copytree(tmp_path / "epoch2", last)
    lines = []
    summary = train(small_config(tmp_path, 4), resume=True, show_progress=False, log=lines.append)
    assert lines[0].startswith("Resuming from epoch 2") and len(summary["history"]) == 4


def test_resume_refuses_another_model_and_names_changed_settings(tmp_path):
    torch.set_num_threads(1)
    toy_head().save_npz(tmp_path / "toy.npz")
    write_toy_corpus(tmp_path / "corpus", num_clips=2, seconds=1.0, seed=1, val_clips=0)
    train(small_config(tmp_path, 1), show_progress=False, log=lambda m: None)
    bigger = small_config(tmp_path, 2)
    bigger["model"]["hidden"] = 48
    with pytest.raises(TrainConfigError, match=r"other model settings \(model.hidden: 32 there, 48 here\)"):
        train(bigger, resume=True, show_progress=False, log=lambda m: None)
    lines = []
    train(small_config(tmp_path, 2, lr=0.01, batch_size=2), resume=True, show_progress=False, log=lines.append)
    warning = [line for line in lines if line.startswith("warning: settings differ")]
    assert len(warning) == 1 and "train.batch_size 4 -> 2; train.lr 0.003 -> 0.01." in warning[0]
    assert "epochs" not in warning[0]             # more epochs is what resuming is for
    state = json.loads((tmp_path / "run" / "last" / "training_state.json").read_text())
    assert state["param_groups"][0]["lr"] == 0.01  # the new value is used


def test_progress_bar_shows_the_running_mean_loss(tmp_path, capsys):
    import re

    torch.set_num_threads(1)
    toy_head().save_npz(tmp_path / "toy.npz")
    write_toy_corpus(tmp_path / "corpus", num_clips=6, seconds=1.0, seed=1, val_clips=0)
    history = train(small_config(tmp_path, 1, batch_size=1), show_progress=True, log=lambda m: None)["history"]
    shown = [float(v) for v in re.findall(r"loss=([0-9.]+)", capsys.readouterr().err)]
    assert len(shown) >= 6 and shown[-1] == pytest.approx(history[0]["train_loss"], abs=1e-4)
    assert min(shown) > 0.4 * history[0]["train_loss"], shown    # a mean, not a sum that climbs from 0


def test_same_seed_same_head_pose_different_seeds_differ(trained):
    analysis = neural.analyse(toy_audio(), 30.0, model=trained["model"])
    head = trained["head"]

    def take(seed, temperature=1.0):
        return neural.synthesise(analysis, head, 30.0, Controls(seed=seed, temperature=temperature))

    a, b, c = take(1), take(1), take(2)
    assert np.array_equal(a.neck, b.neck) and np.array_equal(a.global_rot, b.global_rot)
    assert not np.allclose(a.neck, c.neck)
    # argmax mode: no randomness in the head pose whatever the seed
    assert np.array_equal(take(1, 0.0).neck, take(2, 0.0).neck)


def test_style_reference_changes_output_statistics(trained, tmp_path):
    rng = np.random.default_rng(9)
    calm = tmp_path / "calm.npz"
    lively = tmp_path / "lively.npz"
    toy_clip(2.0, rng, style="calm")[1].save(calm)
    toy_clip(2.0, rng, style="lively")[1].save(lively)
    analysis = neural.analyse(toy_audio(), 30.0, model=trained["model"])
    out = {}
    for name, ref in (("calm", calm), ("lively", lively)):
        take = neural.synthesise(analysis, trained["head"], 30.0, Controls(style_ref=str(ref), blink_rate=0.0))
        out[name] = take.channel("mouthFunnel").std()
    assert out["lively"] > 1.2 * out["calm"], out   # the toy corpus: lively clips move more
    with pytest.raises(EngineError, match="not found"):
        neural.synthesise(analysis, trained["head"], 30.0, Controls(style_ref=str(tmp_path / "none.npz")))
    # FLAME-parameter files whose arrays have other shapes: one sentence, whichever array is off
    frames = 10
    for arrays in ({"expression": np.zeros((frames, 5)), "jaw": np.zeros((frames, 3)), "pose": np.zeros(6)},
                   {"expression": np.zeros((frames, 5)), "pose": np.zeros(6)},
                   {"expression": np.zeros((frames, 5)), "jaw": np.zeros(frames)}):
        np.savez(tmp_path / "params.npz", **arrays)
        reference = Controls(style_ref=str(tmp_path / "params.npz"), blink_rate=0.0)
        if "jaw" in arrays and arrays["jaw"].ndim == 2:  # a usable file: its odd pose is not needed
            still = neural.synthesise(analysis, trained["head"], 30.0, reference)  # a still face as the style
            assert still.channel("mouthFunnel").std() < out["lively"]
        else:
            with pytest.raises(EngineError, match="needs 'expression'"):
                neural.synthesise(analysis, trained["head"], 30.0, reference)


def test_a_model_trained_again_in_the_same_folder_is_not_served_from_caches(trained, tmp_path):
    import os
    import shutil

    from speech2flame.pipeline import AnalysisCache

    folder = tmp_path / "model"
    shutil.copytree(trained["model"], folder)
    audio, cache = toy_audio(1.0), AnalysisCache()
    run = lambda: generate_take(audio, trained["head"], "neural", Controls(blink_rate=0.0), model=str(folder),  # noqa: E731
                                cache=cache)
    run(), run()
    assert (cache.hits, cache.misses) == (1, 1)  # a slider change reuses the analysis
    # "trained again": other weights written into the same folder, as a resumed or repeated run does
    shutil.copy(trained["tmp"] / "run" / "best" / "model.safetensors", folder / "model.safetensors")
    os.utime(folder / "model.safetensors", ns=(1, os.stat(folder / "model.safetensors").st_mtime_ns + 10**9))
    again = run()
    assert (cache.hits, cache.misses) == (1, 2)  # the old model's features are not reused
    fresh = generate_take(audio, trained["head"], "neural", Controls(blink_rate=0.0), model=str(folder))
    np.testing.assert_array_equal(again.expression, fresh.expression)
    assert sum(key[0] == str(folder.resolve()) for key in neural._models) == 1  # the old one is let go


def test_checkpoint_for_another_rig_is_refused(trained):
    analysis = neural.analyse(toy_audio(1.0), 30.0, model=trained["model"])
    other_names = toy_head(expression_names=["exp000", "exp001", "exp002"], name="flame")
    with pytest.raises(EngineError, match="trained for the rig 'toy'"):
        neural.synthesise(analysis, other_names, 30.0, Controls())
    other_basis = toy_head(seed=7, name="toy2")  # same names, different expression shapes
    with pytest.raises(EngineError, match="expression shapes differ"):
        neural.synthesise(analysis, other_basis, 30.0, Controls())


def test_pipeline_generates_a_valid_take_at_another_fps(trained):
    audio = toy_audio(1.5)
    controls = Controls(emotion="happy", intensity=0.9, articulation=1.5, seed=3)
    take = generate_take(audio, trained["head"], engine="neural", controls=controls, fps=24.0,
                         model=trained["model"])
    assert take.fps == 24.0 and take.num_frames == 36
    assert take.metadata["engine"] == "neural" and take.metadata["model"] == trained["model"]
    assert np.abs(take.expression).max() > 0 and np.abs(take.eyes).max() > 0
    with pytest.raises(EngineError, match="not found"):
        neural.analyse(audio, 30.0, model=str(trained["tmp"] / "missing"))


def test_synthetic_dataset_reads_the_written_corpus(trained):
    data = MotionDataset("synthetic", trained["tmp"] / "corpus", trained["head"], 30.0, "val")
    clip = data[0]
    assert len(data) == 2 and clip.num_frames == 60 and len(clip.audio) == 32000
    assert clip.emotion.shape == (60, 8) and clip.style in ("calm", "lively")
    target = Take.load(trained["tmp"] / "corpus" / data.entries[0]["take"])
    assert target.num_frames == clip.num_frames and np.abs(target.jaw).max() > 0  # the teacher's take


def test_evaluate_cli_reports_metrics(trained, capsys):
    import argparse

    from speech2flame.metrics import add_evaluate_arguments, run_evaluate

    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    args = parser.parse_args(["--model", trained["model"], "--data", str(trained["tmp"] / "corpus"),
                              "--head", str(trained["tmp"] / "toy.npz"), "--seeds", "2"])
    assert run_evaluate(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clips"] == 2 and result["lve"] > 0 and result["pose_diversity"] > 0
    assert 0 < result["real_time_factor"] < 1
    args.head = "nonexistent.npz"
    assert run_evaluate(args) == 2 and "not found" in capsys.readouterr().err


def test_autoregressive_pose_prior_samples_block_by_block_what_its_masked_pass_predicts():
    from speech2flame.models.config import AudioEncoderConfig, ModelConfig
    from speech2flame.models.pose_vqvae import PosePrior

    torch.manual_seed(0)
    cfg = ModelConfig(hidden=32, pose_codebook=16, pose_code_dim=8, pose_layers=2, pose_window=5, pose_context=3,
                      pose_autoregressive=True, audio=AudioEncoderConfig(dim=12))
    prior = PosePrior(cfg).eval()
    features = torch.randn(1, 70, 12)
    codes = prior.sample(features, temperature=0.0)  # 18 blocks, 4 windows, keys and values cached
    audio = prior.block_features(features)
    for start, end in prior._windows(codes.shape[1]):  # the whole window at once, causal mask
        logits = prior.window_logits(audio[:, start:end], prior._previous(codes, start),
                                     prior._before(codes, start, end))
        assert torch.equal(logits.argmax(-1), codes[:, start:end])
    changed = features.clone()
    changed[:, -2:] += 5.0  # the last block (frames 68, 69): the blocks before it do not see it
    assert torch.equal(prior.sample(changed, temperature=0.0)[:, :-1], codes[:, :-1])
    a, b, c = (prior.sample(features, 1.0, seed) for seed in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    cfg.pose_context = 0  # no previous codes: each window starts afresh
    prior = PosePrior(cfg).eval()
    codes = prior.sample(features, temperature=0.0)
    for start, end in prior._windows(codes.shape[1]):
        logits = prior.window_logits(audio[:, start:end], prior._previous(codes, start),
                                     prior._before(codes, start, end))
        assert torch.equal(logits.argmax(-1), codes[:, start:end])


def test_pose_only_training_keeps_the_face_and_scales_every_axis(trained, tmp_path):
    from safetensors.torch import load_file

    from speech2flame.models.checkpoint import read_config
    from speech2flame.training.train import pose_scale_from

    cfg = small_config(trained["tmp"], 2, init=trained["model"], only="pose")
    cfg["output"] = str(tmp_path / "pose")
    cfg["model"].update(pose_autoregressive=True, pose_scale="auto", pose_codebook=24)
    summary = train(cfg, show_progress=False, log=lambda m: None)
    before = load_file(f"{trained['model']}/model.safetensors")
    after = load_file(f"{summary['last']}/model.safetensors")
    pose = ("pose_vq.", "pose_prior.")
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith(pose))  # face, encoder as they were
    assert after["pose_vq.codebook.weight"].shape[0] == 24
    config, _ = read_config(summary["last"])
    assert config.pose_autoregressive and config.hidden == SMALL["hidden"]
    dataset = MotionDataset("synthetic", trained["tmp"] / "corpus", trained["head"], 30.0, "train")
    spread = np.concatenate([dataset[i].head_pose() for i in range(len(dataset))]).std(axis=0)
    assert config.pose_scale == pose_scale_from(dataset)
    moving = spread > 1e-4  # the toy corpus nods the neck and turns the whole head; the other axes rest
    assert moving.sum() == 2 and np.allclose(np.array(config.pose_scale)[moving], 1 / spread[moving], rtol=1e-3)
    assert np.allclose(np.array(config.pose_scale)[~moving], 10.0)
    analysis = neural.analyse(toy_audio(), 30.0, model=summary["last"])
    new = neural.synthesise(analysis, trained["head"], 30.0, Controls(seed=1))
    old = neural.synthesise(neural.analyse(toy_audio(), 30.0, model=trained["model"]), trained["head"], 30.0,
                            Controls(seed=1))
    assert np.array_equal(new.expression, old.expression) and np.array_equal(new.jaw, old.jaw)
    assert not np.allclose(new.neck, old.neck)
    moved = tmp_path / "init_moved"  # resuming needs only the run's own checkpoint, not train.init
    shutil.move(trained["model"], moved)
    try:
        cfg["train"]["epochs"], cfg["train"]["init"] = 3, ""  # as when init was given only by --init
        lines = []
        train(cfg, resume=True, show_progress=False, log=lines.append)
        assert any(line.startswith("Resuming from epoch 2") for line in lines)
    finally:
        shutil.move(moved, trained["model"])
    no_init = small_config(trained["tmp"], 1, only="pose")
    no_init["output"] = str(tmp_path / "no_init")
    with pytest.raises(TrainConfigError, match="train.only: pose needs train.init"):
        train(no_init, show_progress=False, log=lambda m: None)


def test_a_checkpoint_from_before_the_pose_options_loads_and_samples_as_before(trained, tmp_path):
    from speech2flame.models.config import ModelConfig

    folder = tmp_path / "old"
    shutil.copytree(trained["model"], folder)
    doc = json.loads((folder / "config.json").read_text())
    for key in ("pose_autoregressive", "pose_scale"):  # configs written before these existed
        doc["config"].pop(key)
    (folder / "config.json").write_text(json.dumps(doc))
    old, now = load_checkpoint(folder), load_checkpoint(trained["model"])
    assert not old.config.pose_autoregressive and old.config.pose_scale == [] and old.config == now.config
    assert ModelConfig().pose_scale == [] and torch.equal(old.pose_vq.scale, torch.full((6,), 10.0))
    features = torch.randn(1, 40, SMALL["audio"]["dim"])
    assert torch.equal(old.pose_prior.sample(features, 1.0, 3), now.pose_prior.sample(features, 1.0, 3))
