"""Templates and static files must work from an installed, non-editable package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_templates_and_static_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("bff-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"bff/templates/base.html", "bff/templates/error.html", "bff/static/bff.css"} <= names
    assert "bff/store/migrations/versions/0001_initial_schema.py" in names

    # Unpacked on its own (as a regular install would), the package finds its own copies.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    located = subprocess.run(
        [sys.executable, "-c",
         "import bff.resources as r; print(r.templates_dir()); print(r.static_dir())"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    ).stdout.split()  # fmt: skip
    assert located == [str(site / "bff" / "templates"), str(site / "bff" / "static")]
