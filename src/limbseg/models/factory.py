"""Build the segmentation networks: the study's smp U-Nets and a plain from-scratch 2D U-Net.

Every network maps a float32 batch ``(B, in_channels, H, W)`` (H, W multiples of 32) to logits
``(B, classes, H, W)``. Architectures are described by a plain dict (stored as
``model.json["architecture"]`` in a bundle) so a model can be rebuilt without pickle::

    {"arch": "unet", "encoder": "resnet34", "in_channels": 3, "classes": 5,
     "decoder_channels": [256, 128, 64, 32, 16]}
    {"arch": "unet2d", "in_channels": 3, "classes": 5, "features": [32, 32, 64, 128, 256, 32]}

ImageNet encoder weights are never downloaded: they are taken from the local Hugging Face cache
(where ``segmentation_models_pytorch`` stores them, ``smp-hub/<encoder>.imagenet``) or from a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from limbseg.errors import LimbsegError

#: The study's four encoders (smp names).
ENCODERS = ("resnet34", "resnet18", "resnet50", "vgg19", "mobilenet_v2")
ARCHS = ("unet", "unet2d")
DEFAULT_DECODER = [256, 128, 64, 32, 16]
DEFAULT_UNET2D_FEATURES = [32, 32, 64, 128, 256, 32]


def architecture(
    arch: str = "unet", encoder: str = "resnet34", in_channels: int = 3, classes: int = 5,
    decoder_channels: list[int] | None = None,
) -> dict[str, Any]:
    """The architecture dict for ``build_model`` (validated).

    ``decoder_channels``: the U-Net decoder's five stage widths (default smp's 256..16); a narrower
    decoder (e.g. 128, 64, 32, 16, 16) keeps the study's encoder and runs about 2.5x faster on CPU.
    """
    decoder = list(decoder_channels or DEFAULT_DECODER)
    if len(decoder) != 5 or any(int(c) < 1 for c in decoder):
        raise LimbsegError(f"decoder channels must be five positive widths, got {decoder}")
    if arch not in ARCHS:
        raise LimbsegError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch == "unet2d":
        return {"arch": "unet2d", "in_channels": in_channels, "classes": classes,
                "features": list(DEFAULT_UNET2D_FEATURES)}
    if encoder not in ENCODERS:
        raise LimbsegError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")
    return {"arch": "unet", "encoder": encoder, "in_channels": in_channels, "classes": classes,
            "decoder_channels": [int(c) for c in decoder]}


def build_model(arch_config: dict[str, Any], encoder_weights: str | Path | None = None) -> nn.Module:
    """Build a network from an architecture dict.

    Args:
        arch_config: see the module docstring.
        encoder_weights: ``None``/``"none"`` (random init), ``"imagenet"`` (local cache only) or a
            path to a ``.safetensors``/``.pth`` file holding the encoder's state dict.
    """
    cfg = dict(arch_config)
    arch = cfg.get("arch")
    try:
        in_ch, classes = int(cfg["in_channels"]), int(cfg["classes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LimbsegError(f"architecture lacks in_channels/classes: {cfg}") from exc
    if arch == "unet2d":
        if encoder_weights not in (None, "none"):
            raise LimbsegError("the plain 2D U-Net (unet2d) has no encoder to pre-train; use --encoder-weights none")
        from monai.networks.nets import BasicUNet

        features = tuple(cfg.get("features", DEFAULT_UNET2D_FEATURES))
        return BasicUNet(spatial_dims=2, in_channels=in_ch, out_channels=classes, features=features)
    if arch != "unet":
        raise LimbsegError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    encoder = cfg.get("encoder")
    if encoder not in ENCODERS:
        raise LimbsegError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")
    import segmentation_models_pytorch as smp

    model = smp.Unet(
        encoder_name=encoder, encoder_weights=None, in_channels=3, classes=classes,
        decoder_channels=tuple(cfg.get("decoder_channels", DEFAULT_DECODER)),
    )
    if encoder_weights not in (None, "none"):
        state = load_encoder_weights(encoder, encoder_weights)
        _load_encoder_state(model, state, encoder_weights)
    if in_ch != 3:
        model.encoder.set_in_channels(in_ch, pretrained=encoder_weights not in (None, "none"))
    return model


def _load_encoder_state(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load an encoder state dict; classifier heads (``fc.``, ``classifier.``) are ignored."""
    enc = model.encoder  # type: ignore[attr-defined]
    own = enc.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
    missing = [k for k in own if k not in state]
    bad = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if missing or bad or not state:
        raise LimbsegError(
            f"encoder weights do not fit this encoder ({len(missing)} missing, {len(bad)} of wrong shape)", source
        )
    enc.load_state_dict({k: v for k, v in state.items() if k in own})


def imagenet_cache_candidates(encoder: str) -> list[Path]:
    """Where ImageNet weights for ``encoder`` are looked up (Hugging Face hub cache, offline)."""
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders[encoder]["pretrained_settings"].get("imagenet")
    if settings is None:
        return []
    from huggingface_hub import constants

    repo = "models--" + settings["repo_id"].replace("/", "--")
    root = Path(constants.HF_HUB_CACHE) / repo
    return [root / "snapshots" / settings["revision"] / "model.safetensors"]


def load_encoder_weights(encoder: str, source: str | Path) -> dict[str, torch.Tensor]:
    """The encoder state dict from ``"imagenet"`` (local cache only) or a file; never the network."""
    if str(source) == "imagenet":
        candidates = imagenet_cache_candidates(encoder)
        for path in candidates:
            if path.is_file():
                return _read_state_file(path)
        where = ", ".join(str(p) for p in candidates) or "(no ImageNet weights exist for this encoder)"
        raise LimbsegError(
            f"ImageNet weights for {encoder} are not available offline; looked in {where}. "
            "Download them on a connected machine (smp.Unet(encoder_weights='imagenet') fills that cache) "
            "or pass --encoder-weights PATH to a .safetensors/.pth file, or use --encoder-weights none"
        )
    return _read_state_file(Path(source))


def _read_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors or a pickle-free ``torch.load(weights_only=True)`` file."""
    if not path.is_file():
        raise LimbsegError("no such weights file", path)
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
    except LimbsegError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a user-facing corrupt file
        raise LimbsegError(f"cannot read encoder weights ({type(exc).__name__}: {exc})", path) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LimbsegError("weights file does not hold a state dict of tensors", path)
    return {str(k): v for k, v in state.items()}


def set_encoder_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze (or unfreeze) the encoder's parameters, as the study did; no-op for unet2d."""
    enc = getattr(model, "encoder", None)
    if enc is None:
        return
    for p in enc.parameters():
        p.requires_grad_(not frozen)
