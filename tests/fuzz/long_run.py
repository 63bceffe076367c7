"""Long fuzz run with crash isolation: each input is read in a forked child, so a segmentation fault or
abort inside a C library is recorded (its bytes saved) instead of ending the run.

    nice -n 19 .venv/bin/python -m tests.fuzz.long_run --examples 10000 [--targets nifti,metaimage] [--out DIR]

Prints, per target: inputs tried, read, refused, crashes (and seconds). The contract checked in the child is
the API one of :mod:`tests.fuzz.contract` (``LimbsegError`` with one line naming the file, within the time
and memory limits); crashing inputs are written to ``DIR/<target>-<n>/`` with their file names.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from tests.fuzz.contract import ContractViolation, InputTimeout, api_outcome
from tests.fuzz.seeds import write_tree
from tests.fuzz.targets import TARGETS, call_reader, warm_up

_CODES = {0: "ok", 1: "refused", 3: "crash"}


def _child(target: str, reader: str, root: Path, entry: str) -> int:
    os.close(2)
    os.open(os.devnull, os.O_WRONLY)  # fd 2: C libraries' chatter is not the point here
    try:
        return 0 if api_outcome(lambda: call_reader(reader, root / entry), root / entry, root) == "ok" else 1
    except (ContractViolation, InputTimeout, Exception):  # noqa: BLE001 - any of these is a crash
        return 3


def run_target(name: str, examples: int, out: Path) -> dict[str, int]:
    target = next(t for t in TARGETS if t.name == name)
    warm_up(target)
    counts = {"inputs": 0, "ok": 0, "refused": 0, "crash": 0}

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=target.cases)
    def check(case: tuple[dict[str, bytes], str]) -> None:
        files, entry = case
        with tempfile.TemporaryDirectory(prefix="limbseg-fuzz-") as tmp:
            root = write_tree(Path(tmp), files)
            pid = os.fork()
            if pid == 0:
                os._exit(_child(name, target.reader, root, entry))
            _, status = os.waitpid(pid, 0)
        counts["inputs"] += 1
        outcome = _CODES.get(os.WEXITSTATUS(status), "crash") if os.WIFEXITED(status) else "crash"
        counts[outcome] += 1
        if outcome == "crash":
            write_tree(out / f"{name}-{counts['inputs']}", files)

    check()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="inputs per target")
    parser.add_argument("--targets", default="", help="comma-separated target names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-crashes"), help="where crashing inputs go")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    names = [n for n in args.targets.split(",") if n] or [t.name for t in TARGETS]
    print(f"{'target':20s} {'inputs':>7s} {'read':>7s} {'refused':>7s} {'crash':>6s} {'seconds':>8s}", flush=True)
    for name in names:
        start = time.monotonic()
        c = run_target(name, args.examples, args.out)
        print(f"{name:20s} {c['inputs']:7d} {c['ok']:7d} {c['refused']:7d} {c['crash']:6d} "
              f"{time.monotonic() - start:8.0f}", flush=True)


if __name__ == "__main__":
    main()
