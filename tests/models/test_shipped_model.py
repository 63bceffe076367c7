"""The shipped default model: present, loads without pickle, the study's labels, and finds every bone of a
small fixed virtual subject (never trained on) with at least a stated DSC."""

import numpy as np
import pytest
import torch

from limbseg.labels import DEFAULT_SCHEME
from limbseg.models.bundle import default_bundle_path, load_bundle


@pytest.fixture(scope="module")
def bundle():
    path = default_bundle_path()
    assert (path / "model.json").is_file(), f"the shipped model is missing at {path}"
    return load_bundle(path)


@pytest.fixture(scope="module")
def fixed_subject(bundle):
    """(subject, predictor, whole-scan prediction) of the fixed virtual child (seed 0, water, 1.875 mm)."""
    from limbseg.segmentation.predict import Predictor
    from limbseg.synth.cohort import synthesize_subject

    torch.set_num_threads(2)
    subject = synthesize_subject(0, contrast="water", pixel=1.875)
    predictor = Predictor(bundle, device="cpu")
    return subject, predictor, predictor.predict_scan(subject.image)


def test_shipped_model_card_is_complete(bundle):
    cfg = bundle.config
    assert bundle.scheme == DEFAULT_SCHEME
    assert {"spacing_mm", "tile", "channels", "normalisation"} <= set(bundle.preprocessing)
    assert cfg["training"]["command"] and cfg["training"]["time_s"] > 0
    assert cfg["training"]["hardware"]["device"]
    assert (default_bundle_path() / "weights.safetensors").stat().st_size < 60 * 1024**2


#: DSC floors on the fixed subject, about 0.05 below what the shipped model scores (0.931, 0.907, 0.751, 0.814;
#: the model shipped before it scored 0.850, 0.827, 0.706, 0.564 and fails here):
#: a model that is retrained and ships worse, or a preprocessing change that breaks it, fails here.
FLOORS = {"tibia": 0.88, "femur": 0.85, "fibula": 0.70, "pelvis": 0.76}


@pytest.mark.slow
def test_shipped_model_finds_every_bone_of_a_fixed_virtual_subject(fixed_subject):
    """Water-Dixon child, seed 0 (training used seeds 1000-1099), on the study's slices at 1.875 mm pixels
    (the model's own in-plane spacing, so the scan is cheap to simulate), through `predict_scan` (ROI, window)."""
    from limbseg.metrics import dice

    subject, _, pred = fixed_subject
    scores = {name: dice(pred.array == value, subject.labels.array == value)
              for name, value in (("tibia", 1), ("femur", 2), ("fibula", 3), ("pelvis", 4))}
    assert all(scores[b] >= FLOORS[b] for b in FLOORS), scores


#: Where the shipped model is not yet within 0.05 of the whole scan (stage 3, measured 2026-12-02 on this
#: subject: knee femur 0.800 vs 0.929; one-leg fibula 0.454 vs 0.795 — the whole scan's fibula improved, the
#: cut one did not; one-leg pelvis now within the old allowance): the allowed drop, about 0.03 beyond each.
#: Open in issue #14's note; shrink these as the model improves.
#: The knee series (measured 2026-12-02, same model): sagittal 0.3 x 0.3 x 1.5 mm femur 0.708 vs 0.930, coronal
#: 0.3 x 0.3 x 3.8 mm femur 0.866 vs 0.927; their tibiae are within 0.05.
KNOWN_GAPS = {("one knee", "femur"): 0.16, ("one leg", "fibula"): 0.37, ("one leg", "pelvis"): 0.45,
              ("knee sagittal 0.3x0.3x1.5 mm", "femur"): 0.25, ("knee coronal 0.3x0.3x3.8 mm", "femur"): 0.09}


@pytest.mark.slow
def test_shipped_model_on_the_fields_of_view_labs_acquire(fixed_subject):
    """The fixed subject cut to one knee, one leg, the body above mid-thigh, stored sagittally, and its knee
    resampled as a sagittal 0.3 x 0.3 x 1.5 mm and a coronal 0.3 x 0.3 x 3.8 mm knee series: each runs
    without ROI options, every bone present gets one side (or 'unknown'), no bone out of view is reported,
    and each bone's DSC is within 0.05 of the whole scan's over the same crop (issue #14), except the known gaps
    above. The model shipped before the locator refused the one-knee and one-leg crops."""
    from limbseg.metrics import dice
    from limbseg.segmentation.postprocess import postprocess
    from limbseg.segmentation.sides import assign_sides
    from limbseg.synth.fov import fields_of_view
    from limbseg.volume import LabelMap

    subject, predictor, whole = fixed_subject
    whole = postprocess(LabelMap(whole.array, whole.affine, {})).array
    failures = []
    for fov in fields_of_view(subject.image, subject.labels.array):
        raw = predictor.predict_scan(fov.image)
        labels = LabelMap(raw.array, fov.image.affine, {})
        sides = assign_sides(labels)
        pred = postprocess(labels, sides=sides).array
        for value, name in enumerate(("tibia", "femur", "fibula", "pelvis"), start=1):
            truth = fov.labels == value
            big = 2000 * max(1.0, float(np.prod(subject.image.spacing) / np.prod(fov.image.spacing)))
            if truth.sum() < big:  # not in view (or a sliver at the crop's edge; counted in source voxels)
                if (pred == value).sum() > big and not (fov.labels == value).any():
                    failures.append(f"{fov.name}: {name} reported but not in view")
                continue
            if fov.name in ("one knee", "one leg") or fov.name.startswith("knee "):
                parts = [m for _, m in sides.split(name, pred == value, labels.affine) if m.any()]
                if len(parts) != 1:
                    failures.append(f"{fov.name}: {name} split over {len(parts)} sides ({sides.rule})")
            got, ref = dice(pred == value, truth), dice(fov.of(whole) == value, truth)
            if got < ref - KNOWN_GAPS.get((fov.name, name), 0.05):
                failures.append(f"{fov.name}: {name} DSC {got:.3f} vs {ref:.3f} in the whole scan")
    assert not failures, failures
