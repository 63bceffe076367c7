"""Speed of ``limbseg segment`` (issue 5): end-to-end time and peak memory, vs the study's configuration.

    python benchmarks/bench_segment.py [--threads 2] [--device cpu] [--model BUNDLE] [--pixel 0.9375] [--repeat 3]
                                       [--input SCAN]

1. A virtual water-Dixon subject in the study's geometry (512x512, 0.9375 mm, 3 mm slices, pelvis to
   ankles) is written as DICOM (not timed); ``--input`` times a given scan instead.
2. ``segment()`` runs end to end in a child process (read, ROI, inference, post-processing, all
   outputs): wall time and the child's peak resident memory.
3. The study's configuration, same network, same process: every axial slice (no ROI) divided by
   the maximum, resized to 256x256 (bilinear), 3 repeated channels, run, resized back.
   Steps 2 and 3 alternate ``--repeat`` times; medians (and the median of the per-run ratios) are reported.
4. FLOPs per volume (torch FlopCounterMode on one slice x the number of slices) and the fraction of
   this machine's measured matrix-multiply throughput (a large torch.mm) that inference reaches.
Without ``--model`` the shipped model is used, or an untrained ResNet34 U-Net with the default
preprocessing when none is installed (the speed is the same). Figures go to stdout and to
``docs/benchmarks.md`` (section ``bench_segment``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _bundle(model: str | None, workdir: Path) -> Path:
    from limbseg.labels import DEFAULT_SCHEME
    from limbseg.models.bundle import DEFAULT_PREPROCESSING, default_bundle_path, save_bundle
    from limbseg.models.factory import architecture, build_model

    if model:
        return Path(model)
    if (default_bundle_path() / "model.json").is_file():
        return default_bundle_path()
    arch = architecture("unet", "resnet34")
    return save_bundle(workdir / "untrained-resnet34", [build_model(arch)],
                       {"architecture": arch, "labels": DEFAULT_SCHEME.to_json(), "preprocessing": DEFAULT_PREPROCESSING})


def _child(args: argparse.Namespace) -> None:
    """Run segment() once and print its timings and peak RSS (MB) as JSON."""
    import torch

    torch.set_num_threads(args.threads)
    from limbseg.pipeline import segment

    sampler = _TreePss() if args.child_sample_memory else None  # only in an extra, untimed run
    t = time.perf_counter()
    result = segment(args.child_input, args.child_output, model=args.model, device=args.device)
    wall = time.perf_counter() - t
    peak = _peak_rss_mb()
    tree = sampler.stop() if sampler is not None else None
    print(json.dumps({"wall_s": wall, "peak_mb": peak, "tree_peak_mb": tree, "timings": result.timings}))


class _TreePss:
    """Peak memory of this process and its children together (segment forks helpers), sampled every 0.05 s.

    Proportional set size (``Pss`` of /proc/PID/smaps_rollup): pages shared copy-on-write between the parent
    and a forked child are counted once, split between them, not once per process as RSS would. Linux only;
    0 elsewhere. Each sample costs a few ms of CPU, so it runs in an extra run that is not timed.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        import threading

        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()

    @staticmethod
    def _pss_kb(pid: int | str) -> int:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def _children(self) -> list[str]:
        me = str(os.getpid())
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                        found.append(entry)
                except (OSError, IndexError):
                    continue
        return found

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            total = self._pss_kb(os.getpid()) + sum(self._pss_kb(pid) for pid in self._children())
            self.peak_kb = max(self.peak_kb, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MB) since it started its program.

    Linux: ``VmHWM`` of /proc/self/status. Not ``ru_maxrss``: that keeps the high-water mark across
    fork + exec, so a child started by a parent that had grown to 4.7 GB reported 4.7 GB.
    """
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: kilobytes, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _flops(model, shape: tuple[int, int], device) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, *shape, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def _matmul_gflops(device) -> float:
    import torch

    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    times = []
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 2 * 2048**3 / float(np.median(times)) / 1e9


def _batched_flops(predictor, inputs: np.ndarray) -> tuple[float, float]:
    """FLOPs of running ``inputs`` as the Predictor does (per batch: its body tiles, padded to 32) and the mean
    number of pixels per slice that went through the network."""
    from limbseg.segmentation.predict import body_tiles

    whole = [(slice(0, inputs.shape[2]), slice(0, inputs.shape[3]))]
    cache: dict[tuple[int, int], float] = {}
    flops = pixels = 0.0
    for start in range(0, len(inputs), predictor.batch_size):
        batch = inputs[start:start + predictor.batch_size]
        for rows, cols in ([t.run for t in body_tiles(batch)] if predictor.crop_to_body else whole):
            shape = (-(-(rows.stop - rows.start) // 32) * 32, -(-(cols.stop - cols.start) // 32) * 32)
            if shape not in cache:
                cache[shape] = _flops(predictor.models[0], shape, predictor.device)
            flops += cache[shape] * len(batch) * len(predictor.models)
            pixels += shape[0] * shape[1] * len(batch)
    return flops, pixels / len(inputs)


def _study(bundle_path: Path, dicom: Path, device: str) -> dict:
    """The study's configuration: all slices, /max, 256x256, repeat channels."""
    import torch

    from limbseg.io import read_image
    from limbseg.models.bundle import load_bundle
    from limbseg.segmentation.predict import Predictor

    bundle = load_bundle(bundle_path)
    predictor = Predictor(bundle, device=device, crop_to_body=False)  # the whole 256x256 field, as in the study
    vol = read_image(dicom)
    t = time.perf_counter()
    arr = torch.as_tensor(vol.array.astype(np.float32) / max(float(vol.array.max()), 1e-6))
    x = arr.permute(2, 0, 1)[:, None]  # (K, 1, I, J)
    x = torch.nn.functional.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
    probs = torch.as_tensor(predictor.predict_slices(x.repeat(1, 3, 1, 1).numpy()))
    labels = torch.nn.functional.interpolate(probs, size=vol.shape[:2], mode="bilinear").argmax(1)
    wall = time.perf_counter() - t
    flops = _flops(predictor.models[0], (256, 256), predictor.device) * vol.shape[2] * len(predictor.models)
    return {"wall_s": wall, "slices": vol.shape[2], "flops": flops, "labels_shape": list(labels.shape)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None)
    parser.add_argument("--pixel", type=float, default=0.9375)
    parser.add_argument("--slice-thickness", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each configuration; medians are reported")
    parser.add_argument("--input", default=None, help="time this scan (DICOM folder/zip, NIfTI, NRRD) instead of "
                                                           "a new virtual subject")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--child-input", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    parser.add_argument("--child-sample-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_input:
        _child(args)
        return
    import torch

    torch.set_num_threads(args.threads)
    from limbseg.io import read_image
    from limbseg.segmentation.predict import resolve_device
    from limbseg.synth.cohort import synthesize_subject
    from limbseg.synth.dicom_writer import write_mr_series

    work = Path(tempfile.mkdtemp(prefix="bench_segment_"))
    if args.input:
        dicom = Path(args.input)
    else:
        subject = synthesize_subject(args.seed, contrast="water", pixel=args.pixel, slice_thickness=args.slice_thickness)
        dicom = write_mr_series(subject.image, work / "dicom", case=subject.case, seed=args.seed,
                                description=subject.image.meta["description"], info=subject.info)
    scan = read_image(dicom)
    bundle = _bundle(args.model, work)
    cmd = [sys.executable, __file__, "--child-input", str(dicom), "--child-output", str(work / "out"),
           "--model", str(bundle), "--device", args.device, "--threads", str(args.threads)]
    runs, studies = [], []
    for _ in range(max(1, args.repeat)):  # alternate the two so that machine noise hits both alike
        runs.append(_last_json(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
        studies.append(_study(bundle, dicom, args.device))
    ours = {"wall_s": float(np.median([r["wall_s"] for r in runs])), "peak_mb": max(r["peak_mb"] for r in runs),
            "tree_peak_mb": _last_json(subprocess.run([*cmd, "--child-sample-memory"], check=True, capture_output=True,
                                                      text=True).stdout)["tree_peak_mb"],
            "timings": {k: float(np.median([r["timings"][k] for r in runs])) for k in runs[0]["timings"]},
            "walls": [r["wall_s"] for r in runs], "peaks_mb": [r["peak_mb"] for r in runs]}
    study = {**studies[0], "wall_s": float(np.median([s["wall_s"] for s in studies]))}
    speedup = float(np.median([s["wall_s"] / max(r["timings"]["inference"], 1e-9) for r, s in zip(runs, studies, strict=True)]))
    device = resolve_device(args.device)
    roi = json.loads((work / "out" / "labels.json").read_text())["roi"]
    from limbseg.models.bundle import load_bundle
    from limbseg.segmentation.predict import Predictor

    predictor = Predictor(load_bundle(bundle), device=args.device)
    from limbseg.segmentation.region import find_region

    region = find_region(scan)
    inputs, _ = predictor.prepare(region.crop(scan), region.window)
    ours_flops, box_pixels = _batched_flops(predictor, inputs)
    mm = _matmul_gflops(device)
    inf_s = ours["timings"]["inference"]
    fig = {
        "shape": list(scan.shape), "spacing_mm": list(scan.spacing), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "scan": str(args.input) if args.input else "virtual water-Dixon subject",
        "threads": args.threads, "cpu": platform.processor() or platform.machine(),
        "ours_end_to_end_s": ours["wall_s"], "ours_peak_mb": ours["peak_mb"], "ours_timings": ours["timings"],
        "ours_tree_peak_mb": ours["tree_peak_mb"],
        "ours_slices": len(inputs), "ours_slice_shape": list(inputs.shape[-2:]), "roi_z_mm": roi["z_mm"],
        "ours_mean_box_pixels": box_pixels,
        "ours_gflop": ours_flops / 1e9, "study_inference_s": study["wall_s"], "study_gflop": study["flops"] / 1e9,
        "study_slices": study["slices"], "speedup_inference": speedup, "repeat": len(runs),
        "ours_walls": ours["walls"], "ours_peaks_mb": ours["peaks_mb"],
        "matmul_gflops": mm, "ours_fraction_of_matmul": ours_flops / 1e9 / max(inf_s, 1e-9) / mm,
        "study_fraction_of_matmul": study["flops"] / 1e9 / max(study["wall_s"], 1e-9) / mm,
    }
    text = _markdown(fig, " ".join(["python", "benchmarks/bench_segment.py", *sys.argv[1:]]))
    print(text)
    if not args.no_write:
        _write_section(ROOT / "docs" / "benchmarks.md", text, _marker(fig["device"]))


def _marker(device: str) -> str:
    """The docs/benchmarks.md section a run replaces: one for CPU runs, one per accelerator type."""
    kind = device.split(":")[0]
    return "bench_segment" if kind == "cpu" else f"bench_segment_{kind}"


def _markdown(f: dict, command: str) -> str:
    t = f["ours_timings"]
    marker = _marker(f["device"])
    where = "" if marker == "bench_segment" else f" on {f['device_name']}"
    return "\n".join([
        f"<!-- {marker}:start -->",
        f"## `limbseg segment` speed{where} (benchmarks/bench_segment.py)",
        "",
        f"Command: `{command}` — {f['device']}, {f['threads']} threads, {f['cpu']}.",
        f"Scan: {f['scan']}, {f['shape']} voxels at {', '.join(f'{s:.4g}' for s in f['spacing_mm'])} mm.",
        "",
        "| | limbseg (ROI, bundle preprocessing) | study config (all slices, 256x256) |",
        "|---|---|---|",
        f"| slices through the network | {f['ours_slices']} of {f['ours_slice_shape']} (body tiles per batch, "
        f"on average {f['ours_mean_box_pixels']:.0f} pixels with padding) | {f['study_slices']} of 256x256 |",
        f"| inference time | {t['inference']:.1f} s | {f['study_inference_s']:.1f} s |",
        f"| GFLOP per volume | {f['ours_gflop']:.0f} | {f['study_gflop']:.0f} |",
        f"| fraction of measured matmul throughput ({f['matmul_gflops']:.0f} GFLOP/s) | "
        f"{f['ours_fraction_of_matmul']:.0%} | {f['study_fraction_of_matmul']:.0%} |",
        "",
        f"Medians of {f['repeat']} runs of each configuration, alternated. End to end (read, ROI, inference, "
        f"post-processing, all outputs): **{f['ours_end_to_end_s']:.1f} s** "
        f"(runs: {', '.join(f'{w:.1f}' for w in f['ours_walls'])} s), "
        f"peak memory **{f['ours_peak_mb'] / 1024:.2f} GB** (the highest of the runs: "
        f"{', '.join(f'{m / 1024:.2f}' for m in f['ours_peaks_mb'])} GB; with the forked reader and output "
        f"processes, proportional set size sampled every 0.05 s in one more, untimed run: "
        f"{f['ours_tree_peak_mb'] / 1024:.2f} GB) "
        f"(targets: 30 s, 4 GB). "
        f"Inference speed-up over the study's configuration (median of the per-run ratios): "
        f"**{f['speedup_inference']:.2f}x**.",
        "Stages (s, medians): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()) + ".",
        f"<!-- {marker}:end -->",
    ])


def _write_section(path: Path, text: str, marker: str) -> None:
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start in old:
        head, rest = old.split(start, 1)
        tail = rest.split(end, 1)[1] if end in rest else ""
        new = head + text + tail
    else:
        new = old.rstrip() + "\n\n" + text + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


if __name__ == "__main__":
    main()
