"""Model bundles: a folder with ``weights.safetensors`` + ``model.json``. No pickle.

Several fold models live in one bundle under key prefixes ``fold0.``, ``fold1.`` ... of the same
safetensors file; weights may be stored as float16 and are cast to float32 on load.
``model.json`` keys (``format_version`` 1): ``name``, ``created``, ``architecture`` (see
:mod:`limbseg.models.factory`), ``labels`` (``LabelScheme.to_json``), ``preprocessing``
(``spacing_mm``, ``tile`` [H, W], ``channels`` "repeat" | "2.5d", ``normalisation``),
``training``, ``metrics``, ``versions``, and ``n_models``.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_dir
from limbseg.labels import LabelScheme

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
CONFIG = "model.json"
DEFAULT_NAME = "limbseg-default"
DEFAULT_PREPROCESSING: dict[str, Any] = {
    "spacing_mm": 1.875, "tile": [256, 256], "channels": "2.5d",
    "normalisation": {"method": "percentile", "lower": 0.5, "upper": 99.5},
}


@dataclass
class ModelBundle:
    """A loaded bundle: its config and one float32 state dict per (fold) model."""

    path: Path | None
    config: dict[str, Any]
    scheme: LabelScheme
    preprocessing: dict[str, Any]
    state_dicts: list[dict[str, torch.Tensor]] = field(default_factory=list)
    locator_state: dict[str, torch.Tensor] | None = None  #: the coarse 3D stage (``model.json`` ``locator``)

    @property
    def architecture(self) -> dict[str, Any]:
        return dict(self.config["architecture"])

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name if self.path else "model"))

    def build_models(self, device: str | torch.device = "cpu") -> list[nn.Module]:
        """One network per stored state dict, weights loaded, in eval mode on ``device``."""
        return [_loaded_model(self.architecture, state, n, self.path).to(device).eval()
                for n, state in enumerate(self.state_dicts)]

    def build_locator(self, device: str | torch.device = "cpu") -> Any:
        """The coarse 3D stage (:class:`limbseg.segmentation.locate.Locator`), or None for bundles without one."""
        if self.locator_state is None:
            return None
        from limbseg.segmentation.locate import Locator, build_network

        config = dict(self.config["locator"])
        net = build_network(config["architecture"])
        net.load_state_dict(self.locator_state, strict=True)
        return Locator(net.to(device), config, tuple(self.scheme.names), device=device)


def _loaded_model(architecture: dict[str, Any], state: dict[str, torch.Tensor], n: int, path: Path | None, *,
                  copy: bool = True) -> nn.Module:
    """The network with ``state`` loaded. It is built on the meta device and the weights are assigned (copies
    unless ``copy`` is False, so the model owns them): no random initialisation, which cost about 0.3 s per
    ResNet34 on 2 CPU cores.

    Raises:
        LimbsegError: when the state's names or shapes do not fit the architecture.
    """
    from limbseg.models.factory import build_model

    with torch.device("meta"):
        model = build_model(architecture)
    try:
        model.load_state_dict({k: v.clone() for k, v in state.items()} if copy else state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise LimbsegError(f"weights of model {n} do not fit the architecture ({first})", path) from exc
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):  # a buffer the state does not hold
        model = build_model(architecture)
        model.load_state_dict(state, strict=True)
    return model


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a model (recorded in model.json)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("limbseg", "torch", "segmentation-models-pytorch", "monai", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def save_bundle(directory: str | Path, models: list[nn.Module] | list[dict[str, torch.Tensor]],
                config: dict[str, Any], *, half: bool = False) -> Path:
    """Write a bundle atomically (nothing partial on failure).

    Args:
        directory: the bundle folder (replaced if it exists).
        models: networks or state dicts, one per fold model.
        config: model.json content; must hold ``architecture``, ``labels`` and ``preprocessing``;
            ``format_version``, ``created``, ``versions`` and ``n_models`` are filled in.
        half: store floating tensors as float16 (about half the size).
    """
    from safetensors.torch import save_file

    for key in ("architecture", "labels", "preprocessing"):
        if key not in config:
            raise ValueError(f"bundle config lacks {key!r}")
    if not models:
        raise ValueError("no models to save")
    tensors: dict[str, torch.Tensor] = {}
    for n, m in enumerate(models):
        state = m.state_dict() if isinstance(m, nn.Module) else m
        for k, v in state.items():
            t = v.detach().to("cpu")
            if half and t.is_floating_point():
                t = t.half()
            tensors[f"fold{n}.{k}"] = t.contiguous().clone()
    directory = Path(directory)
    cfg = {
        "format_version": FORMAT_VERSION,
        "name": directory.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **config,
        "n_models": len(models),
        "weights_dtype": "float16" if half else "float32",
    }
    cfg.setdefault("versions", package_versions())
    with atomic_dir(directory) as tmp:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt", "limbseg_format": str(FORMAT_VERSION)})
        (tmp / CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return directory


def _read_config(path: Path) -> dict[str, Any]:
    cfg_path = path / CONFIG
    if not path.is_dir():
        raise LimbsegError("not a model bundle (expected a folder with model.json and weights.safetensors)", path)
    if not cfg_path.is_file() or not (path / WEIGHTS).is_file():
        raise LimbsegError(f"not a model bundle: {CONFIG} or {WEIGHTS} is missing", path)
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LimbsegError(f"model.json is not valid JSON ({exc})", cfg_path) from exc
    if not isinstance(cfg, dict):
        raise LimbsegError("model.json must hold a JSON object", cfg_path)
    version = cfg.get("format_version")
    if version != FORMAT_VERSION:
        raise LimbsegError(f"unsupported bundle format_version {version!r} (this limbseg reads {FORMAT_VERSION})",
                           cfg_path)
    for key in ("architecture", "labels", "preprocessing"):
        if not isinstance(cfg.get(key), dict):
            raise LimbsegError(f"model.json lacks {key!r}", cfg_path)
    return cfg


def _check_compatible(cfg: dict[str, Any], scheme: LabelScheme, path: Path) -> None:
    arch = cfg["architecture"]
    classes = arch.get("classes")
    if classes != scheme.num_classes:
        raise LimbsegError(f"model has {classes} output classes but its labels need {scheme.num_classes}", path)
    pre = cfg["preprocessing"]
    if pre.get("channels") not in ("repeat", "2.5d") or not float(pre.get("spacing_mm", 0)) > 0:
        raise LimbsegError("model.json preprocessing needs channels 'repeat'|'2.5d' and spacing_mm > 0", path)


def load_bundle(path: str | Path) -> ModelBundle:
    """Read and check a bundle; every state dict comes back as float32 on the CPU.

    Raises:
        LimbsegError: missing files, corrupt JSON or weights, unknown format version, labels that do
            not match the output classes, or weights that do not fit the architecture.
    """
    path = Path(path)
    cfg = _read_config(path)
    try:
        scheme = LabelScheme.from_json(cfg["labels"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LimbsegError(f"model.json has invalid labels ({exc})", path) from exc
    _check_compatible(cfg, scheme, path)
    try:
        from safetensors.torch import load_file

        tensors = load_file(str(path / WEIGHTS), device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for corrupt files
        raise LimbsegError(f"weights file is corrupt ({type(exc).__name__})", path / WEIGHTS) from exc
    n_models = int(cfg.get("n_models", 1))
    states: list[dict[str, torch.Tensor]] = [{} for _ in range(n_models)]
    for key, t in tensors.items():
        prefix, _, rest = key.partition(".")
        if not prefix.startswith("fold") or not prefix[4:].isdigit() or int(prefix[4:]) >= n_models:
            raise LimbsegError(f"unexpected tensor {key!r} in the weights", path / WEIGHTS)
        states[int(prefix[4:])][rest] = t.float() if t.is_floating_point() else t
    if any(not s for s in states):
        raise LimbsegError(f"weights hold fewer than the {n_models} models model.json announces", path / WEIGHTS)
    bundle = ModelBundle(path, cfg, scheme, dict(cfg["preprocessing"]), states, _locator_state(cfg, path))
    _check_fit(bundle)
    return bundle


def read_locator(model: Any = None, device: str | torch.device = "cpu") -> Any:
    """Only the coarse 3D stage of a bundle (a path, a loaded :class:`ModelBundle`, or the shipped default):
    a :class:`limbseg.segmentation.locate.Locator`, or None when the bundle has none. Reads ``model.json``
    and the locator's 1 MB of weights, not the fine network's, so ``segment`` can locate while it loads."""
    if isinstance(model, ModelBundle):
        return model.build_locator(device)
    path = Path(model) if model is not None else default_bundle_path()
    cfg = _read_config(path)
    if cfg.get("locator") is None:
        return None
    from limbseg.segmentation.locate import Locator, build_network

    net = build_network(cfg["locator"]["architecture"])
    net.load_state_dict(_locator_state(cfg, path), strict=True)
    names = tuple(s.name for s in LabelScheme.from_json(cfg["labels"]).structures)
    return Locator(net.to(device), dict(cfg["locator"]), names, device=device)


def _locator_state(cfg: dict[str, Any], path: Path) -> dict[str, torch.Tensor] | None:
    """The locator's weights (float32) when ``model.json`` has a ``locator`` entry, checked against its
    architecture."""
    entry = cfg.get("locator")
    if entry is None:
        return None
    if not isinstance(entry, dict) or "architecture" not in entry or "weights" not in entry:
        raise LimbsegError("model.json locator entry needs 'architecture' and 'weights'", path)
    weights = path / str(entry["weights"])
    try:
        from safetensors.torch import load_file

        state = {k: (t.float() if t.is_floating_point() else t) for k, t in load_file(str(weights)).items()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for missing/corrupt files
        raise LimbsegError(f"locator weights are missing or corrupt ({type(exc).__name__})", weights) from exc
    from limbseg.segmentation.locate import build_network

    if int(entry["architecture"].get("classes", 0)) != LabelScheme.from_json(cfg["labels"]).num_classes:
        raise LimbsegError("the locator's classes do not match the bundle's labels", path)
    try:
        build_network(entry["architecture"]).load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise LimbsegError(f"locator weights do not fit its architecture ({str(exc).splitlines()[0]})", weights) from exc
    return state


def _check_fit(bundle: ModelBundle) -> None:
    """Raise LimbsegError now (not at inference) if any state dict does not fit the architecture.

    Nothing is initialised or copied (see :func:`_loaded_model`); the networks are thrown away."""
    for n, state in enumerate(bundle.state_dicts):
        _loaded_model(bundle.architecture, state, n, bundle.path, copy=False)


def default_bundle_path() -> Path:
    """The folder of the shipped model bundle.

    Run from a source checkout (the package is ``<repo>/src/limbseg``): ``<repo>/models/limbseg-default``,
    where training writes it. Installed from a wheel: the copy the build puts inside the package,
    ``limbseg/models_data/limbseg-default`` (see setup.py). The path is returned even when it holds no
    bundle; :func:`load_bundle` then names it in its error.
    """
    package = Path(str(resources.files("limbseg"))).resolve()
    checkout = package.parents[1] / "models" / DEFAULT_NAME
    if package.parent.name == "src" and (checkout / CONFIG).is_file():
        return checkout
    return package / "models_data" / DEFAULT_NAME


def list_bundles(*dirs: str | Path) -> list[dict[str, Any]]:
    """Bundles found directly in ``dirs`` (or the dirs themselves): name, path, created, encoder, labels, metrics.

    Unreadable folders are skipped; only model.json is read (fast, for the GUI).
    """
    found: list[dict[str, Any]] = []
    for d in dirs or (default_bundle_path().parent,):
        d = Path(d)
        candidates = [d] if (d / CONFIG).is_file() else sorted(p for p in d.glob("*") if (p / CONFIG).is_file())
        for p in candidates:
            try:
                cfg = _read_config(p)
            except LimbsegError:
                continue
            arch = cfg["architecture"]
            found.append({
                "name": cfg.get("name", p.name), "path": str(p), "created": cfg.get("created"),
                "arch": arch.get("arch"), "encoder": arch.get("encoder"),
                "labels": [s["name"] for s in cfg["labels"].get("structures", [])],
                "metrics": cfg.get("metrics", {}).get("summary", cfg.get("metrics", {})),
            })
    return found
