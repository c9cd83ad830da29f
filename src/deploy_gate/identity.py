"""What an artifact is: its bytes' sha256, its version id, and the libraries around it.

The one home of artifact identity; the ledger records it, the loader reports it, the version
checks compare it. Nothing here imports pandas, numpy or pytest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata

__all__ = [
    "DEFAULT_LIBRARIES",
    "check_sha256",
    "environment_versions",
    "library_versions",
    "sha256_file",
    "version_id",
]

#: Distributions whose versions a ledger line records when they are installed.
DEFAULT_LIBRARIES = (
    "pytest-deploy-gate",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "joblib",
    "skops",
    "onnxruntime",
)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


def check_sha256(value: object, name: str) -> str:
    """``value`` lowercased when it is 64 hex digits; a ``ValueError`` naming ``name`` if not."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise ValueError(f"{name} must be 64 hex digits, got {value!r}")
    return value.lower()


def version_id(sha256: str, when: datetime | None = None) -> str:
    """Return the version id ``v_<UTC %Y%m%dT%H%M%SZ>_<sha256[:8]>`` of an artifact.

    The timestamp makes ids sort by time; the hash prefix ties the id to the bytes.
    ``when`` defaults to now and must be timezone-aware (a naive time has no UTC meaning).
    """
    digest = check_sha256(sha256, "sha256")
    if when is None:
        when = datetime.now(timezone.utc)
    elif when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"when must be a timezone-aware datetime, got naive {when.isoformat()!r}; "
            "use datetime.now(timezone.utc)"
        )
    return f"v_{when.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}_{digest[:8]}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks so large artifacts stay cheap."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions(names: Iterable[str] = DEFAULT_LIBRARIES) -> dict[str, str]:
    """Return ``{distribution: version}`` for those of ``names`` that are installed."""
    found: dict[str, str] = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def environment_versions() -> dict[str, str]:
    """Python's version and those of the libraries a model's behaviour depends on."""
    return {"python": platform.python_version(), **library_versions()}
