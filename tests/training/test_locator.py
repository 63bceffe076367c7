"""The coarse 3D stage: it learns what a slice network cannot, and training sees what segment sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from limbseg.segmentation.locate import (
    Location,
    coarse_image,
    coarse_labels,
    locator_input,
    normalise_visible,
    predict_volume,
)
from limbseg.synth.phantoms import located_leg
from limbseg.training.locator import LocatorCase, LocatorOptions, coarse_dice, sample_crop, train_locator
from limbseg.volume import LabelMap, Volume


def _cases(n: int, seed: int) -> list[LocatorCase]:
    rng = np.random.default_rng(seed)
    return [LocatorCase(f"p{i}", *located_leg(rng)) for i in range(n)]


def test_locator_tells_femur_from_tibia_by_position(tmp_path):
    """Femur and tibia are the same rod in these phantoms: only 3D context separates them. A tiny locator
    trained for 300 steps (under a minute on 2 cores) must reach DSC 0.9 on tibia, femur and pelvis on unseen
    phantoms (measured 0.98-0.99). Catches a loss, sampling or normalisation that does not learn, and a
    network without context along the leg (DSC about 0.5 for the two rods then)."""
    torch.manual_seed(0)
    options = LocatorOptions(steps=300, crop=(32, 32, 64), batch_size=2, lr=1e-2, features=(8, 16, 16, 16),
                             full_view_fraction=0.5, validate_every_min=10.0, threads=2)
    state, history = train_locator(_cases(12, 1), [], 5, options, tmp_path)
    from limbseg.models.locator_net import LocatorNet

    net = LocatorNet(1, 5, options.features)
    net.load_state_dict(state)
    net.eval()
    dsc = coarse_dice(net, [LocatorCase(f"v{i}", *located_leg(np.random.default_rng(99 + i))) for i in range(4)], 5)
    assert dsc["1"] >= 0.9 and dsc["2"] >= 0.9 and dsc["4"] >= 0.9, dsc
    assert (tmp_path / "locator-best.pt").is_file()


def test_sample_crop_hides_labels_outside_the_field_of_view():
    case = _cases(1, 3)[0]
    options = LocatorOptions(crop=(32, 32, 48), full_view_fraction=0.0, one_leg_fraction=1.0)
    rng = np.random.default_rng(0)
    cut = 0
    for _ in range(10):
        x, y = sample_crop(case, rng, options)
        assert x.shape == y.shape == (32, 32, 48)
        assert x.min() >= -0.5 and x.max() <= 1.5  # normalised (plus augmentation)
        # where the image is zero (outside the simulated field of view, or air) there is no bone
        assert not (y[x == 0] > 0).any()
        cut += int((y > 0).sum() < (case.labels > 0).sum() * 0.9)
    assert cut >= 5  # most samples show a cut field of view (one leg, part of the leg)


def _scan(seed: int = 0) -> tuple[Volume, LabelMap]:
    """A phantom leg on a 2 x 2 x 4 mm native grid (upsampled from the 6 mm phantom), RAS affine."""
    img, lab = located_leg(np.random.default_rng(seed))
    img = np.repeat(np.repeat(np.repeat(img, 3, 0), 3, 1), 3, 2)[:, :, ::2]
    lab = np.repeat(np.repeat(np.repeat(lab, 3, 0), 3, 1), 3, 2)[:, :, ::2]
    affine = np.diag([-2.0, -2.0, 4.0, 1.0])
    return Volume(img.astype(np.float32), affine, {}), LabelMap(lab, affine, {})


def test_training_case_is_what_segment_gives_the_locator():
    """One path: the locator's input for a scan equals the training case's image normalised over the whole
    field of view, and the coarse labels sit on that same grid."""
    scan, labels = _scan()
    given = locator_input(scan)
    raw = coarse_image(scan)
    assert given.shape == raw.shape and np.allclose(given.affine, raw.affine)
    trained = normalise_visible(raw.array, np.ones(raw.shape, bool))
    np.testing.assert_allclose(given.array, trained, atol=1e-6)
    coarse = coarse_labels(labels, raw, 5)
    assert coarse.shape == raw.shape
    for value in (1, 2, 4):  # every bone survives the 6 mm grid
        assert (coarse == value).sum() > 10


def test_locator_input_does_not_depend_on_orientation():
    """The same scan stored with its axes permuted (a 'sagittal' acquisition) gives the same input."""
    scan, _ = _scan()
    permuted_affine = scan.affine[:, [2, 0, 1, 3]]
    permuted = Volume(np.ascontiguousarray(np.transpose(scan.array, (2, 0, 1))), permuted_affine, {})
    a, b = locator_input(scan), locator_input(permuted)
    assert a.shape == b.shape
    np.testing.assert_allclose(a.array, b.array, atol=1e-4)


def test_location_box_and_noise():
    grid = Volume(np.zeros((20, 20, 30), np.float32), np.diag([-6.0, -6.0, 6.0, 1.0]), {})
    probs = np.zeros((5, 20, 20, 30), np.float32)
    probs[0] = 1
    probs[:, 5:8, 5:8, 10:20] = 0
    probs[2, 5:8, 5:8, 10:20] = 1  # a femur
    probs[:, 15, 15, 2] = 0
    probs[1, 15, 15, 2] = 1  # one stray voxel (0.2 ml): noise
    loc = Location(probs, grid, ("tibia", "femur", "fibula", "pelvis"))
    lo, hi = loc.box_mm(margin_mm=0.0)
    ras = grid.index_to_ras(np.array([[5, 5, 10], [7, 7, 19]], float))
    np.testing.assert_allclose(lo, ras.min(axis=0) - 3.0)
    np.testing.assert_allclose(hi, ras.max(axis=0) + 3.0)
    assert loc.found("femur") and not loc.found("tibia")
    empty = Location(np.stack([np.ones((20, 20, 30), np.float32)] + [np.zeros((20, 20, 30), np.float32)] * 4),
                     grid, loc.names)
    assert empty.box_mm() is None


@pytest.mark.parametrize("shape", [(17, 23, 9), (8, 8, 8)])
def test_predict_volume_pads_and_crops(shape):
    from limbseg.models.locator_net import LocatorNet

    net = LocatorNet(1, 5, (4, 8, 8, 8)).eval()
    probs = predict_volume(net, np.random.default_rng(0).random(shape, dtype=np.float32))
    assert probs.shape == (5, *shape)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)


def _with_locator(tiny_bundle, tmp_path, **extra):
    from tests.conftest import add_tiny_locator

    return add_tiny_locator(tiny_bundle, tmp_path / "with-locator", **extra)


def test_bundle_carries_the_locator(tiny_bundle, tmp_path):
    """The locator saved into a bundle loads back with the same weights (fine model untouched), through the
    full bundle and through the light reader segment uses while the fine model loads."""
    from limbseg.models.bundle import load_bundle, read_locator
    from limbseg.segmentation.predict import Predictor

    path, net = _with_locator(tiny_bundle, tmp_path, prior_weight=0.5)
    bundle = load_bundle(path)
    x = torch.rand(1, 1, 16, 16, 16)
    net.eval()
    for locator in (bundle.build_locator(), read_locator(path)):
        with torch.inference_mode():
            np.testing.assert_allclose(locator.network(x).numpy(), net(x).numpy(), atol=1e-5)
    assert Predictor(bundle, device="cpu").prior_weight == 0.5
    assert load_bundle(tiny_bundle).build_locator() is None and read_locator(tiny_bundle) is None
    old = load_bundle(tiny_bundle).state_dicts[0]
    for k, v in bundle.state_dicts[0].items():
        assert torch.equal(v, old[k])


def test_bundle_with_a_broken_locator_is_refused(tiny_bundle, tmp_path):
    from limbseg.errors import LimbsegError
    from limbseg.models.bundle import load_bundle

    path, _ = _with_locator(tiny_bundle, tmp_path)
    (path / "locator.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(LimbsegError, match="locator weights"):
        load_bundle(path)
    (path / "locator.safetensors").unlink()
    with pytest.raises(LimbsegError, match="locator weights"):
        load_bundle(path)


def test_a_fine_network_trained_from_a_bundle_keeps_its_locator(tiny_bundle, tmp_path):
    """carry_locator copies the locator (weights and model.json entry) into a bundle that has none, leaves its
    fine network alone, and does nothing when the source has no locator."""
    import shutil

    from limbseg.models.bundle import load_bundle, read_locator
    from limbseg.training.locator import carry_locator

    source, net = _with_locator(tiny_bundle, tmp_path, prior_weight=[1.0, 1.0, 0.0, 0.0])
    fine = tmp_path / "new-fine"
    shutil.copytree(tiny_bundle, fine)
    assert carry_locator(tiny_bundle, fine) is False and read_locator(fine) is None
    assert carry_locator(source, fine) is True
    carried = read_locator(fine)
    assert carried.config["prior_weight"] == [1.0, 1.0, 0.0, 0.0]
    for k, v in net.state_dict().items():
        torch.testing.assert_close(carried.network.state_dict()[k], v)
    old, new = load_bundle(tiny_bundle).state_dicts[0], load_bundle(fine).state_dicts[0]
    assert all(torch.equal(old[k], new[k]) for k in old)
