"""Run a function in a forked child process and collect its result: parallel work that holds the GIL.

Threads do not help Python-heavy work (pydicom, trimesh, matplotlib) on a couple of cores: they take turns
holding the GIL. A forked child inherits the parent's arrays copy-on-write, so nothing large goes in; the
result comes back pickled through a pipe, except its large NumPy arrays, which the child writes once into an
anonymous shared-memory file (``memfd``) created before the fork and the parent maps without a copy.
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

import numpy as np

T = TypeVar("T")
FORK_AVAILABLE = sys.platform.startswith("linux") and hasattr(os, "memfd_create")
SHARED_MIN_BYTES = 1 << 20  # arrays at least this large travel through shared memory, smaller ones pickled
_ALIGN = 64


class _ArrayPickler(pickle.Pickler):
    """Pickles as usual, but appends large arrays to the shared file and pickles only their place in it."""

    def __init__(self, file: io.BytesIO, fd: int) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.fd = fd

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is not np.ndarray or obj.nbytes < SHARED_MIN_BYTES or obj.dtype.hasobject:
            return None
        offset = -(-os.lseek(self.fd, 0, os.SEEK_END) // _ALIGN) * _ALIGN
        fortran = bool(obj.flags.f_contiguous and not obj.flags.c_contiguous)
        data = np.ascontiguousarray(obj.T if fortran else obj)  # an F-ordered array travels as its C-ordered .T
        view = memoryview(data.reshape(-1).view(np.uint8))
        written = 0
        while written < len(view):
            written += os.pwrite(self.fd, view[written:], offset + written)
        return ("ndarray", offset, data.shape, data.dtype.str, fortran)


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, fd: int) -> None:
        super().__init__(file)
        size = os.fstat(fd).st_size
        self.mapping = mmap.mmap(fd, size) if size else None

    def persistent_load(self, pid: Any) -> Any:
        _, offset, shape, dtype, fortran = pid
        dt = np.dtype(dtype)
        count = int(np.prod(shape))
        array = np.frombuffer(self.mapping, dtype=dt, count=count, offset=offset).reshape(shape)  # type: ignore[arg-type]
        return array.T if fortran else array


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
                writer.send_bytes(self._dumps(outcome))
            except Exception as exc:  # noqa: BLE001 - e.g. an exception that does not pickle
                failure = RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]} ({exc})")
                writer.send_bytes(pickle.dumps((False, failure)))

        self._process = ctx.Process(target=child, name=name, daemon=True)
        self._process.start()
        writer.close()  # the parent keeps only the reading end, so a dead child reads as EOF

    def _dumps(self, obj: Any) -> bytes:
        buffer = io.BytesIO()
        _ArrayPickler(buffer, self._fd).dump(obj)
        return buffer.getvalue()

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
            ok, value = _ArrayUnpickler(io.BytesIO(data), self._fd).load()
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
