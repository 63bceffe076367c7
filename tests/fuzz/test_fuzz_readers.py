"""Fuzzing the API readers: every mutated input is read or refused with one LimbsegError line.

Short seeded pass by default; ``LIMBSEG_FUZZ_EXAMPLES=10000`` for a long run (docs/reliability.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given

from tests.fuzz.contract import api_outcome, fuzz_settings
from tests.fuzz.seeds import write_tree
from tests.fuzz.targets import TARGETS, call_reader, warm_up

#: Corrupt inputs make the parsers warn a lot; the contract is about errors, not warnings.
pytestmark = pytest.mark.filterwarnings("ignore")

#: Targets whose readers are slower per input (torch state dicts, zip extraction) get fewer examples.
_SCALE = {"model-bundle": 0.4, "dataset-json": 0.6}


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_reader_keeps_the_contract(target):
    warm_up(target)
    @fuzz_settings(_SCALE.get(target.name, 1.0))
    @given(case=target.cases)
    def check(case):
        files, entry = case
        with tempfile.TemporaryDirectory(prefix="limbseg-fuzz-") as tmp:
            root = write_tree(Path(tmp), files)
            event(api_outcome(lambda: call_reader(target.reader, root / entry), root / entry, root))

    check()


