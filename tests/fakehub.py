"""A real fake Hugging Face Hub on 127.0.0.1: a "Hub" port and a "CDN" port, raw HTTP/1.1.

Hub:  HEAD/GET /<owner>/<name>/resolve/<rev>/<path>
      -> 302 to http://127.0.0.1:<cdn>/cdn/<sha256>?Expires=<t>&Signature=<hmac>
         with X-Linked-Size, X-Linked-Etag: "<sha256>", X-Repo-Commit, Accept-Ranges;
      gated repos: 401 + X-Error-Code: GatedRepo without a valid Bearer token, 403 GatedRepo
      with the "unapproved" token, 401 "Invalid credentials" with any other token;
      missing file: 404 EntryNotFound; missing repo: 401 RepoNotFound.
CDN:  GET/HEAD /cdn/<sha256>?Expires&Signature -> 200 / 206 + Content-Range, 416, and a real
      403 when the signature is bad or expired.

Faults are injected per request (``hub.faults.append(Fault(...))``); every request is
recorded (``hub.requests``) with its headers (Authorization included) and the body bytes sent.
``FakeHub(prefix="/artifactory/api/hf")`` serves the Hub under a path, as path mirrors do
(``hub.url`` then ends in the prefix; a request outside it is 404 RepoNotFound).
Run standalone for manual tests: ``python -m tests.fakehub --help``.

``FakeHub(tls=True)`` serves https AND plain http on the same ports (the first byte of each
connection decides: a TLS ClientHello is wrapped with a self-signed certificate for 127.0.0.1,
anything else is served in clear and recorded with ``tls=False``), so a redirect from
``https://127.0.0.1:P`` to ``http://127.0.0.1:P`` - the same host name - is observable: the
test sees exactly which headers travelled in clear. ``hub.cert_file`` is the CA to trust.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

VALID_TOKEN = "hf_FakeValidToken0123456789abcdef"
UNAPPROVED_TOKEN = "hf_FakeUnapprovedToken0123456789"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
_SECRET = b"fakehub-signing-key"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class Fault:
    """One injected fault. Matches requests by server ("hub"/"cdn"), method and path substring.

    kinds:
      drop            send ``after`` body bytes, then close the connection
      stall           send ``after`` body bytes, then send nothing for ``seconds``
      trickle         send ``after`` body bytes, then one byte every ``interval`` seconds for
                      ``seconds`` (a connection that never hits a read timeout), then close
      ignore_range    answer a Range request with 200 and the whole body
      bad_range       206 whose Content-Range starts 1 byte later than asked (body from there)
      416             416 with ``Content-Range: bytes */size``
      expired         403 "Request has expired" (CDN signed URL)
      flip            flip one byte at absolute offset ``offset`` of the served body
      size            CDN announces a total of size + ``delta`` in Content-Range
      status          answer ``status`` (503, 429, 500...) with ``headers`` (e.g. Retry-After,
                      or a ``Location`` for a 3xx: a redirect loop, a downgrade to http)
      gzip            serve normally but say ``Content-Encoding: gzip`` (a compressing proxy)
      empty200        answer 200 with ``Content-Length: 0`` and no X-Linked-* headers (a mirror
                      that serves a HEAD itself and knows nothing of the file)
      callback        call ``fn(handler)`` then serve normally (e.g. fill the disk mid-download)
    ``times``: how many requests it affects (None = all). ``range``: only requests whose
    Range header starts with this (e.g. ``"bytes=2097152-"``).
    """

    kind: str
    server: str = "cdn"
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    after: int = 0
    seconds: float = 5.0
    interval: float = 0.2
    offset: int = 0
    delta: int = 1000
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    fn: object = None
    only_ranged: bool = False
    range: str | None = None

    def matches(
        self, server: str, method: str, path: str, ranged: bool, range_header: str | None = None
    ) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.range is not None and not (range_header or "").startswith(self.range):
            return False
        if self.server != server:
            return False
        if self.method and self.method != method:
            return False
        if self.only_ranged and not ranged:
            return False
        return not (self.path and self.path not in path)


@dataclass
class Request:
    server: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    range: str | None
    status: int = 0
    body_bytes: int = 0
    fault: str | None = None
    tls: bool = False  #: the request came over TLS (https)

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class HubFile:
    repo: str
    path: str
    blob: Path
    size: int
    sha256: str


class FakeHub:
    """Start with ``start()`` (or as a context manager); ``url`` is the Hub's base URL."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        rate: float | None = None,
        tls: bool = False,
        host: str = "127.0.0.1",
        prefix: str = "",
    ):
        self._tmp = None
        #: a path the Hub is served under (an Artifactory-style mirror: "/artifactory/api/hf");
        #: part of ``url``, so ``resolve_url`` and HF_ENDPOINT=hub.url carry it. "" = the root
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        #: the loopback address both ports listen on (127.0.0.2...: another origin, e.g. a mirror)
        self.host = host
        if root is None:
            self._tmp = tempfile.mkdtemp(prefix="fakehub-")
            root = Path(self._tmp)
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.files: dict[tuple[str, str], HubFile] = {}
        self.by_sha: dict[str, HubFile] = {}
        self.gated: set[str] = set()
        self.valid_token = VALID_TOKEN
        self.unapproved_token = UNAPPROVED_TOKEN
        self.commit = COMMIT
        self.url_ttl = 3600.0
        self.rate = rate  # bytes/s cap per connection (None = uncapped)
        self.total_rate: float | None = None  # bytes/s cap of all connections together (a link)
        self._link_free = 0.0  # monotonic time the shared link is free again (total_rate)
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.report_sha = True  # X-Linked-Etag present
        #: base URL of the signed Location instead of ``cdn_url`` (e.g. a downgrade to http)
        self.cdn_base_override: str | None = None
        self.tls = tls
        self.cert_file: Path | None = None
        self._ssl_ctx = None
        self.linked_size_override: dict[str, int] = {}
        self.sha_override: dict[str, str] = {}
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.hub_port = 0
        self.cdn_port = 0
        self.closing = threading.Event()
        self.log_path: Path | None = None  # JSON line per request (standalone runs)

    # ---- content ---------------------------------------------------------------------
    def add_file(self, repo: str, path: str, data: bytes | Path, gated: bool = False) -> HubFile:
        """Serve ``data`` (bytes, or an existing file that is linked, not copied)."""
        if isinstance(data, Path):
            blob_src = data
            h = hashlib.sha256()
            with open(blob_src, "rb") as fh:
                while chunk := fh.read(1 << 22):
                    h.update(chunk)
            sha = h.hexdigest()
            blob = self.root / "blobs" / sha
            if not blob.exists():
                try:
                    os.link(blob_src, blob)
                except OSError:
                    os.symlink(blob_src.resolve(), blob)
            size = blob_src.stat().st_size
        else:
            sha = hashlib.sha256(data).hexdigest()
            blob = self.root / "blobs" / sha
            if not blob.exists():
                blob.write_bytes(data)
            size = len(data)
        f = HubFile(repo, path, blob, size, sha)
        with self._lock:
            self.files[(repo, path)] = f
            self.by_sha[sha] = f
            if gated:
                self.gated.add(repo)
        return f

    def set_gated(self, repo: str, gated: bool = True) -> None:
        with self._lock:
            (self.gated.add if gated else self.gated.discard)(repo)

    def resolve_url(self, repo: str, path: str, rev: str = "main") -> str:
        return f"{self.url}/{repo}/resolve/{rev}/{path}"

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.hub_port}{self.prefix}"

    @property
    def cdn_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.cdn_port}"

    def _make_tls(self) -> None:
        """A self-signed certificate for 127.0.0.1 (the openssl CLI), trusted via cert_file."""
        import ssl
        import subprocess

        key, cert = self.root / "tls.key", self.root / "tls.crt"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self._ssl_ctx = ctx
        self.cert_file = cert

    def start(self, hub_port: int = 0, cdn_port: int = 0) -> FakeHub:
        if self.tls and self._ssl_ctx is None:
            self._make_tls()
        for name, port in (("hub", hub_port), ("cdn", cdn_port)):
            handler = type(
                f"{name.title()}Handler", (_Handler,), {"hub": self, "server_name": name}
            )
            srv = _Server((self.host, port), handler)
            srv.ssl_ctx = self._ssl_ctx
            self._servers.append(srv)
            t = threading.Thread(
                target=srv.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fakehub-{name}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
            if name == "hub":
                self.hub_port = srv.server_address[1]
            else:
                self.cdn_port = srv.server_address[1]
        return self

    def stop(self) -> None:
        self.closing.set()
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._servers.clear()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> FakeHub:
        return self.start() if not self._servers else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- queries for tests -------------------------------------------------------------
    def cdn_requests(self, path_part: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.server == "cdn" and (path_part is None or path_part in r.path)
        ]

    def bytes_served(self, sha: str | None = None) -> int:
        """Payload bytes the CDN sent (200/206 bodies, also the partial ones that were cut)."""
        return sum(
            r.body_bytes
            for r in self.requests
            if r.server == "cdn"
            and r.method == "GET"
            and r.status in (200, 206)
            and (sha is None or sha in r.path)
        )

    # ---- internals -------------------------------------------------------------------
    def _sign(self, sha: str, expires: str) -> str:
        return hmac.new(_SECRET, f"{sha}:{expires}".encode(), "sha256").hexdigest()[:32]

    def signed_location(self, sha: str) -> str:
        exp = f"{time.time() + self.url_ttl:.3f}"
        return (
            f"{self.cdn_base_override or self.cdn_url}/cdn/{sha}?Expires={exp}&Signature={self._sign(sha, exp)}"
            f"&Key-Pair-Id=K2FAKEFAKEFAKE"
        )

    def _take_fault(
        self, server: str, method: str, path: str, ranged: bool, range_header: str | None = None
    ) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.matches(server, method, path, ranged, range_header):
                    if f.times is not None:
                        f.times -= 1
                    return f
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    ssl_ctx = None  # set: TLS and plain http on the same port (sniffed per connection)

    def finish_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """On the connection's own thread: a TLS ClientHello (0x16) is wrapped, else plain."""
        if self.ssl_ctx is not None:
            try:
                request.settimeout(10)
                first = request.recv(1, socket.MSG_PEEK)
                if first == b"\x16":
                    request = self.ssl_ctx.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except OSError:
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client that went away (a cut or cancelled connection): not an error
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub
    server_name: str

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # every response goes through here so it is recorded
    def _start(self, rec: Request, status: int, headers: dict[str, str], length: int) -> None:
        rec.status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _simple(
        self, rec: Request, status: int, headers: dict[str, str], body: bytes = b""
    ) -> None:
        self._start(rec, status, headers, len(body))
        if self.command != "HEAD" and body:
            self.wfile.write(body)
            rec.body_bytes += len(body)

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        rec = Request(
            server=self.server_name,
            method=self.command,
            path=unquote(parts.path),
            query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            range=self.headers.get("Range"),
            tls=hasattr(self.connection, "getpeercert"),
        )
        self.hub.requests.append(rec)
        fault = self.hub._take_fault(
            self.server_name, self.command, rec.path, rec.range is not None, rec.range
        )
        if fault is not None:
            rec.fault = fault.kind
            if fault.kind == "callback" and callable(fault.fn):
                fault.fn(self)
                fault = None
            elif fault.kind == "status":
                self._simple(rec, fault.status, dict(fault.headers), b"transient error\n")
                return
            elif fault.kind == "empty200":
                self._simple(rec, 200, {"Content-Type": "application/octet-stream"})
                return
        try:
            if self.server_name == "hub":
                self._hub(rec, fault)
            else:
                self._cdn(rec, fault)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if self.hub.log_path is not None:
                line = {
                    "server": rec.server,
                    "method": rec.method,
                    "path": rec.path,
                    "range": rec.range,
                    "status": rec.status,
                    "bytes": rec.body_bytes,
                    "fault": rec.fault,
                    "auth": rec.authorization is not None,
                }
                with self.hub._lock, open(self.hub.log_path, "a") as fh:
                    fh.write(json.dumps(line) + "\n")

    # ---- hub -------------------------------------------------------------------------
    def _hub(self, rec: Request, fault: Fault | None) -> None:
        hub = self.hub
        path = rec.path
        if hub.prefix:  # served under a path: anything outside it is not the Hub
            path = path[len(hub.prefix) :] if path.startswith(hub.prefix + "/") else ""
        m = re.match(r"^/(.+?/.+?)/resolve/([^/]+)/(.+)$", path)
        if not m:
            self._simple(rec, 404, {"X-Error-Code": "RepoNotFound"}, b"not found\n")
            return
        repo, _rev, path = m.groups()
        auth = rec.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        repo_exists = any(r == repo for r, _ in hub.files)
        if token is not None and token not in (hub.valid_token, hub.unapproved_token):
            self._simple(
                rec, 401, {"X-Error-Message": "Invalid credentials in Authorization header"}
            )
            return
        if not repo_exists:
            self._simple(
                rec,
                401,
                {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
            )
            return
        if repo in hub.gated:
            if token is None:
                self._simple(
                    rec,
                    401,
                    {
                        "X-Error-Code": "GatedRepo",
                        "X-Error-Message": f"Access to model {repo} is restricted. You must have "
                        "access to it and be authenticated to access it. Please log in.",
                    },
                )
                return
            if token == hub.unapproved_token:
                self._simple(
                    rec,
                    403,
                    {
                        "X-Error-Code": "GatedRepo",
                        "X-Error-Message": f"Access to model {repo} is restricted and you are not in "
                        f"the authorized list. Visit https://huggingface.co/{repo} to ask for access.",
                    },
                )
                return
        f = hub.files.get((repo, path))
        if f is None:
            self._simple(
                rec,
                404,
                {
                    "X-Error-Code": "EntryNotFound",
                    "X-Repo-Commit": hub.commit,
                    "X-Error-Message": f"{path} does not exist",
                },
            )
            return
        body = b"Found. Redirecting to the CDN"
        headers = {
            "Location": hub.signed_location(f.sha256),
            "X-Repo-Commit": hub.commit,
            "X-Linked-Size": str(hub.linked_size_override.get(f.sha256, f.size)),
            "Accept-Ranges": "bytes",
            "ETag": '"hub-etag-not-the-sha"',
        }
        if hub.report_sha:
            headers["X-Linked-Etag"] = f'"{hub.sha_override.get(f.sha256, f.sha256)}"'
        self._simple(rec, 302, headers, body)

    # ---- cdn -------------------------------------------------------------------------
    def _cdn(self, rec: Request, fault: Fault | None) -> None:
        hub = self.hub
        m = re.match(r"^/cdn/([0-9a-f]{64})$", rec.path)
        f = hub.by_sha.get(m.group(1)) if m else None
        if f is None:
            self._simple(rec, 404, {}, b"NoSuchKey\n")
            return
        q = parse_qs(rec.query)
        try:
            exp_s = q["Expires"][0]
            exp = float(exp_s)
            sig = q["Signature"][0]
        except (KeyError, ValueError, IndexError):
            self._simple(
                rec,
                403,
                {"Content-Type": "application/xml"},
                b"<Error><Code>AccessDenied</Code><Message>Missing signature</Message></Error>",
            )
            return
        if (
            fault is not None
            and fault.kind == "expired"
            or exp < time.time()
            or not hmac.compare_digest(sig, hub._sign(f.sha256, exp_s))
        ):
            self._simple(
                rec,
                403,
                {"Content-Type": "application/xml"},
                b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            )
            return
        size = f.size
        total = size + (fault.delta if fault is not None and fault.kind == "size" else 0)
        start, end = 0, size - 1
        status = 200
        if rec.range and not (fault is not None and fault.kind == "ignore_range"):
            rm = _RANGE.match(rec.range.strip())
            if not rm or (rm.group(1) == "" and rm.group(2) == ""):
                self._simple(rec, 416, {"Content-Range": f"bytes */{size}"})
                return
            a, b = rm.group(1), rm.group(2)
            if a == "":
                start, end = max(0, size - int(b)), size - 1
            else:
                start = int(a)
                end = min(int(b), size - 1) if b else size - 1
            if start >= size or (fault is not None and fault.kind == "416"):
                self._simple(rec, 416, {"Content-Range": f"bytes */{size}"})
                return
            status = 206
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": '"cdn-etag-0000"',
            "Content-Type": "application/octet-stream",
        }
        if fault is not None and fault.kind == "bad_range" and status == 206:
            start = min(start + 1, end)
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        if fault is not None and fault.kind == "gzip":
            headers["Content-Encoding"] = "gzip"
        length = end - start + 1
        self._start(rec, status, headers, length)
        if self.command == "HEAD":
            return
        self._send_body(rec, f, start, length, fault)

    def _send_body(
        self, rec: Request, f: HubFile, start: int, length: int, fault: Fault | None
    ) -> None:
        hub = self.hub
        kind = fault.kind if fault is not None else None
        limit = length
        if kind in ("drop", "stall", "trickle"):
            limit = min(length, fault.after)  # type: ignore[union-attr]
        flip_at = fault.offset if kind == "flip" else -1  # type: ignore[union-attr]
        sock = self.connection
        self.wfile.flush()
        sent = 0
        with open(f.blob, "rb") as fh:
            if hub.rate is None and hub.total_rate is None and flip_at < 0 and limit > 0:
                # fast path: sendfile
                while sent < limit:
                    n = sock.sendfile(fh, start + sent, limit - sent)
                    if not n:
                        break
                    sent += n
                    rec.body_bytes = sent
            else:
                chunk = 64 * 1024
                if hub.rate:  # ~10 ms bursts at high caps (fewer wake-ups of this thread)
                    chunk = max(chunk, min(256 * 1024, int(hub.rate / 100) & ~4095))
                t0 = time.monotonic()
                while sent < limit:
                    n = min(chunk, limit - sent)
                    if hub.rate:  # pace before sending: no request gets a free first burst
                        delay = t0 + (sent + n) / hub.rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    if hub.total_rate:
                        with hub._lock:  # the shared link: one time slot per chunk
                            now = time.monotonic()
                            due = max(now, hub._link_free)
                            hub._link_free = due + n / hub.total_rate
                        if due > now:
                            time.sleep(due - now)
                    if start + sent <= flip_at < start + sent + n:
                        data = os.pread(fh.fileno(), n, start + sent)
                        if not data:
                            break
                        i = flip_at - start - sent
                        data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
                        sock.sendall(data)
                        n = len(data)
                    else:  # no copy through Python (the benchmark's capped mode)
                        n = sock.sendfile(fh, start + sent, n)
                        if not n:
                            break
                    sent += n
                    rec.body_bytes = sent
        if kind == "stall":
            deadline = time.monotonic() + fault.seconds  # type: ignore[union-attr]
            while time.monotonic() < deadline and not hub.closing.is_set():
                time.sleep(0.02)
        if kind == "trickle":
            deadline = time.monotonic() + fault.seconds  # type: ignore[union-attr]
            with open(f.blob, "rb") as fh:
                while sent < length and time.monotonic() < deadline and not hub.closing.is_set():
                    time.sleep(fault.interval)  # type: ignore[union-attr]
                    try:
                        sock.sendall(os.pread(fh.fileno(), 1, start + sent))
                    except OSError:
                        break
                    sent += 1
                    rec.body_bytes = sent
        if kind in ("drop", "stall", "trickle") and sent < length:
            self.close_connection = True
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    """Serve a directory of files (or the hub catalog payloads) on fixed ports, for manual runs."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m tests.fakehub")
    p.add_argument("--hub-port", type=int, default=18080)
    p.add_argument("--cdn-port", type=int, default=18081)
    p.add_argument("--manifest", type=Path, help='JSON list of {"repo", "path", "file", "gated"}')
    p.add_argument(
        "--mirror-catalog",
        type=Path,
        metavar="OUT",
        help="serve the bundled catalog's files (small payloads) and write a loopback "
        "catalog to OUT (e.g. the user catalog path)",
    )
    p.add_argument("--scale", type=int, default=64, help="payload scale for --mirror-catalog")
    p.add_argument("--gate", action="append", default=[], metavar="REPO", help="gate a repo")
    p.add_argument("--log", type=Path, help="append one JSON line per request to this file")
    p.add_argument("--rate", type=float, default=None, help="bytes/s per connection")
    p.add_argument(
        "--drop-every",
        type=int,
        default=0,
        help="drop every Nth CDN request after 1 MiB (fault injection)",
    )
    args = p.parse_args(argv)
    hub = FakeHub(rate=args.rate)
    hub.log_path = args.log
    hub.hub_port, hub.cdn_port = args.hub_port, args.cdn_port  # URLs before start
    if args.manifest:
        for item in json.loads(args.manifest.read_text()):
            hub.add_file(
                item["repo"], item["path"], Path(item["file"]), gated=item.get("gated", False)
            )
    if args.mirror_catalog:
        from tests.hub_fixtures import build_hub_catalog

        build_hub_catalog(hub, args.mirror_catalog, scale=args.scale)
        print(f"wrote {args.mirror_catalog}", flush=True)
    for repo in args.gate:
        hub.set_gated(repo)
    if args.drop_every:
        hub.faults.append(Fault("drop", after=1 << 20, times=None))
        counter = {"n": 0}
        orig = hub._take_fault

        def every_nth(
            server: str, method: str, path: str, ranged: bool, range_header: str | None = None
        ) -> Fault | None:
            if server != "cdn" or method != "GET":
                return None
            counter["n"] += 1
            if counter["n"] % args.drop_every:
                return None
            return orig(server, method, path, ranged, range_header)

        hub._take_fault = every_nth  # type: ignore[method-assign]
    hub.start(args.hub_port, args.cdn_port)
    print(f"hub {hub.url}  cdn {hub.cdn_url}  token {hub.valid_token}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
