"""Data contracts read at runtime from where `sluice contracts publish --datasets` put them.

Publishing writes each contract file and lookup once, content-addressed, under
`<prefix>objects/<sha256>` of the processed bucket, then `<prefix>manifest.json` last:

    {"format": 1, "published_at": "...", "files": {"orders/v1.yaml": "<sha256>", ...}}

A function's `PublishedCatalog` switches to a fresh view of the catalog (a private temporary
folder) whenever the manifest changes (a conditional GET on its ETag, at most once per `ttl_s`,
so a cold and a warm function converge within that), and at once when a dataset or version is
not in the view it has (a new dataset is seen by the first file that needs it). A dataset's
files are fetched when it is first needed, each checked against the manifest's sha256: a file
that differs is left out and any `load` of its dataset raises `DatasetContractInvalid` naming
it, so the file that needed it ends QUARANTINED `contract_invalid`, as for a contract that does
not parse. A missing or unreadable manifest is a `TransientError` (the record is retried): the
packaged copy is never used in its place.

Every read is synchronous (botocore): a coroutine calls `load` through
`sluice_shared.stages.load_contract`, in a worker thread, so that an S3 round trip never stalls
the event loop; the catalog's lock keeps concurrent threads to one refresh or fetch at a time.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from contracts.datasets import DatasetCatalog, DatasetContract
from contracts.errors import DatasetContractInvalid, TransientError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sluice_shared.settings import SluiceSettings

MANIFEST = "manifest.json"
OBJECTS = "objects/"
DEFAULT_PREFIX = "_contracts/"
FORMAT = 1
# How long a function trusts the manifest it read before asking S3 whether it changed.
DEFAULT_TTL_S = 30.0
# A dataset or version missing from the view refreshes at once, but at most this often.
MISS_REFRESH_S = 1.0


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def parse_manifest(body: bytes) -> dict[str, str]:
    """The manifest's `files` (relative path → sha256); ValueError naming what is wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"manifest is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"manifest format is not {FORMAT}")
    files = data.get("files")
    if not isinstance(files, dict):
        raise ValueError("manifest has no `files` object")
    out: dict[str, str] = {}
    for rel, digest in files.items():
        parts = PurePosixPath(rel).parts
        if (
            not isinstance(digest, str)
            or len(digest) != 64
            or len(parts) < 2
            or any(p in ("", ".", "..") for p in parts)
            or rel.startswith("/")
        ):
            raise ValueError(f"manifest entry {rel!r}: {digest!r} is not a path and a sha256")
        out[rel] = digest
    return out


class PublishedCatalog(DatasetCatalog):
    """A `DatasetCatalog` over the contracts published in `bucket` under `prefix`."""

    def __init__(
        self,
        bucket: str,
        prefix: str = DEFAULT_PREFIX,
        *,
        client: Any = None,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._work = Path(tempfile.mkdtemp(prefix="sluice-contracts-"))
        super().__init__(self._work / "empty")
        self.root.mkdir()
        self.bucket = bucket
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._etag: str | None = None
        self._checked: float | None = None
        self._files: dict[str, str] = {}  # the manifest: path → sha256
        self._fetched: set[str] = set()  # datasets whose files are in the current view
        self._bad: dict[str, str] = {}  # dataset → why one of its files was refused
        self._bodies: dict[str, bytes] = {}  # sha256 → checked bytes, kept across manifests

    def names(self) -> list[str]:
        from contracts.datasets.loader import version_of_file

        self._refresh(force=False)
        return sorted(
            {
                PurePosixPath(rel).parts[0]
                for rel in self._files
                if len(PurePosixPath(rel).parts) == 2
                and version_of_file(PurePosixPath(rel).name) is not None
            }
        )

    def load(self, name: str, version: int | None = None) -> DatasetContract:
        self._refresh(force=False)
        try:
            return self._load_checked(name, version)
        except KeyError:
            self._refresh(force=True)
            return self._load_checked(name, version)

    def lookup_path(self, name: str, table: str) -> Path:
        self._fetch(name)
        return super().lookup_path(name, table)

    def _load_checked(self, name: str, version: int | None) -> DatasetContract:
        self._fetch(name)
        why = self._bad.get(name)
        if why is not None:
            message = f"data contract {name} does not load (1 problem):\n- {why}"
            raise DatasetContractInvalid(message, dataset=name, problems=[why])
        return super().load(name, version)

    def shown_as(self, path: Path) -> str:
        """A contract file of the view, named as published: its path in the catalog and the
        object it was fetched from (never the view's temporary folder)."""
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            return super().shown_as(path)
        digest = self._files.get(rel)
        if digest is None:
            return rel
        return f"{rel} (s3://{self.bucket}/{self.prefix}{OBJECTS}{digest})"

    def _s3(self) -> Any:
        if self._client is None:
            import botocore.session

            from sluice_shared.aws.clients import client_config, share_service_models

            session = share_service_models(botocore.session.get_session())
            self._client = session.create_client("s3", config=client_config())
        return self._client

    def _refresh(self, *, force: bool) -> None:
        with self._lock:
            now = self._clock()
            if self._checked is not None:
                age = now - self._checked
                if age < (MISS_REFRESH_S if force else self.ttl_s):
                    return
            key = self.prefix + MANIFEST
            where = f"s3://{self.bucket}/{key}"
            request: dict[str, str] = {"Bucket": self.bucket, "Key": key}
            if self._etag is not None:
                request["IfNoneMatch"] = self._etag
            try:
                answer = self._s3().get_object(**request)
                body: bytes = answer["Body"].read()
            except ClientError as exc:
                error = exc.response.get("Error", {})
                if str(error.get("Code")) in ("304", "NotModified"):
                    self._checked = now
                    return
                raise TransientError(
                    f"published data contracts unreadable: {where}: {error.get('Code')}"
                    f" {error.get('Message', '')} (publish them with"
                    " `sluice contracts publish --datasets`)"
                ) from exc
            except BotoCoreError as exc:
                raise TransientError(
                    f"published data contracts unreadable: {where}: {exc}"
                ) from exc
            try:
                files = parse_manifest(body)
            except ValueError as exc:
                raise TransientError(f"published data contracts: {where}: {exc}") from exc
            self._install(files)
            self._etag = answer.get("ETag")
            self._checked = now

    def _install(self, files: Mapping[str, str]) -> None:
        """Switch to a fresh, empty view of a new manifest; each dataset's files are fetched
        into it when the dataset is first needed (`_fetch`), so a cold start reads only the
        datasets its files belong to."""
        view = Path(tempfile.mkdtemp(dir=self._work, prefix="view-"))
        self.root, self._files, self._fetched, self._bad = view, dict(files), set(), {}

    def _fetch(self, name: str) -> None:
        """Put dataset `name`'s files of the manifest in the view, each checked against its
        sha256; a file that differs is left out and recorded as why `name` does not load."""
        with self._lock:
            if name in self._fetched:
                return
            for rel, digest in sorted(self._files.items()):
                parts = PurePosixPath(rel).parts
                if parts[0] != name:
                    continue
                cached = self._bodies.get(digest)
                if cached is not None:
                    body = cached
                else:
                    key = f"{self.prefix}{OBJECTS}{digest}"
                    try:
                        body = self._s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    except (ClientError, BotoCoreError) as exc:
                        raise TransientError(
                            f"published data contract {rel} unreadable: {exc}"
                        ) from exc
                    got = sha256_hex(body)
                    if got != digest:
                        self._bad.setdefault(
                            name,
                            f"{rel}: sha256 {got} differs from the manifest's {digest}"
                            f" (s3://{self.bucket}/{key}); publish the contracts again",
                        )
                        continue
                    self._bodies[digest] = body
                target = self.root.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
            self._fetched.add(name)


def contract_source(settings: SluiceSettings) -> DatasetCatalog:
    """The published catalog when `settings.contracts_prefix` is set, else the packaged one."""
    if settings.contracts_prefix is None:
        return DatasetCatalog()
    return PublishedCatalog(settings.processed_bucket, settings.contracts_prefix)


def contract_files(root: Path) -> dict[str, bytes]:
    """What `publish` uploads from a contracts folder: each dataset's `v<N>.yaml` files and its
    `lookups/*.csv`, by path relative to `root` (POSIX)."""
    from contracts.datasets.loader import version_of_file

    files: dict[str, bytes] = {}
    for name in DatasetCatalog(root).names():
        for path in sorted((root / name).rglob("*")):
            rel = path.relative_to(root)
            is_version = len(rel.parts) == 2 and version_of_file(path.name) is not None
            is_lookup = len(rel.parts) == 3 and rel.parts[1] == "lookups" and path.suffix == ".csv"
            if path.is_file() and (is_version or is_lookup):
                files[rel.as_posix()] = path.read_bytes()
    return files


def publish_plan(
    root: Path, prefix: str = DEFAULT_PREFIX
) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    """What publishing `root` writes, in order: each file once under `objects/<sha256>`, then
    the manifest last, so a function reading the previous manifest still finds all its files.
    Returns the manifest's `files` (path → sha256) and the (key, body) puts."""
    files = contract_files(root)
    if not files:
        raise ValueError(f"{root} holds no data contracts (<dataset>/v<N>.yaml)")
    manifest = {rel: sha256_hex(body) for rel, body in files.items()}
    puts = [(f"{prefix}{OBJECTS}{manifest[rel]}", body) for rel, body in files.items()]
    # The time makes every publish a new manifest (a new ETag): publishing the same files again
    # is how a function drops a file it refused and fetches it anew.
    published_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    document = {"format": FORMAT, "published_at": published_at, "files": manifest}
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    puts.append((prefix + MANIFEST, orjson.dumps(document, option=options)))
    return manifest, puts


def publish(client: Any, bucket: str, root: Path, prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """Upload the contracts under `root` to `bucket` with a boto3 S3 client (`publish_plan`);
    returns the published `files`. The caller checks the contracts first."""
    manifest, puts = publish_plan(root, prefix)
    for key, body in puts:
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return manifest


def breaking_versus_published(
    client: Any, bucket: str, root: Path, prefix: str = DEFAULT_PREFIX
) -> list[str]:
    """Every breaking change (`contracts.datasets.compat`) of a contract version under `root`
    versus the same version as published now: a published version is live, so a change that
    breaks it must be a new `v<N+1>.yaml`. Nothing to compare on a first publish. Raises
    botocore's ClientError when the manifest or a file cannot be read."""
    import yaml
    from pydantic import ValidationError

    from contracts.datasets.compat import check_dataset_compatibility
    from contracts.datasets.lint import yaml_path
    from contracts.datasets.loader import version_of_file

    try:
        answer = client.get_object(Bucket=bucket, Key=prefix + MANIFEST)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return []
        raise
    published = parse_manifest(answer["Body"].read())
    problems: list[str] = []
    for rel, body in contract_files(root).items():
        old_digest = published.get(rel)
        version = version_of_file(PurePosixPath(rel).name)
        if version is None or old_digest is None or old_digest == sha256_hex(body):
            continue
        key = f"{prefix}{OBJECTS}{old_digest}"
        old_body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            old = DatasetContract.model_validate(yaml.safe_load(old_body.decode("utf-8")))
            new = DatasetContract.model_validate(yaml.safe_load(body.decode("utf-8")))
        except (UnicodeDecodeError, yaml.YAMLError, ValidationError):
            continue  # the lint reports a contract that does not load
        for change in check_dataset_compatibility(old, new):
            problems.append(
                f"{rel}: {yaml_path(change.loc)}: {change.message} (versus the published"
                f" v{version}) — hint: breaking within a live version: put the change in"
                f" v{version + 1}.yaml and keep v{version}.yaml as published"
            )
    return problems
