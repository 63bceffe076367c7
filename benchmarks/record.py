"""Write a benchmark's figures, with the exact command that produced them, into docs/benchmarks.md.

Each benchmark owns one section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
re-running it replaces only that section.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from datetime import date
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Figures written by the scripts in `benchmarks/`; each section names the command that produced it.\n"
    "Timings on shared machines are noisy: medians of repeated runs, and ratios measured in the same run.\n"
)


def machine() -> str:
    """A one-line description of this machine (CPU model, cores, Python, torch)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        extra = f", torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        extra = ""
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}{extra}"


def record(name: str, title: str, body_markdown: str, command: str | None = None) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md and print it."""
    command = command or " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Command: `{command}`  \nDate: {date.today().isoformat()}  \nMachine: {machine()}\n\n"
        f"{body_markdown.strip()}\n<!-- /bench:{name} -->\n"
    )
    print(section)
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n?", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
