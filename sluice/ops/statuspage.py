"""The status page: files by status, row counts per dataset and per file, throughput over time
(files and rows per minute on labelled axes), recent runs with progress and DLQ depths, and from
each file a link to what `sluice why FILE` shows.

The local runtime serves it on its own endpoint at `/_sluice/status` (next to `/_sluice/state`);
`sluice status --serve` serves the same page on a loopback port for a stage on AWS. The page is
one self-contained HTML document (no external assets: it must work offline) with the snapshot
embedded as JSON and rendered by a few lines of script, which refreshes it from `api/status`
every few seconds. A refresh that fails puts the error in a banner (never swallowed) and the page
keeps retrying; the banner goes once a refresh succeeds again.
"""

from __future__ import annotations

import html
import ipaddress
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import click
import orjson

from sluice.ops.calls import Missing
from sluice.ops.dlq import SERVICES, dlq_name
from sluice_shared.ports import FileStatus

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_sqs.client import SQSClient

    from sluice.context import CliContext
    from sluice.ops.ledger import LedgerReader
    from sluice_shared.ports import FileRecord, RunRecord

THROUGHPUT_BUCKETS = 12
RECENT_FILES = 20
_FILE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")


@dataclass(slots=True)
class Snapshot:
    """What the page shows; also the JSON of `api/status`."""

    stage: str
    generated_at: str
    window_s: int
    bucket_s: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    recent: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    dlq: dict[str, int | None] = field(default_factory=dict)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def throughput(
    records: Iterable[FileRecord], *, since: datetime, until: datetime, buckets: int
) -> list[dict[str, Any]]:
    """Files that reached COMPLETED per equal time bucket of `[since, until]` (oldest first):
    their count, rows written and input bytes, and the count and rows as rates per minute.
    Raises ValueError for fewer than one bucket or an empty window."""
    if buckets < 1 or until <= since:
        raise ValueError("need at least one bucket and a non-empty window")
    width = (until - since) / buckets
    minutes = width.total_seconds() / 60
    files = [0] * buckets
    rows = [0] * buckets
    sizes = [0] * buckets
    for record in records:
        if record.status is not FileStatus.COMPLETED:
            continue
        moment = record.updated_at.astimezone(UTC)
        if not since <= moment <= until:
            continue
        index = min(int((moment - since) / width), buckets - 1)
        files[index] += 1
        rows[index] += record.rows_out or 0
        sizes[index] += record.size_bytes
    return [
        {
            "start": (since + width * i).isoformat(),
            "files": files[i],
            "rows": rows[i],
            "bytes": sizes[i],
            "files_per_min": round(files[i] / minutes, 3),
            "rows_per_min": round(rows[i] / minutes, 3),
        }
        for i in range(buckets)
    ]


def dataset_rows(records: Iterable[FileRecord]) -> list[dict[str, Any]]:
    """Per dataset: files, and rows in, out and quarantined summed over the files' ledger
    records (a file not yet counted by a stage adds nothing), sorted by dataset."""
    totals: dict[str, dict[str, Any]] = {}
    for record in records:
        total = totals.setdefault(
            record.dataset,
            {
                "dataset": record.dataset,
                "files": 0,
                "rows_in": 0,
                "rows_out": 0,
                "rows_quarantined": 0,
            },
        )
        total["files"] += 1
        total["rows_in"] += record.rows_in or 0
        total["rows_out"] += record.rows_out or 0
        total["rows_quarantined"] += record.rows_quarantined or 0
    return [totals[name] for name in sorted(totals)]


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
        stage=stage,
        generated_at=until.isoformat(),
        window_s=int(window.total_seconds()),
        bucket_s=int(window.total_seconds() // THROUGHPUT_BUCKETS),
    )
    try:
        records = ledger.files(since=since, until=until)
        for status in FileStatus:
            snapshot.counts[status.value] = 0
        for record in records:
            snapshot.counts[record.status.value] += 1
        snapshot.datasets = dataset_rows(records)
        snapshot.recent = [
            {
                "file_id": r.file_id,
                "status": r.status.value,
                "dataset": r.dataset,
                "key": r.key,
                "rows_in": r.rows_in,
                "rows_out": r.rows_out,
                "rows_quarantined": r.rows_quarantined,
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
td.n{text-align:right;font-variant-numeric:tabular-nums}
.tiles{display:flex;gap:.6rem;flex-wrap:wrap}
.tile{border:1px solid #ccc;border-radius:6px;padding:.5rem .8rem}
.tile b{display:block;font-size:1.4rem}
.FAILED b,.QUARANTINED b,.deep{color:#b00020}.COMPLETED b{color:#1a7f37}
progress{width:10rem}.muted{color:#666}
#banner{background:#ffebe9;border:1px solid #b00020;color:#6e0010;padding:.6rem .8rem;
  border-radius:6px;margin:.8rem 0}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .axis{stroke:#333}
svg .grid{stroke:#e5e5e5}svg .axis-label{font-weight:600}
pre{background:#f6f8fa;padding:.8rem;overflow:auto}
"""

_SCRIPT = """
const SVG='http://www.w3.org/2000/svg';
function el(tag, attrs, text){const e=document.createElement(tag);
  for(const [k,v] of Object.entries(attrs||{})) e.setAttribute(k,v);
  if(text!==undefined&&text!==null) e.textContent=String(text); return e;}
function sv(tag, attrs, text){const e=document.createElementNS(SVG,tag);
  for(const [k,v] of Object.entries(attrs||{})) e.setAttribute(k,v);
  if(text!==undefined) e.textContent=String(text); return e;}
function table(id, headers, rows, numeric){const t=document.getElementById(id); t.replaceChildren();
  const h=el('tr'); headers.forEach(x=>h.appendChild(el('th',{},x))); t.appendChild(h);
  rows.forEach(r=>{const tr=el('tr',{'data-key':r.key}); r.cells.forEach((c,i)=>{
    const td=el('td',{'data-col':headers[i],class:(numeric||[]).includes(i)?'n':''});
    if(c instanceof Node) td.appendChild(c);
    else td.textContent=c===null||c===undefined?'':String(c);
    tr.appendChild(td)}); t.appendChild(tr)});}
function when(t){return t?String(t).replace('T',' ').slice(0,19):''}
function fmt(v){return Number.isInteger(v)?String(v):v.toFixed(v<10?2:1)}
function niceMax(v){if(!(v>0)) return 1; const m=Math.pow(10,Math.floor(Math.log10(v)));
  for(const f of [1,2,2.5,5,10]) if(f*m>=v) return f*m; return 10*m;}
function whyLink(id){return el('a',{href:BASE+'why/'+encodeURIComponent(id),class:'why',
  'data-file':id,title:'sluice why '+id},id)}
function chart(id, buckets, key, label, bucketS){
  const svg=document.getElementById(id); svg.replaceChildren();
  const W=640,H=230,L=64,R=14,T=12,B=52,pw=W-L-R,ph=H-T-B;
  const max=niceMax(Math.max(0,...buckets.map(b=>b[key])));
  for(let i=0;i<=4;i++){const y=T+ph-ph*i/4;
    svg.appendChild(sv('line',{x1:L,x2:L+pw,y1:y,y2:y,class:'grid'}));
    svg.appendChild(sv('text',{x:L-6,y:y+4,'text-anchor':'end',class:'ytick'},fmt(max*i/4)));}
  const w=pw/Math.max(1,buckets.length);
  buckets.forEach((b,i)=>{const h=ph*b[key]/max;
    const r=sv('rect',{x:L+i*w+1,y:T+ph-h,width:Math.max(1,w-2),height:h,fill:'#0969da',
      'data-value':b[key],'data-files':b.files,'data-rows':b.rows});
    r.appendChild(sv('title',{},when(b.start)+' UTC: '+fmt(b[key])+' '+label+' ('+b.files+
      ' file(s), '+b.rows+' row(s))')); svg.appendChild(r);
    if(i%3===0) svg.appendChild(sv('text',{x:L+i*w,y:T+ph+16,'text-anchor':'start',
      class:'xtick'},String(b.start).slice(11,16)));});
  svg.appendChild(sv('line',{x1:L,x2:L,y1:T,y2:T+ph,class:'axis'}));
  svg.appendChild(sv('line',{x1:L,x2:L+pw,y1:T+ph,y2:T+ph,class:'axis'}));
  svg.appendChild(sv('text',{x:L+pw/2,y:H-8,'text-anchor':'middle',class:'axis-label x'},
    'time (UTC, HH:MM; one bar = '+Math.round(bucketS/60*10)/10+' min)'));
  svg.appendChild(sv('text',{x:14,y:T+ph/2,'text-anchor':'middle',class:'axis-label y',
    transform:'rotate(-90 14 '+(T+ph/2)+')'},label));}
const banner=()=>document.getElementById('banner');
function problem(text){const b=banner(); b.textContent=text; b.hidden=false;}
let last=null, failures=0;
function render(s){
  last=s;
  document.getElementById('generated').textContent=when(s.generated_at)+' UTC';
  if(s.errors.length) problem('the stage answered with errors: '+s.errors.join('; '));
  else banner().hidden=true;
  const tiles=document.getElementById('counts'); tiles.replaceChildren();
  Object.entries(s.counts).forEach(([k,v])=>{const d=el('div',{class:'tile '+k,'data-status':k});
    d.appendChild(el('b',{},v)); d.appendChild(el('span',{},k)); tiles.appendChild(d)});
  table('datasets',['dataset','files','rows in','rows out','quarantined'], s.datasets.map(d=>({
    key:d.dataset, cells:[d.dataset,d.files,d.rows_in,d.rows_out,d.rows_quarantined]})),[1,2,3,4]);
  table('recent',['file','status','dataset','key','rows in','rows out','quarantined','updated',
    'error'], s.recent.map(f=>({key:f.file_id, cells:[whyLink(f.file_id),f.status,f.dataset,
    f.key,f.rows_in,f.rows_out,f.rows_quarantined,when(f.updated_at),f.error_code]})),[4,5,6]);
  table('runs',['run','status','files','progress','created'], s.runs.map(r=>{
    let p='—'; if(r.total){p=el('span'); p.appendChild(el('progress',{max:r.total,value:r.done}));
      p.appendChild(el('span',{},' '+r.done+'/'+r.total));}
    return {key:r.run_id, cells:[r.run_id,r.status,r.files,p,when(r.created_at)]}}));
  table('dlq',['queue','messages'], Object.entries(s.dlq).map(([q,n])=>({key:q, cells:[q,
    el('span',{class:n?'deep':'','data-queue':q}, n===null?'missing':n)]})));
  chart('chart-files', s.throughput, 'files_per_min', 'files per minute', s.bucket_s);
  chart('chart-rows', s.throughput, 'rows_per_min', 'rows per minute', s.bucket_s);
}
async function refresh(){
  const url=BASE+'api/status';
  try{
    const r=await fetch(url,{cache:'no-store'});
    if(!r.ok) throw new Error('HTTP '+r.status+': '+(await r.text()).slice(0,300));
    render(await r.json()); failures=0; banner().dataset.failures=0;
  }catch(e){
    failures++; banner().dataset.failures=failures;
    problem('cannot refresh from '+new URL(url,location.href)+': '+e+
      ' (showing data of '+when(last&&last.generated_at)+' UTC; retrying every '+
      REFRESH_MS/1000+' s, '+failures+' failed so far)');
  }finally{setTimeout(refresh, REFRESH_MS)}
}
render(JSON.parse(document.getElementById('snapshot').textContent));
setTimeout(refresh, REFRESH_MS);
"""


def _json_for_script(value: Any) -> str:
    # `</` cannot appear inside a script element, or a value could close it early.
    return orjson.dumps(value).decode().replace("</", "<\\/")


def render_page(snapshot: Snapshot, *, base: str = "/", refresh_s: float = 5.0) -> str:
    """The page for `snapshot`: HTML, the snapshot as JSON, and the script that renders it and
    refreshes from `<base>api/status`; file links go to `<base>why/<file_id>`."""
    title = html.escape(f"sluice — {snapshot.stage}")
    minutes = snapshot.window_s // 60
    script = f"const BASE={_json_for_script(base)},REFRESH_MS={int(refresh_s * 1000)};" + _SCRIPT
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1><p class=muted>last {minutes} min · updated "
        "<span id=generated></span> · refreshes every "
        f"{refresh_s:g} s</p><div id=banner role=alert hidden></div>"
        "<h2>Files by status</h2><div id=counts class=tiles></div>"
        "<h2>Rows by dataset</h2><table id=datasets></table>"
        "<h2>Throughput (files completed)</h2>"
        "<svg id=chart-files width=640 height=230 role=img "
        'aria-label="files completed per minute over time"></svg>'
        "<h2>Throughput (rows written)</h2>"
        "<svg id=chart-rows width=640 height=230 role=img "
        'aria-label="rows written per minute over time"></svg>'
        "<h2>Recent files</h2><p class=muted>a file links to what <code>sluice why FILE</code>"
        " shows</p><table id=recent></table>"
        "<h2>Recent runs</h2><table id=runs></table>"
        "<h2>Dead-letter queues</h2><table id=dlq></table>"
        f'<script id=snapshot type="application/json">{_json_for_script(asdict(snapshot))}'
        f"</script><script>{script}</script></body></html>"
    )


def render_why(file_id: str, text: str, *, base: str = "/") -> str:
    """The per-file page: the text of `sluice why FILE_ID` and the command that prints it."""
    ident = html.escape(file_id)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>sluice why {ident}</title><style>{_STYLE}</style></head><body>"
        f'<p><a href="{html.escape(base)}">← status</a></p>'
        f"<h1>sluice why {ident}</h1><p class=muted>the same in a terminal: "
        f"<code id=command>sluice why {ident}</code> (which also peeks the DLQs)</p>"
        f"<pre id=why>{html.escape(text)}</pre></body></html>"
    )


@dataclass(frozen=True, slots=True)
class StatusPage:
    """The page's routes below `base`: `` (the page), `api/status` (the snapshot as JSON) and
    `why/<file_id>` (what `sluice why` shows).

    `snapshot` is called per request; `explain(file_id)` returns the text of `sluice why` and
    raises `Missing` for an unknown file (any other `click.ClickException`: the stage did not
    answer). Both run on the caller's thread and may block.
    """

    snapshot: Callable[[], Snapshot]
    explain: Callable[[str], str]
    base: str = "/"
    refresh_s: float = 5.0

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for a request of `path` (query ignored)."""
        path = path.split("?", 1)[0]
        if path + "/" == self.base:
            path = self.base
        if not path.startswith(self.base):
            return _text(404, f"not found: {path}")
        sub = path.removeprefix(self.base)
        if sub == "":
            page = render_page(self.snapshot(), base=self.base, refresh_s=self.refresh_s)
            return 200, "text/html; charset=utf-8", page.encode()
        if sub == "api/status":
            return 200, "application/json", orjson.dumps(asdict(self.snapshot()))
        if sub.startswith("why/"):
            file_id = unquote(sub.removeprefix("why/"))
            if not _FILE_ID.match(file_id):
                return _text(400, f"not a file id: {file_id!r}")
            try:
                text = self.explain(file_id)
            except Missing as exc:
                return _text(404, exc.format_message())
            except click.ClickException as exc:
                return _text(502, exc.format_message())
            page = render_why(file_id, text, base=self.base)
            return 200, "text/html; charset=utf-8", page.encode()
        return _text(404, f"not found: {path}")


def _text(code: int, message: str) -> tuple[int, str, bytes]:
    return code, "text/plain; charset=utf-8", message.encode()


class StatusPageServer(ThreadingHTTPServer):
    """Serves a `StatusPage` on a loopback address (`sluice status --serve`).

    Raises ValueError for a host that is not loopback: the page shows file keys and error
    texts, which are not for the network.
    """

    daemon_threads = True

    def __init__(self, page: StatusPage, host: str = "127.0.0.1", port: int = 0):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the status page serves loopback addresses only, not {host}")
        self.page = page
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{self.page.base}"

    def serve_in_thread(self) -> threading.Thread:
        """Start serving in a daemon thread; stop with `shutdown()` then `server_close()`."""
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: StatusPageServer

    def do_GET(self) -> None:
        code, content_type, body = self.server.page.respond(self.path)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the page refreshes every few seconds."""


def stage_page(ctx: CliContext, window: timedelta, *, base: str = "/") -> StatusPage:
    """The page of the stage `ctx` points at: snapshots over `window`, and
    `why` through the command's own code (without peeking the DLQs: a page view must not move
    receive counts)."""
    from sluice.ops.executions import map_run_counts
    from sluice.ops.ledger import LedgerReader
    from sluice.ops.why import explain

    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = ctx.client(service)
        return clients[service]

    def snapshot() -> Snapshot:
        try:
            names = ctx.names()
        except click.ClickException as exc:
            return Snapshot(
                stage=ctx.stage,
                generated_at=datetime.now(UTC).isoformat(),
                window_s=int(window.total_seconds()),
                errors=[exc.format_message()],
            )
        sfn = client("stepfunctions")
        return collect(
            stage=ctx.stage,
            ledger=LedgerReader(client("dynamodb"), names["ledger_table"]),
            sqs=client("sqs"),
            window=window,
            map_run_counts=lambda arn: map_run_counts(sfn, arn),
        )

    def why(file_id: str) -> str:
        return explain(ctx, file_id, rows=10, dlq=False)[1]

    return StatusPage(snapshot=snapshot, explain=why, base=base)
