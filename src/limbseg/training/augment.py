"""Slice augmentation for training (numpy/scipy, seeded by the caller's Generator).

The study's: rotation uniform in ±15° and left-right flip (safe: labels carry no side). Added for
robustness to scanners and contrasts: isotropic scaling, gamma and contrast/brightness, a smooth
multiplicative bias field, Gaussian noise, Gaussian blur, and a simulated slice-thickness change
(mixing the 2.5D neighbour channels, as a thicker slice averages its neighbours).

Inputs are float32 (3, H, W) in [0, 1] with ``H`` along patient left-right (canonical ``i``) and
labels uint8/int (H, W); outputs have the same shapes, inputs clipped to [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

P = {"flip": 0.5, "affine": 0.8, "gamma": 0.3, "contrast": 0.3, "bias": 0.3, "noise": 0.2, "blur": 0.2,
     "thickness": 0.2}


def _affine(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by U(-15°, 15°) and scale by U(0.85, 1.15) about the tile centre."""
    angle = np.deg2rad(rng.uniform(-15, 15))
    scale = rng.uniform(0.85, 1.15)
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[c, -s], [s, c]]) / scale  # output -> input coordinates
    centre = (np.array(y.shape) - 1) / 2.0
    offset = centre - matrix @ centre
    x = np.stack([ndimage.affine_transform(ch, matrix, offset=offset, order=1, mode="constant") for ch in x])
    y = ndimage.affine_transform(y, matrix, offset=offset, order=0, mode="constant")
    return x, y


def _bias(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field exp(quadratic polynomial), roughly 0.7-1.4 across the tile."""
    u, v = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    coeffs = rng.normal(0, 0.15, 5)
    return np.exp(coeffs[0] * u + coeffs[1] * v + coeffs[2] * u * v + coeffs[3] * u**2 + coeffs[4] * v**2)


def augment_slice(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, *, channels: str = "2.5d"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Apply the random augmentations to one tile (see the module docstring)."""
    x = np.asarray(x, dtype=np.float32)
    if rng.random() < P["flip"]:
        x, y = x[:, ::-1, :], y[::-1, :]
    if rng.random() < P["affine"]:
        x, y = _affine(x, y, rng)
    if channels == "2.5d" and rng.random() < P["thickness"]:
        w = rng.uniform(0.2, 0.6)
        mean = x.mean(axis=0, keepdims=True)
        x = (1 - w) * x + w * mean
    if rng.random() < P["bias"]:
        x = x * _bias(y.shape, rng)[None].astype(np.float32)
    if rng.random() < P["gamma"]:
        x = np.clip(x, 0, None) ** rng.uniform(0.7, 1.5)
    if rng.random() < P["contrast"]:
        x = x * rng.uniform(0.75, 1.25) + rng.uniform(-0.1, 0.1)
    if rng.random() < P["blur"]:
        sigma = rng.uniform(0.5, 1.0)
        x = np.stack([ndimage.gaussian_filter(ch, sigma) for ch in x])
    if rng.random() < P["noise"]:
        x = x + rng.normal(0, rng.uniform(0.01, 0.05), x.shape)
    return np.clip(x, 0.0, 1.0).astype(np.float32), np.ascontiguousarray(y)
