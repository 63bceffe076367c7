"""The coarse 3D stage: prior weight, region and field-of-view variants, on whole virtual scans.

    python benchmarks/bench_locator.py --model BUNDLE --cohort DIR [DIR ...] [--weights 0 0.5 1 1,1,0,0]
        [--variants] [--baseline BUNDLE] [--limit N] [--time] [--record]

For every subject of a ``limbseg synth`` cohort (NIfTI image and exact labels), the fine network's
probabilities are computed once inside the locator's region and combined with the locator's prior at each
``--weights`` value (0 = no prior), then the argmax on the native grid is post-processed and scored (DSC
per bone) -- the same steps as ``segment`` (:meth:`Predictor.predict_scan`). ``--baseline`` scores a bundle
without locator (heuristic ROI) on the same subjects. Choose the weight on validation subjects, never on
test subjects.

``--variants`` also crops each scan as labs acquire them -- one knee (one leg, 180 mm around the joint),
one leg, the body cut at mid-thigh (pelvis and proximal femurs) and the whole scan stored sagittally --
and segments each crop with the bundle as ``segment`` does, reporting the DSC of each bone present in the
crop next to the full scan's DSC over the same crop, the sides rule, and whether a bone that is not in
view was reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

BONES = ("tibia", "femur", "fibula", "pelvis")


def _dsc(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    from limbseg.metrics import dice

    return {b: dice(pred == v, ref == v) for v, b in enumerate(BONES, start=1) if (ref == v).any()}


def _clean(labels):
    from limbseg.segmentation.postprocess import postprocess
    from limbseg.segmentation.sides import assign_sides

    return postprocess(labels, sides=assign_sides(labels))


def weights_scan(predictor, image, truth, weights: list) -> dict:
    """DSC per bone at each prior weight (fine probabilities computed once)."""
    from limbseg.segmentation.combine import apply_prior, prior_on_grid
    from limbseg.segmentation.predict import native_argmax
    from limbseg.segmentation.region import find_region
    from limbseg.volume import LabelMap

    region = find_region(image, normalisation=predictor.preprocessing.get("normalisation"), locator=predictor.locator)
    crop = region.crop(image)
    probs, canon = predictor.slice_probabilities(crop, window=region.window)
    prior = prior_on_grid(region.location, canon) if region.location is not None else None
    out = {}
    for w in weights:
        weight = [float(v) for v in w.split(",")] if isinstance(w, str) else w
        p = apply_prior(probs.copy(), prior, weight) if prior is not None else probs
        array = np.zeros(image.shape, np.uint8)
        array[region.index] = native_argmax(p, canon.affine, crop)
        labels = _clean(LabelMap(array, image.affine.copy(), {}, scheme=predictor.scheme))
        out[w] = _dsc(labels.array, truth)
    return out


def variant_scan(predictor, image, truth, full_pred) -> list[dict]:
    from limbseg.segmentation.sides import assign_sides
    from limbseg.synth.fov import fields_of_view
    from limbseg.volume import LabelMap

    rows = []
    for fov in fields_of_view(image, truth):
        name, img, ref = fov.name, fov.image, fov.labels
        t = time.perf_counter()
        try:
            raw = predictor.predict_scan(img)
        except Exception as exc:  # noqa: BLE001 - a refused crop is a result
            rows.append({"variant": name, "error": str(exc).splitlines()[0]})
            continue
        labels = LabelMap(raw.array, img.affine.copy(), {}, scheme=predictor.scheme)
        sides = assign_sides(labels)
        from limbseg.segmentation.postprocess import postprocess

        pred = postprocess(labels, sides=sides).array
        full = fov.of(full_pred)
        present = {b for v, b in enumerate(BONES, start=1) if (ref == v).sum() * 1.0 > 0}
        extra = [b for v, b in enumerate(BONES, start=1) if b not in present and (pred == v).sum() > 500]
        rows.append({"variant": name, "dsc": _dsc(pred, ref), "full": _dsc(full, ref), "rule": sides.rule,
                     "not_in_view_reported": extra, "seconds": time.perf_counter() - t})
    return rows


def time_locate(locator, repeats: int = 3) -> str:
    """Median seconds of the locator (input + network) on a 512 x 512 x 310 scan (0.94 x 0.94 x 3 mm)."""
    from limbseg.segmentation.locate import locator_input, predict_volume
    from limbseg.volume import Volume

    rng = np.random.default_rng(0)
    scan = Volume(rng.integers(0, 1000, (512, 512, 310), dtype=np.uint16),
                  np.diag([-0.9375, -0.9375, 3.0, 1.0]), {})
    prep, net = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        grid = locator_input(scan, locator.spacing_mm)
        prep.append(time.perf_counter() - t)
        t = time.perf_counter()
        predict_volume(locator.network, grid.array)
        net.append(time.perf_counter() - t)
    total = [a + b for a, b in zip(prep, net, strict=True)]
    return (f"Locator on a 512 x 512 x 310 scan ({grid.shape} at {locator.spacing_mm} mm), median of {repeats}: "
            f"input {statistics.median(prep):.2f} s + network {statistics.median(net):.2f} s = "
            f"{statistics.median(total):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--cohort", required=True, type=Path, nargs="+", help="synth output folder(s)")
    parser.add_argument("--weights", nargs="+", default=["0", "0.5", "1", "2"],
                        help="prior weights to compare: a number, or one per bone (tibia,femur,fibula,pelvis)")
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="first N subjects only")
    parser.add_argument("--record", default=None, metavar="SECTION",
                        help="write the tables to docs/benchmarks.md as section SECTION (e.g. bench_locator_test)")
    parser.add_argument("--time", action="store_true", help="also time the locator on a 512 x 512 x 310 scan")
    args = parser.parse_args()

    import torch

    from limbseg.io import read_image
    from limbseg.models.bundle import load_bundle
    from limbseg.segmentation.predict import Predictor

    torch.set_num_threads(2)
    weights = [w if "," in w else float(w) for w in args.weights]
    predictor = Predictor(load_bundle(args.model), device="cpu")
    if predictor.locator is None:
        raise SystemExit("the model has no locator")
    base = Predictor(load_bundle(args.baseline), device="cpu") if args.baseline else None
    images = [p for c in args.cohort for p in sorted((c / "imagesTr").glob("*_0000.nii.gz"))[: args.limit]]
    per_w: dict = {w: [] for w in weights}
    base_rows, var_rows = [], []
    for path in images:
        case = path.name[: -len("_0000.nii.gz")]
        image = read_image(path)
        truth = np.asarray(read_image(path.parent.parent / "labelsTr" / f"{case}.nii.gz").array).astype(np.uint8)
        t = time.perf_counter()
        for w, d in weights_scan(predictor, image, truth, weights).items():
            per_w[w].append(d)
        line = f"{case}: " + " ".join(f"w={w}: {statistics.mean(per_w[w][-1].values()):.3f}" for w in weights)
        if base is not None:
            from limbseg.volume import LabelMap

            raw = base.predict_scan(image)
            base_rows.append(_dsc(_clean(LabelMap(raw.array, image.affine, {}, scheme=base.scheme)).array, truth))
            line += f" baseline: {statistics.mean(base_rows[-1].values()):.3f}"
        if args.variants:
            from limbseg.volume import LabelMap

            full = _clean(LabelMap(predictor.predict_scan(image).array, image.affine, {}, scheme=predictor.scheme)).array
            rows = variant_scan(predictor, image, truth, full)
            var_rows.extend(rows)
            line += " | " + " ".join(f"{r['variant']}: " + (f"{statistics.mean(r['dsc'].values()):.3f} "
                                     f"(full {statistics.mean(r['full'].values()):.3f}, {r['rule']})"
                                     if "dsc" in r else r["error"]) for r in rows)
        print(f"{path.parent.parent.name}/{line} [{time.perf_counter() - t:.0f} s]", flush=True)

    def mean_of(rows: list[dict], bone: str) -> str:
        vals = [r[bone] for r in rows if bone in r]
        return f"{statistics.mean(vals):.3f}" if vals else "-"

    cohorts = ", ".join(f"`{c.name}`" for c in args.cohort)
    lines = [f"Prior weight on {len(images)} subjects of {cohorts} (model `{Path(args.model).name}`):", "",
             "| prior | tibia | femur | fibula | pelvis | mean |", "|---|---|---|---|---|---|"]
    table = [(f"weight {w}", per_w[w]) for w in weights] + ([("baseline (no locator)", base_rows)] if base else [])
    for name, rows in table:
        means = [statistics.mean(r.values()) for r in rows]
        lines.append(f"| {name} | " + " | ".join(mean_of(rows, b) for b in BONES) + f" | {statistics.mean(means):.3f} |")
    if var_rows:
        lines += ["", "| variant | n | refused | mean DSC | full scan, same crop | sides rules | a bone not in view reported |",
                  "|---|---|---|---|---|---|---|"]
        for name in dict.fromkeys(r["variant"] for r in var_rows):
            rows = [r for r in var_rows if r["variant"] == name]
            ok = [r for r in rows if "dsc" in r]
            d = [statistics.mean(r["dsc"].values()) for r in ok]
            f = [statistics.mean(r["full"].values()) for r in ok]
            rules = ", ".join(sorted({r["rule"] for r in ok}))
            extra = sum(bool(r["not_in_view_reported"]) for r in ok)
            lines.append(f"| {name} | {len(rows)} | {len(rows) - len(ok)} | {statistics.mean(d) if d else float('nan'):.3f} "
                         f"| {statistics.mean(f) if f else float('nan'):.3f} | {rules} | {extra} |")
    if args.time:
        lines += ["", time_locate(predictor.locator)]
    text = "\n".join(lines)
    print(text)
    if args.record:
        record(args.record, f"The coarse 3D stage (locator) on {cohorts}", text)


if __name__ == "__main__":
    main()
