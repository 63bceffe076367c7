"""MR contrast and acquisition: tissue intensities, texture, bias field, stations, Rician noise.

Intensities are relative (about 0-1) per tissue class of :mod:`limbseg.synth.anatomy`, then
scaled to a 12-bit range. ``water`` is the study's water-only Dixon (fat dark, muscle bright,
cortex dark, growth plates bright); ``fat`` the fat-only Dixon; ``t1`` and ``pd`` are
T1-/PD-weighted looks; ``random`` draws every tissue's intensity per subject (SynthSeg-style).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from limbseg.synth import anatomy as A

CONTRASTS = ("water", "fat", "t1", "pd", "random")
DESCRIPTIONS = {"water": "AutoBind WATER", "fat": "AutoBind FAT", "t1": "T1 TSE COR-AX", "pd": "PD TSE AX",
                "random": "SYNTH RANDOM CONTRAST"}
FULL_SCALE = 2000.0

# air skin fat muscle cortex red yellow physis cartilage vessel viscera
_TABLE = {
    "water": [0.0, 0.42, 0.07, 0.42, 0.05, 0.40, 0.09, 0.78, 0.62, 0.85, 0.45],
    "fat": [0.0, 0.25, 0.92, 0.07, 0.03, 0.38, 0.85, 0.06, 0.06, 0.05, 0.18],
    "t1": [0.0, 0.40, 0.92, 0.33, 0.04, 0.45, 0.88, 0.30, 0.38, 0.12, 0.30],
    "pd": [0.0, 0.52, 0.80, 0.42, 0.06, 0.58, 0.76, 0.72, 0.66, 0.35, 0.55],
}
# relative texture amplitude per tissue (multiplies a smooth random field)
_TEXTURE = np.array([0.0, 0.10, 0.20, 0.12, 0.25, 0.25, 0.20, 0.10, 0.08, 0.10, 0.25], np.float32)


@dataclass(frozen=True)
class Acquisition:
    """Per-subject acquisition: tissue ``means`` (11,), relative noise ``sigma``, bias strength
    and the station (table position) gains along z."""

    contrast: str
    means: np.ndarray
    sigma: float
    bias: float
    station_mm: float
    station_gain: np.ndarray


def sample_acquisition(contrast: str, rng: np.random.Generator) -> Acquisition:
    """Draw tissue intensities (jittered +-8 %, or all random), noise level and bias strength."""
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}")
    if contrast == "random":
        means = rng.uniform(0.05, 1.0, len(A.TISSUES))
        means[A.AIR] = 0.0
        means[A.CORTEX] = rng.uniform(0.0, 0.15)
    else:
        means = np.asarray(_TABLE[contrast]) * rng.uniform(0.92, 1.08, len(A.TISSUES))
    return Acquisition(contrast, means.astype(np.float32), float(rng.uniform(0.015, 0.04)),
                       float(rng.uniform(0.1, 0.3)), float(rng.uniform(220, 320)),
                       rng.uniform(0.9, 1.1, 8).astype(np.float32))


def tissue_signal(tissue: np.ndarray, texture: np.ndarray, acq: Acquisition) -> np.ndarray:
    """Noise-free signal (float32, shape of ``tissue``) from tissue classes and a texture field."""
    return acq.means[tissue] * (1.0 + _TEXTURE[tissue] * texture)


def gain(acq: Acquisition, bias_field: np.ndarray, z: np.ndarray, z0: float) -> np.ndarray:
    """Multiplicative receive-field gain: smooth bias times soft steps between table stations."""
    s = (z - z0) / acq.station_mm
    n = np.clip(np.floor(s).astype(np.int32), 0, len(acq.station_gain) - 2)
    t = np.clip((s - n - 0.85) / 0.15, 0.0, 1.0)
    step = acq.station_gain[n] * (1 - t) + acq.station_gain[n + 1] * t
    return (np.exp(acq.bias * bias_field) * step).astype(np.float32)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of signal plus complex Gaussian noise of std ``sigma`` (float32)."""
    re = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    im = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt(re * re + im * im)


def rayleigh_uint16(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Stored noise where there is no signal (uint16): Rician magnitude of zero signal, drawn by
    inverse-CDF lookup from 16-bit uniform integers (as fine as the stored values)."""
    u = (np.arange(65536, dtype=np.float64) + 0.5) / 65536
    table = to_uint16((sigma * np.sqrt(-2.0 * np.log1p(-u))).astype(np.float32))
    return table[rng.integers(0, 65536, size=shape, dtype=np.uint16)]


def to_uint16(signal: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(signal * FULL_SCALE), 0, 4095).astype(np.uint16)
