"""The two commands of the README, with nothing but Python 3.11 and pip.

    python3 tasks.py demo    set up .venv and run the whole loop on embedded defaults
    python3 tasks.py test    set up .venv, check lint, format and types, run the test suite
                             (slow tests included)

Extra arguments after ``test`` go to pytest (``python3 tasks.py test -m "not slow"``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"
#: Run before the tests: lint, formatting and types of the package (settings in pyproject).
STATIC_CHECKS = (
    ("ruff", "check", "--no-cache", "."),
    ("ruff", "format", "--check", "--no-cache", "."),
    ("mypy",),
)


def ensure_venv() -> None:
    """Create .venv and install the package with its dev extras, again when pyproject changes."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing dropship-pipeline and its dependencies into .venv", flush=True)
    subprocess.run(
        [str(BIN / "python"), "-m", "pip", "install", "--quiet", "-e", ".[dev,bench]"],
        cwd=ROOT,
        check=True,
    )
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    command, rest = argv[0], argv[1:]
    if command == "setup":
        return 0
    if command == "demo":
        return subprocess.run([str(BIN / "dropship-pipeline"), "demo", *rest], cwd=ROOT).returncode
    for check in STATIC_CHECKS:
        print(f"running {' '.join(check)}", flush=True)
        if subprocess.run([str(BIN / check[0]), *check[1:]], cwd=ROOT).returncode != 0:
            print(f"{' '.join(check)} found problems: fix them before the tests.", file=sys.stderr)
            return 1
    result = subprocess.run([str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT)
    if result.returncode == 5:
        print("pytest collected no tests: that is a failure here.", file=sys.stderr)
        return 1
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
