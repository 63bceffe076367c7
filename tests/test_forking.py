"""limbseg.forking: results and errors come back from the child; a dead or cancelled child is reported."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from limbseg.errors import LimbsegError
from limbseg.forking import FORK_AVAILABLE, fork_call

pytestmark = pytest.mark.skipif(not FORK_AVAILABLE, reason="fork is used on Linux only")


def test_result_sees_parent_arrays_and_comes_back():
    big = np.arange(1_000_000, dtype=np.int64)  # inherited, not pickled
    total, pid = fork_call(lambda: (int(big.sum()), os.getpid())).result()
    assert total == 499_999_500_000 and pid != os.getpid()


def test_exception_is_reraised_with_its_message():
    def fail():
        raise LimbsegError("no bone found", "scan.nii.gz")

    with pytest.raises(LimbsegError, match="scan.nii.gz: no bone found"):
        fork_call(fail).result()


def test_unpicklable_exception_becomes_runtime_error():
    class Local(Exception):  # a local class cannot be pickled
        pass

    def fail():
        raise Local("boom")

    with pytest.raises(RuntimeError, match="Local: boom"):
        fork_call(fail).result()


def test_child_that_dies_is_reported():
    with pytest.raises(RuntimeError, match="ended without a result .exit code 3"):
        fork_call(lambda: os._exit(3)).result()


def test_cancel_stops_a_running_child():
    call = fork_call(lambda: time.sleep(60))
    t0 = time.perf_counter()
    call.cancel()
    assert time.perf_counter() - t0 < 10
    assert not call._process.is_alive()


def test_large_arrays_come_back_through_shared_memory():
    from limbseg.volume import Volume

    rng = np.random.default_rng(0)
    c_order = rng.integers(0, 4000, size=(64, 80, 90)).astype(np.uint16)
    f_order = np.asfortranarray(rng.random((70, 60, 50)))
    small = np.arange(5)

    def make():
        return {"volume": Volume(c_order, np.eye(4), {"k": 1}), "f": f_order, "small": small, "view": c_order[::2]}

    got = fork_call(make).result()
    np.testing.assert_array_equal(got["volume"].array, c_order)
    assert got["volume"].meta == {"k": 1} and got["volume"].array.flags.writeable
    np.testing.assert_array_equal(got["f"], f_order)
    assert got["f"].flags.f_contiguous and got["f"].dtype == np.float64
    np.testing.assert_array_equal(got["small"], small)
    np.testing.assert_array_equal(got["view"], c_order[::2])
    got["volume"].array[0, 0, 0] = 1  # writable, private to the parent now
