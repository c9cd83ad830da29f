"""A pytest run without ``--deploy-gate`` loads only what option registration needs.

Judged by the modules a run imports (never by its wall time): every pytest run imports the plugin
through its entry point, so what it imports there is paid by every project that installs it.
"""

from __future__ import annotations

import importlib
import json

import pytest

from deploy_gate import options, parsers

#: What registering the options, markers, hookspecs and fixtures needs, and all it may import.
STARTUP_MODULES = {
    "deploy_gate",
    "deploy_gate.categories",
    "deploy_gate.hookspecs",
    "deploy_gate.options",
    "deploy_gate.plugin",
}

#: Libraries and gate modules a run without the gate must not import.
HEAVY = (
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "pyarrow",
    "joblib",
    "cloudpickle",
    "threadpoolctl",
    "onnxruntime",
    "deploy_gate.report",
    "deploy_gate.reporter",
    "deploy_gate.html",
    "deploy_gate.session",
    "deploy_gate.gate",
    "deploy_gate.collect",
    "deploy_gate.parsers",
)

_RECORD_MODULES = """
import json, sys

def test_record_the_modules():
    with open("modules.json", "w") as f:
        json.dump(sorted(sys.modules), f)
"""


def _modules(pytester: pytest.Pytester, *args: str) -> set[str]:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    return set(json.loads((pytester.path / "modules.json").read_text()))


def test_a_run_without_the_gate_imports_only_what_option_registration_needs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_modules=_RECORD_MODULES)
    with_plugin = _modules(pytester)
    without_plugin = _modules(pytester, "-p", "no:deploy_gate")
    added = with_plugin - without_plugin
    # Whatever other installed plugins import is theirs; what the gate's plugin adds is ours.
    assert added == STARTUP_MODULES
    assert not set(HEAVY) & added


def test_a_run_with_the_gate_off_still_skips_the_fixtures_with_how_to_enable_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_uses_fixture="""
        import json, sys

        def test_deployment(deployment):
            pass

        def test_record_the_modules():
            with open("modules.json", "w") as f:
                json.dump(sorted(sys.modules), f)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*the deploy gate is off: run pytest --deploy-gate ARTIFACT*"])
    loaded = set(json.loads((pytester.path / "modules.json").read_text()))
    assert not set(HEAVY) & loaded


def test_every_option_names_a_parser_that_exists() -> None:
    for option in options.OPTIONS:
        module = importlib.import_module(option.parse.__module__)
        assert callable(getattr(module, option.parse.__name__)), option.name


def test_option_values_are_parsed_by_the_parsers_module_on_first_use() -> None:
    by_name = {option.name: option for option in options.OPTIONS}
    assert by_name["check_timeout"].parse("500ms") == 0.5
    assert by_name["isolation"].parse("None") == "none"
    assert by_name["latency_budget"].parse("p95@32=200ms") == ("p95", 32, 200.0)
    # The parsers stay importable from options, where they always were.
    assert options.parse_duration_ms is parsers.parse_duration_ms


#: The library a serving process uses without pytest, and what a gate run builds on.
LIBRARY_MODULES = (
    "adapters", "artifact", "capabilities", "cluster", "compare", "data", "deployment", "drift",
    "files", "html", "identity", "latency", "ledger", "mltestscore", "monitor", "profiles",
    "record", "report", "rollout", "safeload", "sketch", "sources", "stats", "validation",
)  # fmt: skip
#: The pytest layer: the library never imports these.
PLUGIN_LAYER = (
    "pytest", "_pytest", "deploy_gate.options", "deploy_gate.plugin", "deploy_gate.session",
    "deploy_gate.gate", "deploy_gate.collect", "deploy_gate.reporter", "deploy_gate.checks",
)  # fmt: skip


def test_the_library_never_imports_pytest_or_the_plugin_layer() -> None:
    import subprocess
    import sys

    code = (
        "import importlib, json, sys\n"
        f"for name in {list(LIBRARY_MODULES)!r}:\n"
        "    importlib.import_module('deploy_gate.' + name)\n"
        f"print(json.dumps(sorted(m for m in {list(PLUGIN_LAYER)!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert json.loads(done.stdout) == []
