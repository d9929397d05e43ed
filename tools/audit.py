"""Audit every pinned dependency against a vulnerability database (`make audit`).

    python -m tools.audit [--service pypi|osv] [LOCK ...]

Each lock (default: `DEFAULT_LOCKS`) is handed to pip-audit (its own tool environment,
`.tools/pip-audit`, from `tools/locks/pip-audit.txt`) as a hashed requirements file, so nothing
is resolved or installed: the exact pins are what is looked up.

Every package gets one line: `OK`, `VULNERABLE` (with the advisory ids and fixed versions) or
`UNKNOWN` (with the reason). UNKNOWN is anything that was not actually looked up: pip-audit
skipped it (its PyPI service answers "not found on PyPI" when the per-version JSON API
`pypi.org/pypi/<name>/<version>/json` is not reachable, which is how a mirror-only network
turns into "No known vulnerabilities found" with every package skipped), pip-audit failed (the
OSV service unreachable), or the report does not mention it. Exit status: 0 when every package
was audited and none is vulnerable, 1 when any is vulnerable, 2 when none is vulnerable but some
could not be audited — an audit that did not happen is never reported as a clean one.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PIP_AUDIT = REPO / ".tools" / "pip-audit" / "bin" / "pip-audit"
# What is installed anywhere: the project environment, the fuzzing environment, the tool
# environments, pip-audit's own, and the Lambda layer as it ships (arm64, Python 3.12).
DEFAULT_LOCKS = (
    "requirements.lock",
    "requirements-fuzz.lock",
    "tools/locks/uv.txt",
    "tools/locks/sam.txt",
    "tools/locks/checkov.txt",
    "tools/locks/statelint.txt",
    "tools/locks/pip-audit.txt",
    "tools/locks/layer/aarch64-manylinux_2_28-py3.12.txt",
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)


class Verdict(StrEnum):
    OK = "OK"
    VULNERABLE = "VULNERABLE"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class PackageResult:
    """What the audit found for one pinned package."""

    name: str
    version: str
    verdict: Verdict
    detail: str = ""


def normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_of(lock_text: str) -> dict[str, str]:
    """`name == version` pins of a requirements lock, by normalised name."""
    return {normalise(m.group(1)): m.group(2) for m in _PIN.finditer(lock_text)}


def results_from_report(report: Any, pins: dict[str, str]) -> list[PackageResult]:
    """One result per pin, from pip-audit's JSON report (`-f json`).

    Args:
        report: the parsed report (`{"dependencies": [...]}`); anything else counts as no report.
        pins: the lock's pins, by normalised name.

    Returns:
        Results in the lock's order of names (sorted); a pin the report does not cover is UNKNOWN.
    """
    found: dict[str, PackageResult] = {}
    entries = report.get("dependencies") if isinstance(report, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        name = normalise(entry["name"])
        version = str(entry.get("version") or pins.get(name, "?"))
        if "skip_reason" in entry or not isinstance(entry.get("vulns"), list):
            reason = str(entry.get("skip_reason") or "no vulnerability data in the report")
            found[name] = PackageResult(name, version, Verdict.UNKNOWN, reason)
        elif entry["vulns"]:
            advisories = []
            for vuln in entry["vulns"]:
                fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
                advisories.append(f"{vuln.get('id', '?')} (fixed in {fixed})")
            found[name] = PackageResult(name, version, Verdict.VULNERABLE, "; ".join(advisories))
        else:
            found[name] = PackageResult(name, version, Verdict.OK)
    results = []
    for name, version in sorted(pins.items()):
        results.append(
            found.get(name)
            or PackageResult(name, version, Verdict.UNKNOWN, "not in the audit report")
        )
    return results


def unknown_all(pins: dict[str, str], reason: str) -> list[PackageResult]:
    """Every pin UNKNOWN for one reason (the audit of the lock did not run through)."""
    return [PackageResult(n, v, Verdict.UNKNOWN, reason) for n, v in sorted(pins.items())]


def exit_status(results: list[PackageResult]) -> int:
    """0 all audited and clean, 1 any vulnerable, 2 otherwise when any could not be audited."""
    verdicts = {r.verdict for r in results}
    if Verdict.VULNERABLE in verdicts:
        return 1
    if Verdict.UNKNOWN in verdicts or not results:
        return 2
    return 0


def audit_lock(lock: Path, service: str, pip_audit: Path) -> list[PackageResult]:
    """Run pip-audit on one lock; every failure mode ends in UNKNOWN results, never in OK."""
    pins = pins_of(lock.read_text("utf-8"))
    with tempfile.TemporaryDirectory(prefix="sluice-audit-") as scratch:
        output = Path(scratch) / "report.json"
        command = [
            str(pip_audit),
            "--requirement",
            str(lock),
            "--disable-pip",
            "--require-hashes",
            "--vulnerability-service",
            service,
            "--format",
            "json",
            "--output",
            str(output),
            "--progress-spinner",
            "off",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as error:
            return unknown_all(pins, f"pip-audit did not run: {error}")
        if not output.is_file():
            lines = (done.stderr or done.stdout).strip().splitlines()
            last = lines[-1] if lines else f"exit status {done.returncode}"
            return unknown_all(pins, f"pip-audit failed ({service} service): {last}")
        try:
            report = json.loads(output.read_text("utf-8"))
        except ValueError as error:
            return unknown_all(pins, f"pip-audit wrote no JSON report: {error}")
    return results_from_report(report, pins)


def render(lock: str, results: list[PackageResult]) -> list[str]:
    """The lines printed for one lock."""
    lines = [f"audit: {lock}"]
    for result in results:
        line = f"  {result.verdict.value:<10} {result.name} {result.version}"
        lines.append(f"{line}  {result.detail}" if result.detail else line)
    counts = {v: sum(1 for r in results if r.verdict is v) for v in Verdict}
    lines.append(
        f"audit: {lock}: {len(results)} packages, {counts[Verdict.VULNERABLE]} vulnerable, "
        f"{counts[Verdict.UNKNOWN]} unknown, {counts[Verdict.OK]} ok"
    )
    return lines


def verdict_line(results: list[PackageResult], status: int) -> str:
    """The last line: what the whole audit amounts to."""
    unknown = sum(1 for r in results if r.verdict is Verdict.UNKNOWN)
    vulnerable = sum(1 for r in results if r.verdict is Verdict.VULNERABLE)
    if status == 1:
        return f"audit: VULNERABLE: {vulnerable} pinned package(s) have known vulnerabilities"
    if status == 2:
        return (
            f"audit: UNKNOWN: {unknown} of {len(results)} pinned packages could not be audited; "
            "this is not a clean result"
        )
    return f"audit: OK: {len(results)} pinned packages audited, no known vulnerabilities"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.audit")
    parser.add_argument("locks", nargs="*", default=list(DEFAULT_LOCKS))
    parser.add_argument("--service", choices=["pypi", "osv"], default="pypi")
    parser.add_argument("--pip-audit", type=Path, default=PIP_AUDIT)
    args = parser.parse_args(argv)
    everything: list[PackageResult] = []
    for lock in args.locks:
        results = audit_lock(REPO / lock, args.service, args.pip_audit)
        print("\n".join(render(lock, results)), flush=True)
        everything.extend(results)
    status = exit_status(everything)
    print(verdict_line(everything, status))
    return status


if __name__ == "__main__":
    sys.exit(main())
