"""A small status page for people who prefer looking to reading: files by status, recent runs
with progress, DLQ depths and throughput over time, served on the loopback address only.

The page is one self-contained HTML document (no external assets: it must work offline) with
the snapshot embedded as JSON and rendered by a few lines of script, which then refreshes it
from `/api/status` every few seconds. `sluice status --serve` runs it; the local runtime can
mount `StatusPageServer` the same way.
"""

from __future__ import annotations

import html
import ipaddress
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson

from sluice.ops.dlq import SERVICES, dlq_name
from sluice_shared.ports import FileStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mypy_boto3_sqs.client import SQSClient

    from sluice.ops.ledger import LedgerReader
    from sluice_shared.ports import FileRecord, RunRecord

THROUGHPUT_BUCKETS = 12
RECENT_FILES = 20


@dataclass(slots=True)
class Snapshot:
    """What the page shows; also the JSON of `/api/status`."""

    stage: str
    generated_at: str
    window_s: int
    counts: dict[str, int] = field(default_factory=dict)
    recent: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    dlq: dict[str, int | None] = field(default_factory=dict)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def throughput(
    records: Iterable[FileRecord], *, since: datetime, until: datetime, buckets: int
) -> list[dict[str, Any]]:
    """Files that reached COMPLETED per equal time bucket of `[since, until]` (oldest first),
    with their input bytes. Raises ValueError for fewer than one bucket or an empty window."""
    if buckets < 1 or until <= since:
        raise ValueError("need at least one bucket and a non-empty window")
    width = (until - since) / buckets
    files = [0] * buckets
    sizes = [0] * buckets
    for record in records:
        if record.status is not FileStatus.COMPLETED:
            continue
        moment = record.updated_at.astimezone(UTC)
        if not since <= moment <= until:
            continue
        index = min(int((moment - since) / width), buckets - 1)
        files[index] += 1
        sizes[index] += record.size_bytes
    return [
        {"start": (since + width * i).isoformat(), "files": files[i], "bytes": sizes[i]}
        for i in range(buckets)
    ]


def run_progress(run: RunRecord, counts: dict[str, Any] | None) -> dict[str, Any]:
    """A run as the page shows it: done/total items of its Map Run when known."""
    total = done = None
    if counts is not None:
        items = counts["items"]
        total = int(items["total"])
        done = int(items["succeeded"]) + int(items["failed"])
    return {
        "run_id": run.run_id,
        "status": run.status,
        "files": run.files,
        "created_at": run.created_at.isoformat(),
        "done": done,
        "total": total,
    }


def collect(
    *,
    stage: str,
    ledger: LedgerReader,
    sqs: SQSClient,
    window: timedelta,
    map_run_counts: Callable[[str], dict[str, Any] | None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Snapshot:
    """Build a snapshot. Failures of one part are recorded in `errors` (the page still shows
    the rest); nothing raises for an AWS error."""
    from botocore.exceptions import BotoCoreError, ClientError

    until = (clock or (lambda: datetime.now(UTC)))()
    since = until - window
    snapshot = Snapshot(
        stage=stage, generated_at=until.isoformat(), window_s=int(window.total_seconds())
    )
    try:
        records = ledger.files(since=since, until=until)
        for status in FileStatus:
            snapshot.counts[status.value] = 0
        for record in records:
            snapshot.counts[record.status.value] += 1
        snapshot.recent = [
            {
                "file_id": r.file_id,
                "status": r.status.value,
                "dataset": r.dataset,
                "key": r.key,
                "updated_at": r.updated_at.isoformat(),
                "error_code": r.error_code,
            }
            for r in records[:RECENT_FILES]
        ]
        snapshot.throughput = throughput(
            records, since=since, until=until, buckets=THROUGHPUT_BUCKETS
        )
        runs = ledger.runs(since=since)
        for run in runs[:10]:
            counts = None
            if map_run_counts is not None and run.map_run_arn:
                counts = map_run_counts(run.map_run_arn)
            snapshot.runs.append(run_progress(run, counts))
    except (BotoCoreError, ClientError) as error:
        snapshot.errors.append(f"ledger: {error}")
    for service in SERVICES:
        name = dlq_name(stage, service)
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            snapshot.dlq[name] = int(attributes.get("ApproximateNumberOfMessages", 0))
        except (BotoCoreError, ClientError):
            snapshot.dlq[name] = None
    return snapshot


_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5rem;color:#1b1f23}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:1.6rem}
table{border-collapse:collapse}
td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}
.tiles{display:flex;gap:.6rem;flex-wrap:wrap}
.tile{border:1px solid #ccc;border-radius:6px;padding:.5rem .8rem}
.tile b{display:block;font-size:1.4rem}
.FAILED b,.QUARANTINED b,.deep{color:#b00020}.COMPLETED b{color:#1a7f37}
progress{width:10rem}.muted{color:#666}
"""

_SCRIPT = """
function el(tag, attrs, text){const e=document.createElement(tag);
  for(const [k,v] of Object.entries(attrs||{})) e.setAttribute(k,v);
  if(text!==undefined&&text!==null) e.textContent=String(text); return e;}
function table(id, headers, rows){const t=document.getElementById(id); t.replaceChildren();
  const h=el('tr'); headers.forEach(x=>h.appendChild(el('th',{},x))); t.appendChild(h);
  rows.forEach(r=>{const tr=el('tr'); r.forEach(c=>{const td=el('td');
    if(c instanceof Node) td.appendChild(c); else td.textContent=c===null?'':String(c);
    tr.appendChild(td)}); t.appendChild(tr)});}
function when(t){return t?String(t).replace('T',' ').slice(0,19):''}
function render(s){
  document.getElementById('generated').textContent=when(s.generated_at)+' UTC';
  const tiles=document.getElementById('counts'); tiles.replaceChildren();
  Object.entries(s.counts).forEach(([k,v])=>{const d=el('div',{class:'tile '+k,'data-status':k});
    d.appendChild(el('b',{},v)); d.appendChild(el('span',{},k)); tiles.appendChild(d)});
  table('recent',['file','status','dataset','key','updated','error'],
    s.recent.map(f=>[f.file_id,f.status,f.dataset,f.key,when(f.updated_at),f.error_code]));
  table('runs',['run','status','files','progress','created'], s.runs.map(r=>{
    let p='—'; if(r.total){p=el('span'); p.appendChild(el('progress',{max:r.total,value:r.done}));
      p.appendChild(el('span',{},' '+r.done+'/'+r.total));}
    return [r.run_id,r.status,r.files,p,when(r.created_at)]}));
  table('dlq',['queue','messages'], Object.entries(s.dlq).map(([q,n])=>{
    const c=el('span',{class:n?'deep':'', 'data-queue':q}, n===null?'missing':n); return [q,c]}));
  const max=Math.max(1,...s.throughput.map(b=>b.files)); const svg=document.getElementById('chart');
  svg.replaceChildren(); const w=600/Math.max(1,s.throughput.length);
  s.throughput.forEach((b,i)=>{const h=Math.round(110*b.files/max);
    const r=document.createElementNS('http://www.w3.org/2000/svg','rect');
    r.setAttribute('x',i*w+2); r.setAttribute('y',120-h); r.setAttribute('width',w-4);
    r.setAttribute('height',h); r.setAttribute('fill','#0969da');
    r.setAttribute('data-files',b.files);
    const t=document.createElementNS('http://www.w3.org/2000/svg','title');
    t.textContent=b.start+': '+b.files+' file(s)'; r.appendChild(t); svg.appendChild(r)});
  document.getElementById('errors').textContent=s.errors.join('; ');
}
render(JSON.parse(document.getElementById('snapshot').textContent));
setInterval(()=>fetch('api/status').then(r=>r.json()).then(render).catch(()=>{}), REFRESH_MS);
"""


def render_page(snapshot: Snapshot, *, refresh_s: float = 5.0) -> str:
    """The page for `snapshot`: HTML, the snapshot as JSON, and the script that renders it."""
    # `</` cannot appear inside the JSON script element, or a key could close it early.
    data = orjson.dumps(asdict(snapshot)).decode().replace("</", "<\\/")
    title = html.escape(f"sluice — {snapshot.stage}")
    minutes = snapshot.window_s // 60
    script = _SCRIPT.replace("REFRESH_MS", str(int(refresh_s * 1000)))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1><p class=muted>last {minutes} min · updated "
        "<span id=generated></span> · <span id=errors></span></p>"
        "<h2>Files by status</h2><div id=counts class=tiles></div>"
        "<h2>Throughput (files completed)</h2>"
        "<svg id=chart width=600 height=120 role=img aria-label=throughput></svg>"
        "<h2>Recent runs</h2><table id=runs></table>"
        "<h2>Dead-letter queues</h2><table id=dlq></table>"
        "<h2>Recent files</h2><table id=recent></table>"
        f'<script id=snapshot type="application/json">{data}</script>'
        f"<script>{script}</script></body></html>"
    )


class StatusPageServer(ThreadingHTTPServer):
    """Serves `/` (the page) and `/api/status` (the snapshot as JSON) on a loopback address.

    `snapshot` is called per request. Raises ValueError for a host that is not loopback: the
    page shows file keys and error texts, which are not for the network.
    """

    daemon_threads = True

    def __init__(self, snapshot: Callable[[], Snapshot], host: str = "127.0.0.1", port: int = 0):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the status page serves loopback addresses only, not {host}")
        self.snapshot = snapshot
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def serve_in_thread(self) -> threading.Thread:
        """Start serving in a daemon thread; stop with `shutdown()` then `server_close()`."""
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: StatusPageServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(
                200, "text/html; charset=utf-8", render_page(self.server.snapshot()).encode()
            )
        elif path == "/api/status":
            self._send(200, "application/json", orjson.dumps(asdict(self.server.snapshot())))
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the page refreshes every few seconds."""
