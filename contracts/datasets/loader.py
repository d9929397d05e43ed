"""Finding and loading data contracts from the `contracts/datasets` folder (or any folder)."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from contracts.datasets.model import DatasetContract
from contracts.errors import DatasetContractInvalid

DATASETS_DIR = Path(__file__).resolve().parent
_VERSION_FILE = re.compile(r"^v(\d+)\.ya?ml$")
# A DatasetContractInvalid message quotes problems up to this length (all of them are in
# `.problems`): it becomes a ledger error and a `file.rejected` reason (at most 4096 characters).
MAX_MESSAGE_CHARS = 3000


def version_of_file(file_name: str) -> int | None:
    """The version a contract file's name gives (`v2.yaml` → 2), None for any other file."""
    found = _VERSION_FILE.match(file_name)
    return int(found.group(1)) if found else None


class DatasetCatalog:
    """The data contracts under one folder: `<root>/<dataset>/v<N>.yaml` (+ `lookups/*.csv`)."""

    def __init__(self, root: Path = DATASETS_DIR) -> None:
        self.root = root

    def names(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and any(self._versions(p.name))
        )

    def _versions(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = (_VERSION_FILE.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def load(self, name: str, version: int | None = None) -> DatasetContract:
        """The contract for `name` at `version` (the newest when None).

        Raises KeyError when the dataset or version does not exist; DatasetContractInvalid
        (every problem with its YAML path and a hint, as `contracts.datasets.lint` reports
        them) when the file is not a valid contract of that dataset and version.
        """
        versions = self._versions(name)
        if not versions:
            raise KeyError(f"no data contract for dataset {name!r}")
        chosen = versions[-1] if version is None else version
        if chosen not in versions:
            raise KeyError(f"dataset {name!r} has no contract v{chosen}")
        path = self.root / name / f"v{chosen}.yaml"
        if not path.exists():
            path = self.root / name / f"v{chosen}.yml"
        try:
            stat = path.stat()
            contract = _parse(str(path), stat.st_mtime_ns, stat.st_size)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError) as exc:
            raise _invalid(path, self.shown_as(path), name, chosen, exc) from exc
        if contract.name != name or contract.version != chosen:
            raise _invalid(path, self.shown_as(path), name, chosen, None)
        return contract

    def lookup_path(self, name: str, table: str) -> Path:
        return self.root / name / "lookups" / f"{table}.csv"

    def shown_as(self, path: Path) -> str:
        """How problems name the contract file at `path` (a catalog whose files are copies says
        where they came from)."""
        from contracts.datasets.lint import display_path

        return display_path(path)


def _invalid(
    path: Path, shown_as: str, name: str, version: int, cause: Exception | None
) -> DatasetContractInvalid:
    from contracts.datasets.lint import lint_file

    problems = [str(p) for p in lint_file(path, expected=(name, version), shown_as=shown_as)]
    if not problems:
        problems = [f"{shown_as}: {cause}"]
    # One problem per line, so that `sluice why` and logs show them as a list.
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    message = f"data contract {name}/v{version} does not load ({count}):"
    for index, problem in enumerate(problems):
        tail = f"\n- and {len(problems) - index} more"
        if index and len(message) + len(problem) + 3 + len(tail) > MAX_MESSAGE_CHARS:
            message += tail
            break
        message += f"\n- {problem}"
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return DatasetContractInvalid(
        message,
        dataset=name,
        problems=problems,
    )


@lru_cache(maxsize=256)
def _parse(path: str, mtime_ns: int, size: int) -> DatasetContract:
    """A contract file parsed once per content version (path, mtime, size): YAML parsing cost
    ~8 ms, paid by every stage for every file before. Contracts are frozen, so sharing is safe."""
    return DatasetContract.model_validate(yaml.safe_load(Path(path).read_text("utf-8")))


@cache
def load_contract(name: str, version: int | None = None) -> DatasetContract:
    """The shipped contract for `name` (cached: contracts are immutable per process)."""
    return DatasetCatalog().load(name, version)
