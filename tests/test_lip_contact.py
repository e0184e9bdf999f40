"""Lip contact: landmark-only FLAME posing, the differentiable lip aperture, the contact head's
training signal and the neural engine's closing of the lips where the model says they touch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech2flame.engines import neural
from speech2flame.head_model import load_head_model
from speech2flame.models.config import config_for_head
from speech2flame.models.lip_contact import CONTACT_MM, LipAperture, contact_labels
from speech2flame.models.talking_head import TalkingHeadModel
from speech2flame.mouth import mouth_measurements
from speech2flame.take import Take
from speech2flame.training.toy import toy_head
from speech2flame.training.train import DEFAULTS, TrainConfigError, compute_losses, merge_config, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def head():
    return load_head_model("demo")


def open_mouth_take(head, frames=10, jaw=0.15):
    """A take with the jaw open and the lower lip pulled down on every frame."""
    names = list(head.expression_names)
    expression = np.zeros((frames, len(names)), np.float32)
    for name in ("mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight"):
        expression[:, names.index(name)] = 0.4
    zeros = np.zeros((frames, 3), np.float32)
    jaws = np.tile(np.array([[jaw, 0.0, 0.0]], np.float32), (frames, 1))
    return Take(fps=30.0, expression=expression, expression_names=names, jaw=jaws, neck=zeros,
                global_rot=zeros.copy(), eyes=np.zeros((frames, 6), np.float32))


def test_lip_aperture_matches_the_mouth_measurement_and_has_gradients(head):
    take = open_mouth_take(head)
    take.jaw[:, 0] = np.linspace(0.0, 0.2, take.num_frames)
    expected = mouth_measurements(head, take)["aperture_mm"]
    face = torch.tensor(np.concatenate([take.expression, take.jaw], 1)[None], requires_grad=True)
    aperture = LipAperture(head)(face)
    np.testing.assert_allclose(aperture[0].detach().numpy(), expected, atol=1e-3)
    assert expected[-1] > 10.0  # the open frames are really open
    aperture.sum().backward()
    jaw_grad = face.grad[0, 1:, -3]  # opening the jaw opens the lips
    assert (jaw_grad > 0).all()
    labels = contact_labels(torch.tensor([0.0, CONTACT_MM, CONTACT_MM + 0.1, 8.0]))
    assert labels.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_contact_loss_is_cross_entropy_against_labels_from_the_target_geometry(head):
    cfg = config_for_head(head, hidden=16, num_blocks=1, num_regions=4, pose_codebook=8, pose_code_dim=8,
                          pose_layers=1, audio={"dim": 16}, lip_contact=True)
    model = TalkingHeadModel(cfg)
    with torch.no_grad():  # a head that is always sure the lips touch (bias +20)
        model.face.contact.weight.zero_()
        model.face.contact.bias.fill_(20.0)
    take = open_mouth_take(head, frames=12)
    face = np.concatenate([take.expression, take.jaw], 1)
    closed = face.copy()
    closed[:6] = 0.0  # first half at rest: lips together
    batch = {"audio": torch.zeros(1, 6400), "face": torch.tensor(closed[None]),
             "pose": torch.zeros(1, 12, 6), "emotion": torch.zeros(1, 12, 8), "mask": torch.ones(1, 12),
             "style": torch.tensor(closed[None]), "style_mask": torch.ones(1, 12)}
    weights = {k: float(v) for k, v in DEFAULTS["train"]["loss"].items()}
    losses = compute_losses(model, batch, weights, lips=LipAperture(head))
    # half the frames are labelled "touching" (loss ~0), half "open" (loss ~20 each)
    assert losses["contact"].item() == pytest.approx(10.0, abs=0.01)
    with torch.no_grad():
        model.face.contact.bias.fill_(-20.0)
    assert compute_losses(model, batch, weights, lips=LipAperture(head))["contact"].item() == pytest.approx(10.0, abs=0.01)


def test_engine_closes_the_lips_where_the_contact_probability_is_high(head):
    take = open_mouth_take(head, frames=10)
    probability = np.array([0.0, 0.1, 0.3, 0.5, 0.9, 1.0, 1.0, 0.2, 0.0, 0.0])
    before = take.expression.copy()
    neural.apply_lip_contact(take.expression, list(take.expression_names), take.jaw,
                             neural.contact_closure(probability))
    aperture = mouth_measurements(head, take)["aperture_mm"]
    assert (aperture[[4, 5, 6]] <= CONTACT_MM).all()            # sure: closed
    assert (aperture[[0, 1, 2, 7, 8, 9]] > 10.0).all()          # unsure: untouched
    np.testing.assert_array_equal(take.expression[[0, 1, 2, 7, 8, 9]], before[[0, 1, 2, 7, 8, 9]])
    assert 1.0 < aperture[3] < aperture[2]                       # in between: partly closed


def test_lip_contact_needs_a_rig_with_lip_landmarks(tmp_path):
    head = toy_head()  # no landmarks
    head.save_npz(tmp_path / "toy.npz")
    from speech2flame.training.toy import write_toy_corpus

    write_toy_corpus(tmp_path / "corpus", num_clips=2, seconds=1.0)
    cfg = merge_config(DEFAULTS, {"head": str(tmp_path / "toy.npz"), "output": str(tmp_path / "run"),
                                  "data": {"root": str(tmp_path / "corpus")},
                                  "model": {"hidden": 16, "num_blocks": 1, "lip_contact": True},
                                  "train": {"epochs": 1}})
    with pytest.raises(TrainConfigError, match="lip landmarks"):
        train(cfg, show_progress=False, log=lambda m: None)
