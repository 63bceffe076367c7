"""The shipped default model: present, loads without pickle, the study's labels, sane outputs."""

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


def test_shipped_model_card_is_complete(bundle):
    cfg = bundle.config
    assert bundle.scheme == DEFAULT_SCHEME
    assert {"spacing_mm", "tile", "channels", "normalisation"} <= set(bundle.preprocessing)
    assert cfg["training"]["command"] and cfg["training"]["time_s"] > 0
    assert cfg["training"]["hardware"]["device"]
    assert (default_bundle_path() / "weights.safetensors").stat().st_size < 60 * 1024**2


def test_shipped_model_runs_on_a_slice(bundle):
    torch.manual_seed(0)
    [model] = bundle.build_models("cpu")
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 96))
    assert out.shape == (1, DEFAULT_SCHEME.num_classes, 64, 96)
    assert np.isfinite(out.numpy()).all()
