"""The support matrix, as nox sessions: what `.ci/run` and the README's "Supported versions" test.

    nox -s latest      # newest releases of everything, on every supported Python found here
    nox -s lowest      # every runtime dependency at its declared lower bound, lowest Python
    nox -s first5      # the "first five minutes" commands on pytest 8.4.* and the newest pytest

Locally, virtualenvs are reused between runs (`nox -R` also skips the installs); under CI (the
`CI` variable set) every session starts from a new one. With pyenv, make the other Pythons
visible first, e.g. `export PYENV_VERSION=$(pyenv version-name):3.10.13:3.12.1:3.13.0`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

PYPROJECT = nox.project.load_toml("pyproject.toml")
PROJECT = PYPROJECT["project"]

# Pythons the sessions run on: from the lowest that requires-python admits up to 3.13.
LOWEST_PYTHON = next(
    s.version for s in SpecifierSet(PROJECT["requires-python"]) if s.operator == ">="
)
NEWEST_MINOR = 13
PYTHONS = [f"3.{minor}" for minor in range(int(LOWEST_PYTHON.split(".")[1]), NEWEST_MINOR + 1)]

nox.options.sessions = ["latest", "lowest", "first5"]
nox.options.reuse_venv = "no" if os.environ.get("CI") else "yes"
# An interpreter that is not installed is an error under CI, never a download.
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))


def lower_bounds() -> list[str]:
    """`name==X` for each `name>=X` that users get: the dependencies and every extra but dev.

    Read from pyproject.toml each time, so the bounds have one home.
    """
    requirements = list(PROJECT["dependencies"])
    for extra, extra_requirements in PROJECT.get("optional-dependencies", {}).items():
        if extra != "dev":
            requirements += extra_requirements
    pins = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.name == PROJECT["name"]:
            continue
        lowest = [s.version for s in requirement.specifier if s.operator in (">=", "~=", "==")]
        if not lowest:
            raise ValueError(f"pyproject.toml: {text!r} declares no lower bound to test")
        pins.append(f"{requirement.name}=={lowest[0]}")
    return pins


@nox.session(python=PYTHONS)
def latest(session: nox.Session) -> None:
    """The README's test command on the newest release of every dependency."""
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[dev]")
    session.run("pytest", "-n", "auto", *session.posargs)


@nox.session(python=LOWEST_PYTHON)
def lowest(session: nox.Session) -> None:
    """The test suite with every runtime dependency (and pytest) at its declared lower bound.

    Development tools (xdist, mypy, the model families) take their newest release that fits.
    """
    pins = lower_bounds()
    # Not session.create_tmp(): it points TMPDIR into the checkout, and pytester's runs there
    # would take this project's pyproject.toml for their rootdir.
    constraints = Path(tempfile.mkdtemp(prefix="deploy-gate-lowest-")) / "lowest.txt"
    constraints.write_text("\n".join(pins) + "\n")
    session.log("lower bounds: " + " ".join(pins))
    session.install("--only-binary", ":all:", "-c", str(constraints), "-e", ".[dev]")
    session.run("pytest", "-n", "auto", *session.posargs)


@nox.session
@nox.parametrize("pytest", [nox.param("==8.4.*", id="pytest8"), nox.param(">=9", id="pytest9")])
def first5(session: nox.Session, pytest: str) -> None:
    """The commands of a user's first five minutes, on each pytest major the plugin supports."""
    session.install("--upgrade", "-e", ".", "pytest-xdist", f"pytest{pytest}")
    session.run("pytest", "tests/test_first_five_minutes.py", *session.posargs)
