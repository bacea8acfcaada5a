"""What every measurement report needs: percentiles, CPU time, and the machine it ran on.

Used by the benchmarks in ``bench/`` and by the demos' summaries, so that a figure quoted
anywhere in the project is computed and labelled the same way.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def percentile(sorted_values: Sequence[int | float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in percent (50, 99, 99.9), of an ascending sequence."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


def process_cpu_s(pid: int | None, *, descendants: bool = False) -> float | None:
    """User + system CPU seconds (every thread) another process has used so far, from
    Linux's /proc; with ``descendants``, those of the processes it started too (a gateway
    and its receipt writer). None where the process cannot be read."""
    if pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total: float | None = None
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            used = (int(fields[11]) + int(fields[12])) / tick
            tasks = list(Path(f"/proc/{current}/task").iterdir()) if descendants else []
        except (OSError, ValueError, IndexError):
            continue
        total = (total or 0.0) + used
        for task in tasks:
            with contextlib.suppress(OSError, ValueError):
                pending.extend(int(c) for c in (task / "children").read_text().split())
    return total


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "n/a"


def machine_info(packages: Iterable[str] = ("quickfix",)) -> dict[str, object]:
    """CPU count, Python and platform, and the versions of ``packages``, as JSON keys."""
    info: dict[str, object] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
    for package in packages:
        info[package.lower()] = _version(package)
    return info


def machine_line() -> str:
    """The machine in one line, for the foot of a table."""
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"quickfix {_version('quickfix')}"
    )
