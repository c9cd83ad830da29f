"""Writing the gate's files: every report, profile and export is replaced atomically.

A reader (a CI step uploading the report, a gate reading the profile a serving process dumps)
sees the old file or the new one, never half of one; a killed writer leaves the old file and no
stray temporary. The standard library has the pieces (``tempfile.mkstemp`` in the same folder,
``os.replace``) but no function that combines them, so this is the one place that does.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(
    path: str | os.PathLike[str],
    content: str | bytes | Callable[[IO[Any]], object],
    *,
    mode: int = 0o644,
) -> Path:
    """Replace ``path`` with ``content`` in one step; missing parent folders are created.

    ``content`` is text (written as UTF-8 with ``\\n`` line ends), bytes, or a function that
    writes into the binary file object it is given (``ElementTree.write``, for example).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(content, str):
                f.write(content.encode("utf-8"))
            elif isinstance(content, bytes):
                f.write(content)
            else:
                content(f)
        os.chmod(tmp, mode)  # mkstemp creates 0600; reports are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
