"""Gate the project's own serving wrapper instead of the bare artifact.

Overriding ``deployment_factory`` makes every built-in check (and the tests in tests/) call
``ChurnService``, including the checks that build an unloaded service (missing file, predict
before load).
"""

from __future__ import annotations

import pytest
from serving import ChurnService


@pytest.fixture
def deployment_factory() -> type[ChurnService]:
    return ChurnService
