"""Reading a check's figures back from the gate's JUnit file (kept next to conftest's readers;
it belongs in conftest.py, which other engineers were editing when it was written)."""

from __future__ import annotations

import xml.etree.ElementTree as ET


def properties(root: ET.Element, item: str, *, artifact: str = "model.joblib") -> dict[str, str]:
    """The properties one check recorded, by name: on its testcase (legacy JUnit families) or
    moved to the suite as ``<artifact>::<item>::<name>`` (xunit2, the default)."""
    found: dict[str, str] = {}
    prefix = f"{artifact}::{item}::"
    for suite in root.iter("testsuite"):
        for prop in suite.findall("properties/property"):
            name = str(prop.get("name", ""))
            if name.startswith(prefix):
                found[name[len(prefix) :]] = str(prop.get("value", ""))
    for case in root.iter("testcase"):
        if case.get("name") == item and case.get("classname") == artifact:
            for prop in case.iter("property"):
                found[str(prop.get("name", ""))] = str(prop.get("value", ""))
    return found
