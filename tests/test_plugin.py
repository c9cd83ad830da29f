"""The gate as a pytest plugin: collection, fixtures, overrides, options, reports."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import faulty_models as fm
import pytest
from conftest import TESTS, GateRun, failed, junit_outcomes, messages


def collected_checks(gate: GateRun, *args: str) -> int:
    """How many gate items a run with ``args`` collects, read from ``--collect-only``."""
    result = gate.run(*args, "--collect-only", "-q")
    return sum(1 for line in result.stdout.lines if "::" in line and "[" in line)


WRAPPER_CONFTEST = """
import pytest
from faulty_models import {name}

@pytest.fixture
def deployment_factory():
    return {name}
"""


def test_collect_only_lists_stable_ids_under_the_artifact(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "candidate.joblib")
    result = gate.run("candidate.joblib", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "candidate.joblib::smoke[load]",
            "candidate.joblib::smoke[inference-single]",
            "candidate.joblib::output[no-nan]",
            "candidate.joblib::output[probabilities-sum]",
            "candidate.joblib::errors[nan-input]",
            "candidate.joblib::version[version-id]",
        ],
        consecutive=False,
    )
    assert "regression-range" not in result.stdout.str()


def test_a_regressor_gets_no_classifier_checks(gate: GateRun) -> None:
    gate.artifact(fm.LinearRegressor())
    result = gate.run("model.joblib", "--collect-only", "-q", target="y")
    out = result.stdout.str()
    assert "output[regression-range]" in out
    assert "probabilities" not in out
    assert "known-labels" not in out


def test_items_carry_the_gate_and_category_markers(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.run("model.joblib", "-m", "errors")
    names = set(junit_outcomes(gate.junit()))
    assert names
    assert all(n.startswith("errors[") for n in names)


def test_k_selects_checks_by_name(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    everything = collected_checks(gate, "model.joblib")
    result = gate.run("model.joblib", "-k", "nan")
    assert set(junit_outcomes(gate.junit())) == {"output[no-nan]", "errors[nan-input]"}
    result.assert_outcomes(passed=2, deselected=everything - 2)


def test_last_failed_reruns_only_the_failed_check(gate: GateRun) -> None:
    gate.artifact(fm.UnknownLabel())
    everything = collected_checks(gate, "model.joblib")
    gate.run("model.joblib", "-p", "cacheprovider")
    result = gate.run("model.joblib", "-p", "cacheprovider", "--lf")
    result.assert_outcomes(failed=1, deselected=everything - 1)


def test_several_artifacts_gate_together(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "good.joblib")
    gate.artifact(fm.UnknownLabel(), "bad.pkl")
    result = gate.run("good.joblib", "bad.pkl")
    root = gate.junit()
    assert failed(root, artifact="good.joblib") == set()
    assert failed(root, artifact="bad.pkl") == {"output[known-labels]"}
    result.stdout.fnmatch_lines(
        ["good.joblib  v_*", "bad.pkl  v_*", "DEPLOYMENT BLOCKED (1 failed)"]
    )
    assert result.ret == 1


def test_without_the_flag_nothing_is_collected_and_fixtures_skip(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makepyfile(test_mine="def test_uses_deployment(deployment):\n    assert False\n")
    result = gate.pytester.runpytest("test_mine.py", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*the deploy gate is off: run pytest --deploy-gate ARTIFACT*"])
    assert "deploy gate ==" not in result.stdout.str()
    assert not (gate.path / "deploy-gate.xml").exists()
    result = gate.pytester.runpytest("model.joblib")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # pytest's own "not found": no gate item


def test_a_missing_artifact_path_is_a_usage_error_naming_it(gate: GateRun) -> None:
    result = gate.run("nowhere.joblib")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*file or directory not found: nowhere.joblib*"])


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"", "empty"),
        (b"this is not a pickle at all", "not a model artifact"),
        (None, "truncated"),  # a real artifact cut in half
    ],
    ids=["empty", "not-a-pickle", "truncated"],
)
def test_a_broken_artifact_fails_load_and_skips_the_rest(
    gate: GateRun, content: bytes | None, phrase: str
) -> None:
    path = gate.artifact(fm.ThresholdClassifier())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content is None else content)
    result = gate.run("model.joblib", "-rs")
    outcomes = junit_outcomes(gate.junit())
    assert outcomes.pop("smoke[load]") == "failed"
    assert set(outcomes.values()) == {"skipped"}
    assert phrase in messages(gate.junit())["smoke[load]"]
    result.stdout.fnmatch_lines(
        ["DEPLOYMENT BLOCKED (1 failed)", "*did not load*see smoke[[]load]*"]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_an_object_without_predict_fails_load(gate: GateRun) -> None:
    gate.artifact(fm.NotAModel())
    gate.run("model.joblib")
    assert "has no predict() method" in messages(gate.junit())["smoke[load]"]


def test_version_id_fails_when_the_artifact_changes_during_the_run(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeconftest(
        """
        def pytest_collection_finish(session):
            with open("model.joblib", "ab") as f:
                f.write(b"tampered")
        """
    )
    gate.run("model.joblib")
    root = gate.junit()
    assert failed(root) == {"version[version-id]"}
    assert "changed during the gate run" in messages(root)["version[version-id]"]


def test_junit_report_has_suite_name_one_testcase_per_check_and_figures(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "--collect-only", "-q")
    n_items = sum(1 for line in result.stdout.lines if line.startswith("model.joblib::"))
    gate.run("model.joblib")
    root = gate.junit()
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == "deploy-gate"
    assert len(suite.findall("testcase")) == n_items
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    version = props["model.joblib::version[version-id]::version_id"]
    assert version is not None
    assert version.startswith("v_")
    sha = props["model.joblib::version[version-id]::sha256"]
    assert sha is not None
    assert len(sha) == 64
    assert version.endswith(sha[:8])
    assert float(props["model.joblib::smoke[latency-sanity]::mean_ms"] or "nan") > 0


def _validate(xml: Path) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(TESTS / "data" / "junit-xunit2.xsd"))
    schema.validate(str(xml))


def test_junit_report_validates_against_the_xunit2_schema_with_failures(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "good.joblib")
    gate.artifact(fm.NaNProbabilities(), "bad.joblib")
    Path(gate.path, "broken.joblib").write_bytes(b"junk")
    gate.run("good.joblib", "bad.joblib", "broken.joblib")
    _validate(gate.path / "deploy-gate.xml")


def test_the_schema_check_can_fail_on_testcase_properties(gate: GateRun) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    bad = gate.path / "bad.xml"
    bad.write_text(
        '<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
        '<testcase name="t"><properties><property name="a" value="1"/></properties>'
        "</testcase></testsuite></testsuites>"
    )
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        _validate(bad)


def test_junitxml_option_and_legacy_family_keep_testcase_properties(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeini("[pytest]\njunit_family = legacy\n")
    gate.run("model.joblib", "--junitxml=out/report.xml")
    root = gate.junit("out/report.xml")
    case = next(c for c in root.iter("testcase") if c.get("name") == "version[version-id]")
    names = {p.get("name") for p in case.iter("property")}
    assert {"version_id", "sha256", "size", "loader"} <= names
    assert not (gate.path / "deploy-gate.xml").exists()


def test_a_users_suite_name_is_kept(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeini("[pytest]\njunit_suite_name = models\n")
    gate.run("model.joblib")
    suite = gate.junit().find("testsuite")
    assert suite is not None
    assert suite.get("name") == "models"


def test_conftest_override_of_deployment_factory_reaches_every_check(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeconftest(WRAPPER_CONFTEST.format(name="ServingWrapper"))
    result = gate.run("model.joblib")
    outcomes = junit_outcomes(gate.junit())
    assert outcomes.pop("errors[unseen-category]") == "skipped"  # numbers only
    assert set(outcomes.values()) == {"passed"}, outcomes
    result.stdout.fnmatch_lines(["APPROVED FOR DEPLOYMENT"])


@pytest.mark.parametrize(
    ("wrapper", "check", "phrase"),
    [
        ("DropsUnknownFeatures", "errors[unknown-feature]", "was accepted silently"),
        ("FillsMissingFeatures", "errors[missing-feature]", "was accepted silently"),
        ("QuietOnMissingFile", "errors[missing-artifact]", "raised nothing"),
        ("LoadsOnFirstCall", "errors[not-loaded]", "predicting before load_model() returned"),
    ],
)
def test_wrapper_faults_fail_their_check(
    gate: GateRun, wrapper: str, check: str, phrase: str
) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeconftest(WRAPPER_CONFTEST.format(name=wrapper))
    gate.run("model.joblib")
    root = gate.junit()
    assert failed(root) == {check}
    assert phrase in messages(root)[check]


def test_overriding_only_deployment_skips_the_loading_checks_with_the_reason(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeconftest(
        """
        import pytest
        from faulty_models import ServingWrapper

        @pytest.fixture
        def deployment(model_artifact):
            wrapper = ServingWrapper(model_artifact.path)
            wrapper.load_model()
            return wrapper
        """
    )
    gate.run("model.joblib")
    outcomes = junit_outcomes(gate.junit())
    assert outcomes["errors[missing-artifact]"] == "skipped"
    assert outcomes["errors[not-loaded]"] == "skipped"
    assert "override deployment_factory too" in messages(gate.junit())["errors[not-loaded]"]
    assert outcomes.pop("errors[unseen-category]") == "skipped"  # numbers only
    assert {o for n, o in outcomes.items() if "load" not in n and "missing-artifact" not in n} == {
        "passed"
    }


def test_project_tests_use_the_fixtures_per_artifact_and_count_in_the_verdict(
    gate: GateRun,
) -> None:
    gate.artifact(fm.ThresholdClassifier(), "a.joblib")
    gate.artifact(fm.ThresholdClassifier(), "b.joblib")
    gate.pytester.makepyfile(
        test_deploy="""
        def test_accuracy_floor(deployment, deploy_gate_data, model_artifact):
            preds = deployment.batch_predict(deploy_gate_data.features)
            assert (preds == deploy_gate_data.target.to_numpy()).mean() > 0.99
            assert model_artifact.version_id.startswith("v_")

        def test_fails_for_b(model_artifact):
            assert model_artifact.path.name != "b.joblib"
        """
    )
    result = gate.run("a.joblib", "b.joblib", "test_deploy.py", "-v")
    result.stdout.fnmatch_lines(
        [
            "*test_deploy.py::test_accuracy_floor[[]a.joblib] PASSED*",
            "*test_deploy.py::test_accuracy_floor[[]b.joblib] PASSED*",
            "*test_deploy.py::test_fails_for_b[[]a.joblib] PASSED*",
            "*test_deploy.py::test_fails_for_b[[]b.joblib] FAILED*",
            "project tests",
            "*project*3 passed   1 failed*",
            "DEPLOYMENT BLOCKED (1 failed)",
        ]
    )


def test_a_hook_adds_a_check_to_the_catalogue(gate: GateRun) -> None:
    gate.artifact(fm.LinearRegressor())
    gate.pytester.makeconftest(
        """
        from deploy_gate import Check, CheckFailure

        def no_negative(deployment, deploy_gate_data):
            if (deployment.batch_predict(deploy_gate_data.features) < 0).any():
                raise CheckFailure("negative value predicted")

        def pytest_deploy_gate_checks(profile, settings):
            if profile is not None and profile.task == "regressor":
                return [Check("output", "no-negative", no_negative)]
        """
    )
    result = gate.run("model.joblib", target="y")
    assert failed(gate.junit()) == {"output[no-negative]"}
    result.stdout.fnmatch_lines(
        ["FAILED model.joblib::output[no-negative]: negative value predicted"]
    )


def test_a_contributed_check_is_collected_only_where_its_applies_says_so(gate: GateRun) -> None:
    gate.artifact(fm.LinearRegressor(), "regressor.joblib")
    gate.artifact(fm.ThresholdClassifier(), "classifier.joblib")
    gate.pytester.makeconftest(
        """
        from deploy_gate import Check

        def positive(deployment):
            pass

        def pytest_deploy_gate_checks(profile, settings):
            def regressor(profile, settings):
                return profile is not None and profile.task == "regressor"

            return [Check("output", "regressor-only", positive, applies=regressor)]
        """
    )
    gate.run("regressor.joblib", "classifier.joblib", "-k", "regressor-only", target="label")
    names = {
        (str(case.get("classname")), str(case.get("name")))
        for case in gate.junit().iter("testcase")
    }
    assert ("regressor.joblib", "output[regressor-only]") in names
    assert ("classifier.joblib", "output[regressor-only]") not in names


def test_without_data_a_model_with_feature_names_is_probed_with_synthetic_rows(
    gate: GateRun,
) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "-rs", data=False)
    outcomes = junit_outcomes(gate.junit())
    assert outcomes["smoke[inference-single]"] == "passed"
    assert outcomes["errors[reordered-columns]"] == "passed"
    assert outcomes["output[no-nan]"] == "skipped"
    result.stdout.fnmatch_lines(["*needs realistic rows*pass --deploy-gate-data*"])
    assert result.ret == 0


def test_without_data_a_model_that_names_no_features_skips_with_the_reason(gate: GateRun) -> None:
    from sklearn.dummy import DummyRegressor

    model = DummyRegressor().fit([[0.0]], [1.0])
    del model.n_features_in_
    gate.artifact(model)
    result = gate.run("model.joblib", "-rs", data=False)
    result.stdout.fnmatch_lines(["*does not say which features it takes*--deploy-gate-data*"])


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_data_is_read_from_csv_parquet_and_json_lines(gate: GateRun, suffix: str) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.data(name=f"rows.{suffix}")
    result = gate.run(
        "model.joblib", f"--deploy-gate-data=rows.{suffix}", "--deploy-gate-target=label"
    )
    assert result.ret == 0


def test_unreadable_data_is_a_usage_error_naming_flag_and_file(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    Path(gate.path, "rows.parquet").write_text("not parquet")
    result = gate.run("model.joblib", "--deploy-gate-data=rows.parquet")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --deploy-gate-data: cannot read *rows.parquet as parquet*"]
    )


def test_an_unknown_target_column_is_a_usage_error_listing_the_columns(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", target="churn")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --deploy-gate-target: column 'churn' is not in *(columns: a, b, c, d, label, y)"]
    )


def test_data_missing_a_model_feature_errors_naming_it(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.data(fm.make_frame().drop(columns=["c"]))
    result = gate.run("model.joblib")
    result.stdout.fnmatch_lines(["*lacks feature(s) the model takes: 'c'*"])
    assert result.ret == 1


def test_ini_settings_apply_and_the_command_line_wins(gate: GateRun) -> None:
    gate.artifact(fm.OutOfRangeRegressor())
    gate.data()
    gate.pytester.makeini(
        "[pytest]\ndeploy_gate_data = holdout.csv\ndeploy_gate_target = y\n"
        "deploy_gate_output_range = -1e6,1e6\n"
    )
    trust = "--deploy-gate-trust=faulty_models"
    gate.pytester.runpytest("--deploy-gate", "model.joblib", trust)
    assert failed(gate.junit()) == set()
    gate.pytester.runpytest(
        "--deploy-gate", "model.joblib", trust, "--deploy-gate-output-range=-10,10"
    )
    root = gate.junit()
    assert failed(root) == {"output[regression-range]"}
    assert "from --deploy-gate-output-range" in messages(root)["output[regression-range]"]


def test_ini_paths_are_relative_to_the_ini_file(gate: GateRun) -> None:
    sub = gate.path / "proj"
    sub.mkdir()
    gate.artifact(fm.ThresholdClassifier(), "proj/model.joblib")
    gate.data(name="proj/holdout.csv")
    (sub / "pytest.ini").write_text(
        "[pytest]\ndeploy_gate_data = holdout.csv\ndeploy_gate_target = label\n"
    )
    result = gate.pytester.runpytest(
        "--deploy-gate",
        "proj/model.joblib",
        "-c",
        "proj/pytest.ini",
        "--deploy-gate-trust=faulty_models",
    )
    assert result.ret == 0, result.stdout.str()


def test_a_bad_ini_value_is_rejected_naming_the_key_and_the_file(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeini("[pytest]\ndeploy_gate_smoke_latency_ms = 25x\n")
    result = gate.run("model.joblib")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: Invalid deploy_gate_smoke_latency_ms '25x' from tox.ini: invalid duration '25x'*"]
    )


def test_a_bad_command_line_value_is_rejected_naming_the_flag(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "--deploy-gate-output-range=5,1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*argument --deploy-gate-output-range: invalid value '5,1': expected LOW < HIGH*"]
    )


def test_smoke_latency_budget_comes_from_the_setting(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.run("model.joblib", "-k", "latency-sanity", "--deploy-gate-smoke-latency-ms=1ns")
    assert "exceeds budget 0.0 ms" in messages(gate.junit())["smoke[latency-sanity]"]


def test_github_step_summary_and_error_annotations(
    gate: GateRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = gate.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    gate.artifact(fm.UnknownLabel())
    result = gate.run("model.joblib")
    text = summary.read_text()
    assert "DEPLOYMENT BLOCKED (1 failed)" in text
    assert "| output | 10 | 1 | 0 |" in text
    result.stdout.fnmatch_lines(
        [
            "::error file=model.joblib,title=deploy-gate model.joblib%3A%3Aoutput[[]known-labels]"
            "::label not among classes*"
        ]
    )


def test_failure_messages_carry_no_traceback_into_the_plugin(gate: GateRun) -> None:
    gate.artifact(fm.NaNRegressor())
    result = gate.run("model.joblib", target="y")
    out = result.stdout.str()
    # The failure's own section: from its "___ output[no-nan] ___" header to the next rule.
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"_+ output\[no-nan\] _+", line))
    section = []
    for line in lines[start + 1 :]:
        if line.startswith(("___", "===", "- generated")):
            break
        section.append(line)
    # The check's message alone: no source lines (">"), no "E" lines, no frame of the plugin.
    assert section[0].startswith("NaN output in row 3, row 27,"), section
    details = [line for line in section[1:] if line.strip()]
    assert details[0] == "  row 3: nan", section
    assert all(re.fullmatch(r"  (edge )?row \S+: nan", line) for line in details), section


def test_no_check_passing_is_not_an_approval(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeconftest(
        "import pytest\n\n@pytest.fixture\ndef deployment():\n    pytest.skip('maintenance')\n"
    )
    result = gate.run("model.joblib", "-k", "not load and not version")
    result.stdout.fnmatch_lines(["DEPLOYMENT BLOCKED (no check passed)"])
    assert result.ret == 1


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_same_outcomes_and_summary_with_and_without_xdist(
    gate: GateRun, workers: list[str]
) -> None:
    gate.artifact(fm.ThresholdClassifier(), "good.joblib")
    gate.artifact(fm.UnknownLabel(), "bad.joblib")
    everything = collected_checks(gate, "good.joblib")
    result = gate.run("good.joblib", "bad.joblib", *workers)
    root = gate.junit()
    assert failed(root) == {"output[known-labels]"}
    assert len(junit_outcomes(root, artifact="good.joblib")) == everything
    result.stdout.fnmatch_lines(
        [
            "good.joblib  v_*",
            "  ok   smoke      8 passed   0 failed   0 skipped",
            "bad.joblib  v_*",
            "  FAIL output    10 passed   1 failed   0 skipped",
            "FAILED bad.joblib::output[[]known-labels]: label not among classes [[]0, 1] in*",
            "DEPLOYMENT BLOCKED (1 failed)",
        ]
    )
    assert result.ret == 1


def test_importing_the_plugin_loads_no_heavy_library() -> None:
    code = textwrap.dedent(
        """
        import sys, json
        import pytest
        import deploy_gate.plugin
        heavy = [m for m in ("numpy", "pandas", "sklearn", "scipy", "joblib") if m in sys.modules]
        print(json.dumps(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_a_pytest_run_without_the_flag_loads_no_heavy_library(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_x="""
        import sys
        def test_nothing_heavy():
            assert not {"numpy", "pandas", "sklearn"} & set(sys.modules)
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:hypothesispytest", "-p", "no:benchmark"
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("flag", "name", "expected"),
    [
        ("--deploy-gate-latency-threads=auto", "latency_threads", None),
        ("--deploy-gate-memory-limit=none", "memory_limit", None),
        ("--deploy-gate-latency-threads=3", "latency_threads", 3),
    ],
)
def test_a_flag_whose_value_means_none_overrides_the_ini_file(
    pytester: pytest.Pytester, flag: str, name: str, expected: object
) -> None:
    # "auto" threads and "none" memory limit parse to None; they once fell back to the ini.
    from deploy_gate.options import resolve

    pytester.makeini("[pytest]\ndeploy_gate_latency_threads = 2\ndeploy_gate_memory_limit = 1GiB\n")
    settings = resolve(pytester.parseconfig(flag))
    assert getattr(settings, name) == expected
    assert settings.source(name) == flag.split("=")[0]
    assert resolve(pytester.parseconfig()).latency_threads == 2


def _matches(value: object, hint: object) -> bool:
    """``value`` is of the type ``hint`` (the few forms ``Settings`` declares)."""
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(map(_matches, value, args))
    if origin is list:
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, typing.cast(type, hint))


def test_settings_declare_every_option_with_the_type_its_parser_gives(
    pytester: pytest.Pytester,
) -> None:
    # The declarations are what mypy checks every use against; they must not drift from the
    # option table, nor from what the parsers and defaults really produce.
    import typing

    from deploy_gate.endpoint.settings import EndpointSpec
    from deploy_gate.options import OPTIONS, Settings, resolve

    hints = typing.get_type_hints(Settings, localns={"EndpointSpec": EndpointSpec})
    assert set(hints) - {"_sources"} == {o.name for o in OPTIONS}
    pytester.makeini(
        "[pytest]\n"
        "deploy_gate_latency_budget =\n    p99=50ms\n    p50@8=none\n"
        "deploy_gate_endpoint = svc=http://127.0.0.1:1\n"
        "deploy_gate_endpoint_latency_budget = p99@8=1s\n"
        "deploy_gate_trust = my_project\n"
        "deploy_gate_memory_limit = 2GiB\n"
        "deploy_gate_metrics = accuracy\n"
        "deploy_gate_output_range = 0,1\n"
        "deploy_gate_data = holdout.csv\n"
    )
    for config in (pytester.parseconfig(), pytester.parseconfig("--deploy-gate-memory-limit=none")):
        settings = resolve(config)
        for option in OPTIONS:
            value = getattr(settings, option.name)
            assert _matches(value, hints[option.name]), (option.name, value)
        # Frozen: a check cannot change what the next one sees.
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.data = None  # type: ignore[misc]
