"""``limbseg gui``: start the local web app (segment, prepare, train, models)."""

from __future__ import annotations

import argparse
from pathlib import Path

from limbseg.cli import add_command
from limbseg.errors import LimbsegError


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    parser = add_command(subparsers, "gui", run, help="start the local web app in your browser")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind; anything but 127.0.0.1/localhost exposes the app to your network")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--open", action="store_true", help="open the address in the web browser")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".limbseg" / "gui",
                        help="folder for uploads, jobs and their outputs")
    parser.add_argument("--max-upload-mb", type=float, default=2048, help="largest upload accepted (MiB)")
    parser.add_argument("--models-dir", type=Path, action="append", default=None,
                        help="folder of model bundles (repeatable; default: the shipped model's folder)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from limbseg.gui.app import DEFAULT_ALLOWED_HOSTS, create_app

    if not 0 < args.port < 65536:
        raise LimbsegError(f"port {args.port} is out of range")
    hosts = list(DEFAULT_ALLOWED_HOSTS)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        hosts.append(args.host if ":" not in args.host else f"[{args.host}]")
    app = create_app(args.workdir, max_upload_mb=args.max_upload_mb, allowed_hosts=hosts,
                     models_dirs=args.models_dir)
    shown = args.host if ":" not in args.host else f"[{args.host}]"
    url = f"http://{shown}:{args.port}/"
    print(f"limbseg GUI at {url}  (work folder {args.workdir}; Ctrl+C to stop)", flush=True)
    if args.open:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
