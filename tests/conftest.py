"""Fixtures shared by several test folders: tiny seeded model bundles (seconds per scan on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_tiny_bundle(path: Path, *, spacing_mm: float = 8.0, background_bias: float | None = None,
                     name: str | None = None) -> Path:
    """Save a 5-class 2D U-Net of a few thousand random (seeded) weights as a bundle at ``path``.

    ``background_bias``: set the head's biases to 0 and the background's to this, so that the random network
    finds only a few small blobs (non-empty but small outputs); ``name``: the bundle's ``name`` in model.json.
    """
    import torch

    from limbseg.labels import DEFAULT_SCHEME
    from limbseg.models.bundle import save_bundle
    from limbseg.models.factory import build_model

    torch.manual_seed(0)
    arch = {"arch": "unet2d", "in_channels": 3, "classes": 5, "features": [4, 4, 8, 8, 16, 4]}
    config = {"architecture": arch, "labels": DEFAULT_SCHEME.to_json(),
              "preprocessing": {"spacing_mm": float(spacing_mm), "tile": [64, 64], "channels": "repeat",
                                "normalisation": {"method": "percentile", "lower": 0.5, "upper": 99.5}}}
    if name is not None:
        config = {"name": name, **config}
    model = build_model(arch)
    if background_bias is not None:
        with torch.no_grad():
            model.final_conv.bias.zero_()
            model.final_conv.bias[0] = float(background_bias)
    return save_bundle(path, [model], config)


def add_tiny_locator(bundle: Path, path: Path, **config_extra) -> tuple[Path, object]:
    """A copy of ``bundle`` at ``path`` with a tiny seeded random locator (coarse 3D stage); (path, network)."""
    import torch

    from limbseg.models.locator_net import LocatorNet
    from limbseg.training.locator import LocatorOptions, locator_config, save_locator

    torch.manual_seed(1)
    options = LocatorOptions(features=(4, 8, 8, 8))
    net = LocatorNet(1, 5, options.features)
    config = locator_config(options, 5, [], {"train": "test"}) | config_extra
    return save_locator(path, net.state_dict(), config, bundle), net


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """The default tiny bundle (8 mm pixels), made once per session; tests must not modify it."""
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")
