"""Fuzzing ``limbseg info`` and ``limbseg convert``: exit 0 or 2, one error line, nothing partial.

In-process through :func:`limbseg.cli.main` (fast); a few real subprocess runs check the same on the
installed console entry point (exit status, stderr, no traceback).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from limbseg.io import read_image
from tests.fuzz import regressions
from tests.fuzz.contract import check_cli_result, fuzz_settings, run_cli
from tests.fuzz.seeds import write_tree
from tests.fuzz.targets import CLI_TARGETS, warm_up

#: Corrupt inputs make the parsers warn a lot; the contract is about errors, not warnings.
pytestmark = pytest.mark.filterwarnings("ignore")

OUTPUTS = ["out.nii.gz", "out.nrrd", "out.mha", "out.nii"]


@pytest.mark.parametrize("target", CLI_TARGETS, ids=[t.name for t in CLI_TARGETS])
def test_info_and_convert_keep_the_contract(target):
    warm_up(target)

    @fuzz_settings(0.6)
    @given(case=target.cases, output=st.sampled_from(OUTPUTS))
    def check(case, output):
        files, entry = case
        with tempfile.TemporaryDirectory(prefix="limbseg-fuzz-") as tmp:
            root = write_tree(Path(tmp) / "in", files)
            source = root / entry
            rc, _, err = run_cli(["info", str(source)])
            info = check_cli_result(rc, err, source, root=root)
            out = Path(tmp) / "out" / output
            rc, _, err = run_cli(["convert", str(source), "-o", str(out)])
            convert = check_cli_result(rc, err, source, out, root=root)
            if convert == "ok":
                read_image(out)  # what convert wrote reads back
            event(f"info {info}, convert {convert}")

    check()


@pytest.mark.parametrize("name", sorted(regressions.CLI_CASES))
def test_console_script_on_hostile_inputs(tmp_path, name):
    """The real process: exit status 2, one line on stderr naming the input, no traceback, no output."""
    files, entry = regressions.CLI_CASES[name]()
    root = write_tree(tmp_path / "in", files)
    out = tmp_path / "out" / "scan.nii.gz"
    for argv in (["info", str(root / entry)], ["convert", str(root / entry), "-o", str(out)]):
        proc = subprocess.run([sys.executable, "-m", "limbseg", *argv], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        check_cli_result(proc.returncode, proc.stderr, root / entry, out if argv[0] == "convert" else None,
                         root=root)


_SUBPROCESS_EXAMPLES = int(os.environ.get("LIMBSEG_FUZZ_SUBPROCESS_EXAMPLES", "0"))


@pytest.mark.skipif(not _SUBPROCESS_EXAMPLES, reason="set LIMBSEG_FUZZ_SUBPROCESS_EXAMPLES=N (about 1 s an input)")
@pytest.mark.parametrize("target", CLI_TARGETS, ids=[t.name for t in CLI_TARGETS])
def test_console_script_fuzz(target):
    """Mutated inputs through the real process: what C libraries and loggers print to stderr counts too."""

    @settings(fuzz_settings(), max_examples=_SUBPROCESS_EXAMPLES)
    @given(case=target.cases)
    def check(case):
        files, entry = case
        with tempfile.TemporaryDirectory(prefix="limbseg-fuzz-") as tmp:
            root = write_tree(Path(tmp) / "in", files)
            out = Path(tmp) / "out" / "scan.nii.gz"
            for argv in (["info", str(root / entry)], ["convert", str(root / entry), "-o", str(out)]):
                proc = subprocess.run([sys.executable, "-m", "limbseg", *argv], capture_output=True, text=True,
                                      timeout=300)
                if proc.returncode == 2:
                    assert proc.stderr.count("\n") == 1, proc.stderr
                check_cli_result(proc.returncode, proc.stderr, root / entry, out if argv[0] == "convert" else None,
                                 root=root)

    check()
