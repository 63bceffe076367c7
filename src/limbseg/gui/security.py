"""Security checks of the GUI: Host/Origin middleware, upload size limit, safe paths and names.

The GUI is a local app: it binds to 127.0.0.1 by default, and these checks stop other web pages
(DNS rebinding, cross-site form posts) from driving it, keep uploads bounded, and keep every
served or written file inside its job folder. Uploaded files are stored under generated names so
that patient names (often in DICOM file names) never reach the disk layout, URLs or logs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException

Scope = dict[str, Any]

#: Methods that change state; they must not carry a foreign Origin.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: Upload extensions kept (lower case); anything else is stored as ``.dcm`` (DICOM files often have none).
UPLOAD_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".zip", ".dcm", ".ply", ".stl",
                   ".obj", ".csv", ".json")


def _host_name(host: str) -> str:
    """Host header value -> lower-case host name without port (IPv6 brackets kept)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _reject(send: Any, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class HostOriginMiddleware:
    """Refuse requests whose Host is not allowed, and unsafe requests from another origin.

    * ``Host`` must name one of ``allowed_hosts`` (any port): stops DNS-rebinding pages.
    * For POST/PUT/PATCH/DELETE an ``Origin`` header, when present, must be this app's own origin
      (``scheme://Host``); ``Origin: null`` is refused. ``Sec-Fetch-Site: cross-site`` is refused too.
    """

    def __init__(self, app: Any, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if "*" not in self.allowed and _host_name(host) not in self.allowed:
            await _reject(send, 403, "host not allowed")
            return
        if scope["method"] in UNSAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and not _same_origin(origin, scope.get("scheme", "http"), host):
                await _reject(send, 403, "cross-origin request refused")
                return
            if headers.get("sec-fetch-site") == "cross-site":
                await _reject(send, 403, "cross-site request refused")
                return
        await self.app(scope, receive, send)


def _same_origin(origin: str, scheme: str, host: str) -> bool:
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme == scheme and parts.netloc.lower() == host.lower()


class _TooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """Answer 413 to a request body larger than ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key.lower() == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _reject(send, 413, self._message())
                return
        received = 0
        state = {"started": False, "too_large": False}

        async def counting_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    state["too_large"] = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Any) -> None:
            # The app may turn the exception into its own error (FastAPI: 400 "error parsing the
            # body"); once the limit was hit, that answer is replaced by a 413.
            if state["too_large"]:
                if message["type"] == "http.response.start" and not state["started"]:
                    state["started"] = True
                    await _reject(send, 413, self._message())
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if not state["started"]:
                await _reject(send, 413, self._message())

    def _message(self) -> str:
        return f"upload larger than the limit of {self.max_bytes / 2**20:g} MB"


def safe_child(base: Path, relative: str) -> Path:
    """``base / relative`` resolved, refused (404) when it leaves ``base`` or does not exist.

    Symbolic links are resolved first, so a link pointing outside ``base`` is refused as well.
    """
    base = Path(base).resolve()
    if "\x00" in relative or relative.startswith(("/", "\\")):
        raise HTTPException(404, "no such file")
    try:
        target = (base / relative).resolve()
        found = target.is_relative_to(base) and target != base and target.is_file()
    except OSError:  # a name the file system refuses (too long, ...): no such file, not a server error
        found = False
    if not found:
        raise HTTPException(404, "no such file")
    return target


_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def check_job_id(job_id: str) -> str:
    """Job ids are 32 lower-case hex digits (128 random bits); anything else is 404."""
    if not _JOB_ID.match(job_id):
        raise HTTPException(404, "no such job")
    return job_id


def upload_suffix(filename: str | None) -> str:
    """The kept extension of an uploaded file name (the name itself is never stored)."""
    name = (filename or "").lower()
    for suffix in UPLOAD_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ".dcm"


_SAFE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def check_name(name: str, what: str = "name") -> str:
    """A structure or case name typed by the user: letters, digits, '_' and '-' only."""
    if not _SAFE_NAME.match(name):
        raise HTTPException(400, f"invalid {what} (use lower-case letters, digits, '_' or '-')")
    return name
