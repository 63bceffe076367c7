"""The contract every fuzzed input is held to, and the per-input limits (time, memory).

* API readers either return or raise :class:`LimbsegError` whose message is one line naming the
  file; any other exception is a crash (Hypothesis shrinks and reports it).
* ``limbseg info`` / ``convert`` (run in-process through :func:`limbseg.cli.main`) return 0 or 2;
  with 2, stderr holds exactly one error line naming the file, no traceback, and no output file or
  temporary (``.partial``) is left behind; with 0, the output exists and reads back.
* Each input gets :data:`TIME_LIMIT_S` seconds (SIGALRM raises :class:`InputTimeout`, which no
  reader catches) and :data:`MEMORY_LIMIT_BYTES` of address space above what the process already
  maps (``RLIMIT_AS`` soft limit, restored afterwards). A refusal caused by ``MemoryError`` counts as
  a crash: a tiny input must not make limbseg allocate hundreds of megabytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from limbseg.errors import LimbsegError

#: Wall-clock limit per input (seconds). Inputs are a few kB and take milliseconds; on a machine shared with a
#: training job at nice 0 a fuzz run at nice 19 gets a few % of a core, so ``LIMBSEG_FUZZ_TIME_LIMIT`` can raise it.
TIME_LIMIT_S = float(os.environ.get("LIMBSEG_FUZZ_TIME_LIMIT", "10"))
#: Address space an input may add to the process (bytes).
MEMORY_LIMIT_BYTES = 1 << 30


class InputTimeout(BaseException):  # noqa: N818 - BaseException: no reader's except clause catches it
    """An input ran over :data:`TIME_LIMIT_S`."""


class ContractViolation(AssertionError):
    """An input broke the error-handling contract (not a crash inside a reader)."""


def _vm_size() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * resource.getpagesize()


@contextlib.contextmanager
def input_limits(seconds: float | None = None, memory: int = MEMORY_LIMIT_BYTES) -> Iterator[None]:
    """Run one input under a time limit (main thread only; default :data:`TIME_LIMIT_S`) and an
    address-space limit."""
    seconds = TIME_LIMIT_S if seconds is None else seconds

    def on_alarm(signum: int, frame: Any) -> None:
        raise InputTimeout(f"input took more than {seconds} s")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + memory
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _caused_by_memory(exc: BaseException) -> bool:
    todo, seen = [exc], set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, MemoryError):
            return True
        todo += [e.__cause__, e.__context__]
    return False


def check_refusal(exc: LimbsegError, path: Path, root: Path | None = None) -> None:
    """A refusal keeps the contract: one line, names the input (or a file under ``root``, the folder the
    input was written to: a DICOM file's series is read from its folder), and is not an OOM."""
    text = str(exc)
    if "\n" in text or "\r" in text:
        raise ContractViolation(f"error message is not one line: {text!r}")
    if str(path) not in text and not (root is not None and text.startswith(str(root) + "/")):
        raise ContractViolation(f"error message does not name {path}: {text!r}")
    if _caused_by_memory(exc):
        raise ContractViolation(f"a small input ran out of memory: {text!r}")


def api_outcome(call: Callable[[], Any], path: Path, root: Path | None = None) -> str:
    """Run a reader on ``path``: 'ok' or 'refused'; any other exception propagates (a crash)."""
    with input_limits():
        try:
            call()
        except LimbsegError as exc:
            check_refusal(exc, path, root)
            return "refused"
    return "ok"


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``limbseg ARGV`` in-process: (exit code, stdout, stderr). An escaping exception is a crash."""
    from limbseg.cli import main

    out, err = io.StringIO(), io.StringIO()
    with input_limits(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def check_cli_result(rc: int, err: str, source: Path, output: Path | None = None, root: Path | None = None) -> str:
    """Exit 0 or 2; with 2 one error line naming ``source`` and nothing left where ``output`` goes."""
    if rc not in (0, 2):
        raise ContractViolation(f"exit code {rc}: {err!r}")
    if "Traceback" in err:
        raise ContractViolation(f"traceback on stderr: {err!r}")
    leftovers = [p.name for p in output.parent.iterdir() if p != output] if output and output.parent.exists() else []
    if leftovers:
        raise ContractViolation(f"partial files left next to the output: {leftovers}")
    if rc == 0:
        if output is not None and not output.is_file():
            raise ContractViolation("exit 0 but no output file")
        return "ok"
    errors = [ln for ln in err.splitlines() if ": error: " in ln]
    if len(errors) != 1 or not err.rstrip().endswith(errors[0]):
        raise ContractViolation(f"expected one error line at the end of stderr: {err!r}")
    message = errors[0].split(": error: ", 1)[1]
    if str(source) not in message and not (root is not None and message.startswith(str(root) + "/")):
        raise ContractViolation(f"error line does not name {source}: {errors[0]!r}")
    if output is not None and output.exists():
        raise ContractViolation("exit 2 but the output file exists")
    return "refused"


def fuzz_settings(scale: float = 1.0) -> Any:
    """Hypothesis settings of the harness.

    ``LIMBSEG_FUZZ_EXAMPLES`` sets the inputs per target (default 25: the short CI pass; ``scale``
    adjusts it for slower targets). The pass is derandomized (fixed seed: the same inputs on every
    run, no example database) unless ``LIMBSEG_FUZZ_RANDOM=1``.
    """
    from hypothesis import HealthCheck, settings

    examples = max(1, int(int(os.environ.get("LIMBSEG_FUZZ_EXAMPLES", "25")) * scale))
    return settings(
        max_examples=examples, derandomize=os.environ.get("LIMBSEG_FUZZ_RANDOM") != "1", database=None,
        deadline=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
    )
