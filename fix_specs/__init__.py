"""FIX data dictionaries, importable so that an installed gateway finds them too."""

from __future__ import annotations

from pathlib import Path

SPEC_DIR = Path(__file__).resolve().parent


def spec_path(name: str) -> Path:
    """Absolute path of a data dictionary shipped here, e.g. ``spec_path("FIX44.xml")``."""
    path = SPEC_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no FIX data dictionary named {name!r} in {SPEC_DIR}")
    return path
