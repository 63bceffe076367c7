"""The ``limbseg`` command line: a thin shell over the Python API.

Each subcommand lives in :mod:`limbseg.commands.<name>` and defines ``register(subparsers)``.
Heavy libraries (torch, SimpleITK ...) are imported inside the command bodies so that
``limbseg --help`` stays instant. User errors (:class:`~limbseg.errors.LimbsegError`) are
printed on one line with exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence

from limbseg import __version__
from limbseg.errors import LimbsegError

#: Order of the subcommands in ``--help``.
COMMAND_ORDER = ["info", "convert", "labels", "prepare", "synth", "train", "evaluate", "segment", "measure",
                 "cohort", "demo", "gui"]

_common = argparse.ArgumentParser(add_help=False)
_common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def add_command(
    subparsers: argparse._SubParsersAction,  # noqa: SLF001
    name: str,
    func: Callable[[argparse.Namespace], int | None],
    help: str,  # noqa: A002
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Create a subcommand parser that runs ``func(args)``; also accepts ``--debug``."""
    parser = subparsers.add_parser(
        name, help=help, description=description or help, parents=[_common],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="limbseg",
        description="Segment children's lower-limb bones (tibia, femur, fibula, pelvis) in MRI.",
    )
    parser.add_argument("--version", action="version", version=f"limbseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import limbseg.commands as commands

    present = {m.name for m in pkgutil.iter_modules(commands.__path__)}
    for name in COMMAND_ORDER + sorted(present - set(COMMAND_ORDER)):
        if name in present:
            importlib.import_module(f"limbseg.commands.{name}").register(subparsers)
    return parser


#: Loggers of file parsers that narrate every oddity of a file at WARNING (pydicom also resets its level when
#: imported, and nibabel has its own stderr handler): only CRITICAL records pass unless ``--debug``.
_CHATTY_PARSERS = ("pydicom", "nibabel.global")


def _critical_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.CRITICAL


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    if not args.debug:  # highdicom narrates every attribute it copies at INFO
        logging.getLogger("highdicom").setLevel(logging.WARNING)
        for name in _CHATTY_PARSERS:  # they log each oddity of a corrupt file; our one error line says what matters
            logging.getLogger(name).addFilter(_critical_only)
    try:
        with warnings.catch_warnings():
            if not args.debug:  # parsers warn about every oddity of a corrupt file; errors are one line
                warnings.simplefilter("ignore")
            return int(args.func(args) or 0)
    except LimbsegError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"limbseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `limbseg info ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
