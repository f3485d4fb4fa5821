"""Where templates and static files live: inside the installed package (wheels carry
them as ``bff/templates`` and ``bff/static``), or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"bff is installed without its {name}/ directory")


def templates_dir() -> Path:
    return _locate("templates")


def static_dir() -> Path:
    return _locate("static")
