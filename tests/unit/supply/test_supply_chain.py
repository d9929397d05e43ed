"""The supply chain: every lock pinned with hashes and installed with --require-hashes, the
layer locks resolved per target with requirements.lock's versions, and the audit's verdicts
(an audit that could not look a package up is UNKNOWN and fails, never a clean result)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tools import audit, layer
from tools.audit import PackageResult, Verdict

REPO = Path(__file__).resolve().parents[3]
LOCKS = [
    REPO / "requirements.lock",
    REPO / "requirements-fuzz.lock",
    *sorted((REPO / "tools" / "locks").glob("*.txt")),
    *sorted((REPO / "tools" / "locks" / "layer").glob("*.txt")),
]
_BLOCK = re.compile(
    r"^([A-Za-z0-9][\w.-]*)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)", re.M
)


def _blocks(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for every pin of a lock."""
    text = path.read_text("utf-8")
    pins = {
        audit.normalise(m.group(1)): (m.group(2), m.group(3).count("--hash="))
        for m in _BLOCK.finditer(text)
    }
    assert len(pins) == len(re.findall(r"^[A-Za-z0-9][\w.-]*==", text, re.M)), path
    return pins


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_pin_of_every_lock_carries_a_hash(lock: Path) -> None:
    pins = _blocks(lock)
    assert pins
    assert {name for name, (_, hashes) in pins.items() if hashes == 0} == set()


def test_every_lock_install_in_the_makefile_requires_hashes() -> None:
    makefile = (REPO / "Makefile").read_text("utf-8")
    installs = [line for line in makefile.splitlines() if re.search(r"pip install .*-r ", line)]
    assert len(installs) >= 5  # uv (twice), requirements.lock (twice), fuzz lock, tool locks
    assert [line.strip() for line in installs if "--require-hashes" not in line] == []
    assert not re.search(r"pip install [^\n]*uv==", makefile)  # uv itself comes from its lock


def test_layer_locks_pin_the_runtime_dependencies_at_requirements_lock_versions() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    runtime = {audit.normalise(re.split(r"[\[<>=!~; ]", d)[0]) for d in project["dependencies"]}
    dev = {name: version for name, (version, _) in _blocks(REPO / "requirements.lock").items()}
    locks = sorted(layer.LOCKS.glob("*.txt"))
    assert layer.lock_for(layer.LAMBDA_PLATFORM, layer.LAMBDA_PYTHON) in locks
    for lock in locks:
        pins = {name: version for name, (version, _) in _blocks(lock).items()}
        assert runtime <= set(pins), lock.name
        assert {n: v for n, v in pins.items() if dev.get(n) != v} == {}, lock.name
        assert not set(pins) & {"numpy", "pandas"}, lock.name


def test_layer_build_for_a_target_without_a_lock_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"no layer lock for riscv64-\S+ .*make locks"):
        layer.lock_for("riscv64-manylinux_2_28", "3.12")


# The shape pip-audit 2.10 writes with `-f json` (skip_reason as seen when pypi.org's per-version
# JSON API is not reachable).
SKIPPED = {
    "name": "pyyaml",
    "skip_reason": "Dependency not found on PyPI and could not be audited: pyyaml (6.0.3)",
}
CLEAN = {"name": "orjson", "version": "3.11.4", "vulns": []}
VULNERABLE = {
    "name": "Requests",
    "version": "2.31.0",
    "vulns": [{"id": "GHSA-9wx4-h78v-vm56", "fix_versions": ["2.32.0"], "aliases": []}],
}
PINS = {"pyyaml": "6.0.3", "orjson": "3.11.4", "requests": "2.31.0"}


def test_audit_every_package_skipped_is_unknown_and_fails() -> None:
    # GIVEN the report pip-audit writes when it could look nothing up ("No known
    # vulnerabilities found", exit status 0)
    report = {"dependencies": [dict(SKIPPED, name=n) for n in PINS], "fixes": []}
    # WHEN it is read / THEN every package is UNKNOWN with pip-audit's reason, and the audit fails
    results = audit.results_from_report(report, PINS)
    assert {r.verdict for r in results} == {Verdict.UNKNOWN}
    assert all("could not be audited" in r.detail for r in results)
    assert audit.exit_status(results) == 2
    assert audit.verdict_line(results, 2).startswith("audit: UNKNOWN: 3 of 3 pinned packages")


def test_audit_reports_each_package_ok_vulnerable_or_unknown() -> None:
    report = {"dependencies": [SKIPPED, CLEAN, VULNERABLE], "fixes": []}
    results = audit.results_from_report(report, PINS)
    assert results == [
        PackageResult("orjson", "3.11.4", Verdict.OK),
        PackageResult("pyyaml", "6.0.3", Verdict.UNKNOWN, SKIPPED["skip_reason"]),
        PackageResult(
            "requests", "2.31.0", Verdict.VULNERABLE, "GHSA-9wx4-h78v-vm56 (fixed in 2.32.0)"
        ),
    ]
    assert audit.exit_status(results) == 1  # vulnerable wins over unknown
    lines = audit.render("requirements.lock", results)
    assert lines[1:4] == [
        "  OK         orjson 3.11.4",
        f"  UNKNOWN    pyyaml 6.0.3  {SKIPPED['skip_reason']}",
        "  VULNERABLE requests 2.31.0  GHSA-9wx4-h78v-vm56 (fixed in 2.32.0)",
    ]


def test_audit_package_missing_from_the_report_or_no_report_is_unknown() -> None:
    partial = audit.results_from_report({"dependencies": [CLEAN]}, PINS)
    assert [(r.name, r.verdict) for r in partial if r.verdict is Verdict.UNKNOWN] == [
        ("pyyaml", Verdict.UNKNOWN),
        ("requests", Verdict.UNKNOWN),
    ]
    assert audit.exit_status(audit.results_from_report("not a report", PINS)) == 2
    assert audit.exit_status([]) == 2  # nothing audited is not a clean audit


def test_audit_only_a_complete_clean_report_passes() -> None:
    results = audit.results_from_report({"dependencies": [CLEAN]}, {"orjson": "3.11.4"})
    assert audit.exit_status(results) == 0
    assert audit.verdict_line(results, 0).startswith("audit: OK: 1 pinned packages audited")


def test_audit_pip_audit_that_cannot_run_makes_every_package_unknown(tmp_path: Path) -> None:
    # GIVEN no pip-audit at the given path (its tool environment was never installed)
    lock = REPO / "tools" / "locks" / "statelint.txt"
    # WHEN the lock is audited / THEN each of its pins is UNKNOWN, naming why
    results = audit.audit_lock(lock, "pypi", tmp_path / "missing" / "pip-audit")
    assert [r.name for r in results] == sorted(_blocks(lock))
    assert {r.verdict for r in results} == {Verdict.UNKNOWN}
    assert all(r.detail.startswith("pip-audit did not run") for r in results)
