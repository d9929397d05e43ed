"""Where the local runtime's function logs are: one `<function>.log` file per function."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def function_log_files(path: Path) -> list[Path]:
    """The log files under `path`: the file itself, the `*.log` files of a folder, or those of a
    local-runtime state directory's `logs/` folder, sorted (empty when the folder has none).

    Raises FileNotFoundError when `path` does not exist.
    """
    if not path.exists():
        raise FileNotFoundError(f"no such log file or directory: {path}")
    if path.is_file():
        return [path]
    folder = path / "logs" if (path / "logs").is_dir() else path
    return sorted(folder.glob("*.log"))
