"""Every architecture builds and trains a step; bundles round-trip and refuse bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from limbseg.errors import LimbsegError
from limbseg.labels import DEFAULT_SCHEME
from limbseg.models.bundle import DEFAULT_PREPROCESSING, list_bundles, load_bundle, save_bundle
from limbseg.models.factory import ENCODERS, architecture, build_model
from limbseg.segmentation.predict import Predictor
from limbseg.volume import Volume


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("arch,encoder", [("unet", e) for e in ENCODERS] + [("unet2d", None)])
def test_every_model_builds_and_takes_a_step(arch, encoder):
    torch.manual_seed(0)
    model = build_model(architecture(arch, encoder or "resnet34", 3, 5))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.rand(2, 3, 64, 64), torch.randint(0, 5, (2, 64, 64))
    out = model(x)
    assert out.shape == (2, 5, 64, 64)
    before = [p.detach().clone() for p in model.parameters()]
    torch.nn.functional.cross_entropy(out, y).backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_unknown_encoder_and_arch_are_user_errors():
    with pytest.raises(LimbsegError, match="unknown encoder"):
        architecture("unet", "resnet9000")
    with pytest.raises(LimbsegError, match="unknown architecture"):
        architecture("transformer")


def test_imagenet_offline_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(LimbsegError, match="not available offline; looked in .*hub"):
        build_model(architecture("unet", "resnet34"), "imagenet")


def test_imagenet_from_local_cache_and_from_file(monkeypatch, tmp_path):
    from safetensors.torch import save_file

    from limbseg.models.factory import imagenet_cache_candidates

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    donor = build_model(architecture("unet", "mobilenet_v2"))
    state = {k: v.clone() for k, v in donor.encoder.state_dict().items()}
    target = imagenet_cache_candidates("mobilenet_v2")[0]
    target.parent.mkdir(parents=True)
    save_file(state, str(target))
    model = build_model(architecture("unet", "mobilenet_v2"), "imagenet")
    key = next(iter(state))
    assert torch.equal(model.encoder.state_dict()[key], state[key])
    pth = tmp_path / "enc.pth"
    torch.save(state, pth)
    assert torch.equal(build_model(architecture("unet", "mobilenet_v2"), pth).encoder.state_dict()[key], state[key])
    with pytest.raises(LimbsegError, match="do not fit"):
        build_model(architecture("unet", "resnet34"), pth)


def _config():
    return {"architecture": architecture("unet", "mobilenet_v2"), "labels": DEFAULT_SCHEME.to_json(),
            "preprocessing": dict(DEFAULT_PREPROCESSING)}


@pytest.mark.parametrize("half", [False, True])
def test_bundle_round_trip(tmp_path, half):
    torch.manual_seed(1)
    models = [build_model(architecture("unet", "mobilenet_v2")).eval() for _ in range(2)]
    path = save_bundle(tmp_path / "b", models, _config(), half=half)
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "weights.safetensors"]
    bundle = load_bundle(path)
    assert len(bundle.state_dicts) == 2 and bundle.scheme == DEFAULT_SCHEME
    assert json.loads((path / "model.json").read_text())["weights_dtype"] == ("float16" if half else "float32")
    rebuilt = bundle.build_models()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for m, r in zip(models, rebuilt, strict=True):
            assert torch.allclose(m(x), r(x), atol=5e-2 if half else 1e-6)
    tensors = [*rebuilt[0].parameters(), *rebuilt[0].buffers()]
    assert not any(t.is_meta for t in tensors)  # built on the meta device, every weight then assigned
    key, stored = next((k, v) for k, v in bundle.state_dicts[0].items() if v.is_floating_point())
    before = stored.clone()
    with torch.no_grad():
        rebuilt[0].state_dict()[key].add_(1.0)
    assert torch.equal(bundle.state_dicts[0][key], before)  # each model owns its weights
    assert list_bundles(tmp_path)[0]["encoder"] == "mobilenet_v2"


def test_bundle_refuses_corrupt_and_incompatible(tmp_path):
    path = save_bundle(tmp_path / "b", [build_model(architecture("unet", "mobilenet_v2"))], _config())
    with pytest.raises(LimbsegError, match="missing"):
        load_bundle(tmp_path)
    cfg = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**cfg, "format_version": 99}))
    with pytest.raises(LimbsegError, match="format_version"):
        load_bundle(path)
    (path / "model.json").write_text(json.dumps({**cfg, "labels": {"background": 0, "tibia": 1}}))
    with pytest.raises(LimbsegError, match="output classes"):
        load_bundle(path)
    (path / "model.json").write_text(json.dumps({**cfg, "architecture": architecture("unet", "resnet34")}))
    with pytest.raises(LimbsegError, match="do not fit"):
        load_bundle(path)
    (path / "model.json").write_text("{not json")
    with pytest.raises(LimbsegError, match="not valid JSON"):
        load_bundle(path)
    (path / "model.json").write_text(json.dumps(cfg))
    (path / "weights.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(LimbsegError, match="corrupt"):
        load_bundle(path)


def test_predictor_returns_native_grid(tmp_path):
    torch.manual_seed(0)
    path = save_bundle(tmp_path / "b", [build_model(architecture("unet", "mobilenet_v2"))], _config())
    affine = np.array([[0, 1.5, 0, 10], [-2.0, 0, 0, 5], [0, 0, 4.0, -30], [0, 0, 0, 1]])
    vol = Volume(np.random.default_rng(0).random((30, 25, 6)).astype(np.float32) * 300, affine)
    pred = Predictor(load_bundle(path), device="cpu")
    probs = pred.predict_probabilities(vol)
    assert probs.shape == (5, 30, 25, 6) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    labels = pred.predict(vol)
    assert labels.shape == vol.shape and np.array_equal(labels.affine, affine)
    np.testing.assert_array_equal(labels.array, probs.argmax(0))
