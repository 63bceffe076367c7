"""Run a function in a forked child process and collect its result: parallel work that holds the GIL.

Threads do not help Python-heavy work (pydicom, trimesh, matplotlib) on a couple of cores: they take turns
holding the GIL. A forked child inherits the parent's arrays copy-on-write, so nothing large goes in; the
result comes back pickled through a pipe, except its large NumPy arrays: pickle protocol 5 hands their buffers
out of band, the child writes them once into an anonymous shared-memory file (``memfd``) created before the
fork, and the parent maps that file and passes the slices to the unpickler (no copy).
Fork is used only where it is the platform's native choice (Linux); callers keep a fallback for the rest
(:data:`FORK_AVAILABLE`).

The child must not use torch (its OpenMP pool does not survive a fork); the parent may hold a CUDA context.
"""

from __future__ import annotations

import io
import mmap
import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
FORK_AVAILABLE = sys.platform.startswith("linux") and hasattr(os, "memfd_create")
SHARED_MIN_BYTES = 1 << 20  # buffers at least this large travel through shared memory, smaller ones in the pickle
_ALIGN = 64


def _dump(obj: Any, fd: int) -> bytes:
    """Pickle ``obj`` (protocol 5); large contiguous buffers (NumPy arrays) go out of band into the file ``fd``.

    Returns the pickle, prefixed by the pickled list of (offset, size) of each out-of-band buffer in ``fd``."""
    buffers: list[pickle.PickleBuffer] = []

    def in_band(buffer: pickle.PickleBuffer) -> bool:
        if buffer.raw().nbytes < SHARED_MIN_BYTES:
            return True
        buffers.append(buffer)
        return False

    data = pickle.dumps(obj, protocol=5, buffer_callback=in_band)
    places, offset = [], 0
    for buffer in buffers:
        view = buffer.raw()
        written = 0
        while written < view.nbytes:
            written += os.pwrite(fd, view[written:], offset + written)
        places.append((offset, view.nbytes))
        offset = -(-(offset + view.nbytes) // _ALIGN) * _ALIGN
    return pickle.dumps(places) + data


def _load(data: bytes, fd: int) -> Any:
    """Inverse of :func:`_dump`: the out-of-band buffers are slices of one shared mapping of ``fd`` (no copy)."""
    stream = io.BytesIO(data)
    places = pickle.load(stream)
    mapping = memoryview(mmap.mmap(fd, os.fstat(fd).st_size)) if places else memoryview(b"")
    return pickle.loads(stream.read(), buffers=[mapping[offset:offset + size] for offset, size in places])


class ForkedCall(Generic[T]):
    """``fn()`` running in a forked child; :meth:`result` waits and returns it or re-raises its exception."""

    def __init__(self, fn: Callable[[], T], name: str = "limbseg-child") -> None:
        ctx = multiprocessing.get_context("fork")
        self._fd = os.memfd_create("limbseg-result", os.MFD_CLOEXEC)
        self._reader, writer = ctx.Pipe(duplex=False)

        def child() -> None:
            try:
                outcome: tuple[bool, Any] = (True, fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the parent, which re-raises it
                outcome = (False, exc)
            try:
                writer.send_bytes(_dump(outcome, self._fd))
            except Exception as exc:  # noqa: BLE001 - e.g. an exception that does not pickle
                failure = RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]} ({exc})")
                writer.send_bytes(_dump((False, failure), self._fd))

        self._process = ctx.Process(target=child, name=name, daemon=True)
        self._process.start()
        writer.close()  # the parent keeps only the reading end, so a dead child reads as EOF

    def result(self) -> T:
        try:
            data = self._reader.recv_bytes()
        except EOFError:
            self._process.join()
            raise RuntimeError(f"{self._process.name} ended without a result (exit code {self._process.exitcode})") from None
        finally:
            self._reader.close()
        self._process.join()
        try:
            ok, value = _load(data, self._fd)
        finally:
            os.close(self._fd)  # the arrays' mapping keeps the memory alive; it is freed with them
            self._fd = -1
        if ok:
            return value
        raise value

    def cancel(self) -> None:
        """Stop the child if it still runs (after an error elsewhere); harmless once :meth:`result` returned."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._reader.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def fork_call(fn: Callable[[], T], name: str = "limbseg-child") -> ForkedCall[T]:
    """Start ``fn()`` in a forked child process (Linux only; see :data:`FORK_AVAILABLE`)."""
    if not FORK_AVAILABLE:
        raise RuntimeError("fork_call needs Linux (fork and memfd)")
    return ForkedCall(fn, name)
