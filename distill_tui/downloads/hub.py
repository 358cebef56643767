"""The Hugging Face ``resolve`` protocol: HEAD for metadata, error mapping, retry policy.

DESIGN §4 rules 1-3: HEAD with ``Accept-Encoding: identity`` without following the cross-host
redirect; size = ``X-Linked-Size``, sha256 = ``X-Linked-Etag`` (64 hex), revision =
``X-Repo-Commit``; the redirect target is fetched without ``Authorization``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from distill_tui import __version__
from distill_tui.downloads.errors import DownloadError
from distill_tui.downloads.rate import Retry, exc_reason, status_reason
from distill_tui.hftoken import CA_VARS as _CA_VARS
from distill_tui.hftoken import (
    ca_source,
    ca_words,
    download_timeout,
    endpoint_origin,
    etag_timeout,
    implicit_token_disabled,
    offline,
    offline_message,
    token_problem,
)
from distill_tui.redact import redact, redact_url

log = logging.getLogger(__name__)

# httpx logs every request URL (signed CDN query strings included) at INFO.
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
HF_PAGE = "https://huggingface.co"
TRANSIENT_EXC = (
    httpx.TransportError,  # connect/read/write errors, timeouts, RemoteProtocolError
)


@dataclass(frozen=True)
class HubMeta:
    """What the Hub says about one file."""

    resolve_url: str  #: the catalog URL (no query)
    location: str  #: where the bytes are (signed CDN URL: never log or store it unredacted)
    size: int
    sha256: str | None
    revision: str | None
    same_origin: bool  #: location is the Hub's exact origin (send Authorization there only)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: the token's boundary."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


HUB_ORIGIN = ("https", "huggingface.co", 443)


def hub_origins(hub_url: str | None = None) -> frozenset[tuple[str, str, int | None]]:
    """The origins that are the Hub, the only ones the token may go to.

    ``HF_ENDPOINT``'s origin when it is set, else https://huggingface.co. A catalog's mirrors,
    however they are named, and the CDN a redirect points at are never the Hub. One exception
    keeps a Hub that runs on this very machine usable: without ``HF_ENDPOINT``, the loopback
    origin of the file's own catalog URL (``hub_url``: its ``downloadUrl``, never a mirror) is
    the Hub too - the tests' fake Hub, a local Hub. A mirror on another loopback address or port
    is still another origin."""
    ep = endpoint_origin()
    if ep is not None:
        return frozenset({ep})
    out: set[tuple[str, str, int | None]] = {HUB_ORIGIN}
    if hub_url:
        o = origin(hub_url)
        if o[0] in ("http", "https") and is_loopback_host(o[1]):
            out.add(o)
    return frozenset(out)


def may_send_token(hub_url: str | None, url: str) -> bool:
    """The token goes only to the Hub's exact origin (scheme, host, port; :func:`hub_origins`)
    and never over plain http unless that origin is loopback http (tests, a local Hub) or the
    user's own ``HF_ENDPOINT`` (an http LAN mirror is the user's explicit choice).

    ``hub_url`` is the file's own catalog URL (its ``downloadUrl``): it names the Hub only when
    it is on this machine (see :func:`hub_origins`); a mirror's URL is never passed as it."""
    o = origin(url)
    if o not in hub_origins(hub_url):
        return False
    if o[0] == "https" or (o[0] == "http" and is_loopback_host(o[1])):
        return True
    return o[0] == "http" and endpoint_origin() == o


#: host names that are this machine or a local network, never a public origin
_LOCAL_SUFFIXES = (".local", ".lan", ".internal", ".localdomain", ".home.arpa", ".localhost")


def _private_ip(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def _local_host(host: str) -> bool:
    """This machine or a local network: a private/loopback/link-local IP literal, localhost, a
    single-label name or a local suffix (mirror.lan). Names are not resolved."""
    host = host.lower().rstrip(".")
    if not host or host == "localhost" or _private_ip(host):
        return True
    return "." not in host or host.endswith(_LOCAL_SUFFIXES)


def redirect_problem(src: str, dst: str) -> str | None:
    """Why a redirect from ``src`` to ``dst`` must not be followed (None: it may). Final, never
    retried: a scheme other than http(s) (``file:``, ``ftp:``...), or a jump from a public origin
    to this machine or a private network (an IP literal that is private, loopback, link-local -
    the cloud metadata address 169.254.169.254 - or ``localhost``). A Hub that is itself local
    (the tests', a LAN mirror) may redirect within the local network."""
    try:
        parts = urlsplit(dst)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "to an invalid URL"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return (
            f"to a {scheme}: URL (only http and https are downloaded)"
            if scheme
            else ("to a URL without a scheme")
        )
    dst_host = (parts.hostname or "").lower()
    if not dst_host:
        return "to a URL without a host"
    src_host = (urlsplit(src).hostname or "").lower()
    if _local_host(src_host):
        return None
    if dst_host == "localhost" or dst_host.endswith(".localhost") or _private_ip(dst_host):
        return f"to the private address {dst_host} (this machine or a local network)"
    return None


def _downgrade(src: str, dst: str) -> bool:
    """https -> plain http (the signed URL, and maybe more, would travel in clear)."""
    return origin(src)[0] == "https" and origin(dst)[0] != "https"


def repo_of(url: str) -> str | None:
    m = re.search(r"/([^/]+/[^/]+)/resolve/", urlsplit(url).path)
    return m.group(1) if m else None


def path_in_repo(url: str) -> str:
    m = re.search(r"/resolve/[^/]+/(.+)$", urlsplit(url).path)
    return m.group(1) if m else urlsplit(url).path.rsplit("/", 1)[-1]


READ_BYTES = 512 * 1024


def _bigger_reads() -> None:
    """httpcore reads HTTP/1.1 bodies 64 KiB at a time; 512 KiB reads cut the per-chunk Python
    work (and pwrite calls) of a download by ~8x: measured ~10-15% more throughput on loopback.
    It is only a buffer size; without the attribute (another httpcore) nothing changes."""
    try:
        from httpcore._async.http11 import AsyncHTTP11Connection
    except ImportError:  # pragma: no cover - other httpcore layout
        return
    if getattr(AsyncHTTP11Connection, "READ_NUM_BYTES", READ_BYTES) < READ_BYTES:
        AsyncHTTP11Connection.READ_NUM_BYTES = READ_BYTES


_SSL: dict[tuple[str, str] | None, ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()
#: CA bundle variables, first set wins (hftoken.CA_VARS: SSL_CERT_FILE, REQUESTS_CA_BUNDLE,
#: CURL_CA_BUNDLE, SSL_CERT_DIR; issue 23.9)
CA_VARS = _CA_VARS


def ssl_context() -> ssl.SSLContext:
    """One TLS context per process and CA setting: the CAs of the first CA variable set
    (``hftoken.ca_source``: a file, or a folder of hashed certificates), else certifi's bundle
    as httpx builds it. Loading the CA bundle costs ~20 ms, and the Hub client and the I/O
    thread's client both need it before the first byte."""
    src = ca_source()
    with _SSL_LOCK:
        ctx = _SSL.get(src)
        if ctx is None:
            if src is None:
                ctx = httpx.create_ssl_context(trust_env=False)  # certifi
            else:
                where = src[1]
                is_dir = src[0] == "SSL_CERT_DIR" or os.path.isdir(where)
                ctx = ssl.create_default_context(
                    cafile=None if is_dir else where, capath=where if is_dir else None
                )
            _SSL[src] = ctx
        return ctx


def new_client(stall_timeout: float, connections: int) -> httpx.AsyncClient:
    """One client per event loop. Env proxies keep working: no custom transport."""
    _bigger_reads()
    return httpx.AsyncClient(
        verify=ssl_context(),
        # HF_HUB_DOWNLOAD_TIMEOUT: connect and read of the bytes (a dead server fails fast);
        # the stall watchdog (fetch.py) handles a trickle that never trips the read timeout
        timeout=httpx.Timeout(
            connect=download_timeout(),
            read=min(stall_timeout, download_timeout()),
            write=30.0,
            pool=None,
        ),
        limits=httpx.Limits(
            max_connections=max(16, connections * 4),
            max_keepalive_connections=max(16, connections * 4),
        ),
        follow_redirects=False,
        headers={"Accept-Encoding": "identity", "User-Agent": f"distill/{__version__}"},
        trust_env=True,
    )


def retry_after(resp: httpx.Response, default: float) -> float:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date), capped at 120 s."""
    value = resp.headers.get("retry-after")
    if not value:
        return default
    try:
        return max(0.0, min(120.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
        return max(0.0, min(120.0, when - time.time()))
    except (TypeError, ValueError):
        return default


def proxy_hint() -> str:
    names = [
        v
        for v in (
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "ALL_PROXY",
            "https_proxy",
            "http_proxy",
            "all_proxy",
        )
        if os.environ.get(v)
    ]
    return f" (through the proxy from {names[0]})" if names else ""


def tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error inside an httpx exception (certificate not trusted, wrong host...), if
    any: never transient, so never retried."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ssl.SSLError):
            return e
        for arg in getattr(e, "args", ()):
            if isinstance(arg, ssl.SSLError):
                return arg
        e = e.__cause__ or e.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "[SSL" in text:
        return ssl.SSLError(text)
    return None


def tls_error(url: str, exc: BaseException) -> DownloadError:
    """One line for a TLS failure, with the variables that point at a CA bundle."""
    host = urlsplit(url).netloc
    err = tls_failure(exc) or exc
    verify = isinstance(err, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
        err
    )
    detail = getattr(err, "verify_message", None) or getattr(err, "reason", None) or str(err)
    detail = redact(str(detail))[:160]
    if verify:
        return DownloadError(
            "tls",
            f"TLS certificate of {host} not trusted ({detail}){proxy_hint()}; not retried; "
            f"{ca_words()}. A proxy or mirror with its own CA: point SSL_CERT_FILE (or "
            "REQUESTS_CA_BUNDLE) at that CA bundle (PEM), then rerun",
        )
    return DownloadError(
        "tls",
        f"TLS connection to {host} failed ({detail}){proxy_hint()}; not retried. Check the URL "
        "(https to a plain-http server?), or SSL_CERT_FILE / REQUESTS_CA_BUNDLE for a private CA "
        f"({ca_words()})",
    )


def network_error(url: str, exc: BaseException, token: str | None = None) -> DownloadError:
    if tls_failure(exc) is not None:
        return tls_error(url, exc)
    host = urlsplit(url).netloc
    detail = redact(
        f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        (token,) if token else (),
    )
    if isinstance(exc, httpx.TimeoutException):
        detail += (
            f" (no answer within {etag_timeout():g} s: HF_HUB_ETAG_TIMEOUT for the Hub, "
            f"{download_timeout():g} s: HF_HUB_DOWNLOAD_TIMEOUT for the bytes)"
        )
    return DownloadError(
        "network",
        f"network error talking to {host}{proxy_hint()}: {detail}; rerun to resume",
        resumable=True,
    )


def _or_login() -> str:
    """The "or log in with hf" aside, naming the hf a new shell runs (the venv's by absolute
    path when it is not on PATH); nothing when this installation has no hf."""
    from distill_tui.selfcmd import command_for

    hf = command_for("hf", "")
    return f" (or `{hf} auth login`)" if hf else ""


def hub_error(resp: httpx.Response, url: str, token: str | None) -> DownloadError:
    """Map a Hub error answer to an actionable message (never includes the token)."""
    code = resp.headers.get("x-error-code", "")
    msg = resp.headers.get("x-error-message", "")
    repo = repo_of(url) or urlsplit(url).netloc
    path = path_in_repo(url)
    status = resp.status_code
    page = f"{HF_PAGE}/{repo}"
    if code == "GatedRepo":
        if token:
            return DownloadError(
                "gated",
                f"{repo} is gated and your token is not approved for it yet: accept the license "
                f"at {page} with the account of HF_TOKEN, then rerun",
            )
        if implicit_token_disabled():
            return DownloadError(
                "gated",
                f"{repo} is gated and HF_HUB_DISABLE_IMPLICIT_TOKEN is set, so no token is "
                f"sent: unset it (accept the license at {page} first), then rerun",
            )
        return DownloadError(
            "gated",
            f"{repo} is gated: accept the license at {page} and set HF_TOKEN"
            f"{_or_login()}, then rerun",
        )
    if status == 401 and "invalid credentials" in msg.lower():
        return DownloadError(
            "auth",
            f"the Hugging Face token was refused (401 from {urlsplit(url).netloc}): it is invalid "
            "or expired; create a new one at https://huggingface.co/settings/tokens and set "
            f"HF_TOKEN{_or_login()}",
        )
    if code == "RepoNotFound" or (status == 401 and not code):
        extra = "" if token else f"; if it is private or gated, set HF_TOKEN{_or_login()}"
        return DownloadError("not_found", f"repository {repo} not found ({status}){extra}")
    if code == "RevisionNotFound":
        return DownloadError("not_found", f"revision not found in {repo} for {path} (404)")
    if status == 404:
        return DownloadError(
            "not_found", f"{path} not found in {repo} (404); the catalog entry may be outdated"
        )
    if status == 403:
        why = redact(msg, (token,) if token else ()) or "access denied"
        return DownloadError(
            "auth", f"access to {repo}/{path} refused (403: {why}); check the token's permissions"
        )
    if status == 400:
        return DownloadError("protocol", f"the Hub refused the request for {repo}/{path} (400)")
    return DownloadError(
        "network",
        f"unexpected answer {status} from {urlsplit(url).netloc} for {repo}/{path}",
        resumable=True,
    )


async def head(
    client: httpx.AsyncClient,
    url: str,
    token: str | None,
    *,
    retries: int = 4,
    backoff: float = 1.0,
    on_wait: Callable[[float], None] | None = None,
    on_retry: Callable[[Retry], None] | None = None,
    hub: str | None = None,
) -> HubMeta:
    """HEAD the resolve URL; follow same-origin redirects only; return the file's metadata.

    ``hub``: the file's own catalog URL when ``url`` is one of its mirrors (the token goes to
    the Hub's origin only, never to a mirror's: :func:`may_send_token`); None: ``url`` is it.

    ``on_retry(retry)`` is told of every answer (408/429/5xx) or connection failure that will
    be retried.

    ``on_wait(seconds)`` is told before a wait the Hub asked for (``Retry-After``) of more than
    a few seconds, and ``on_wait(0)`` when it is over, so a person sees why nothing moves."""
    if offline():  # HF_HUB_OFFLINE: not even a HEAD
        raise DownloadError(
            "offline", offline_message(f"cannot ask the Hub about {path_in_repo(url)}")
        )
    if token and token_problem(token):  # it could not even go into a header
        raise DownloadError("auth", f"the Hugging Face token {token_problem(token)}")
    home = origin(url)
    hub_url = url if hub is None else hub
    attempt = 0
    current = url
    hops = 0
    # HF_HUB_ETAG_TIMEOUT bounds each HEAD (connect and answer); a server that does not answer
    # gets one more try, and no new try starts after two timeouts' worth of time: a dead
    # server fails in ~2 x HF_HUB_ETAG_TIMEOUT, not after minutes of retries
    per_try = etag_timeout()
    deadline = time.monotonic() + 2 * per_try
    while True:
        headers = {"Accept-Encoding": "identity"}
        if token and may_send_token(hub_url, current):
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = await client.head(current, headers=headers, timeout=per_try)
        except TRANSIENT_EXC as e:
            if tls_failure(e) is not None:
                raise tls_error(current, e) from None
            attempt += 1
            pause = backoff * 2 ** (attempt - 1)
            if attempt > retries or time.monotonic() + pause >= deadline:
                raise network_error(current, e, token) from None
            if on_retry is not None:
                at = time.monotonic() + pause
                on_retry(Retry(exc_reason(e), attempt, retries + 1, at))
            await asyncio.sleep(pause)
            continue
        status = resp.status_code
        if status in RETRY_STATUS:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    "network",
                    f"the Hub kept answering HTTP {status} for {path_in_repo(url)} ({attempt} "
                    "attempts); rerun later",
                    resumable=True,
                )
            pause = retry_after(resp, backoff * 2 ** (attempt - 1))
            if on_retry is not None:
                asked = "retry-after" in resp.headers
                at = time.monotonic() + pause
                on_retry(Retry(status_reason(status), attempt, retries + 1, at, status, asked))
            await wait_noted(pause, on_wait)
            continue
        if 300 <= status < 400 and "location" in resp.headers:
            loc = urljoin(current, resp.headers["location"])
            bad = redirect_problem(current, loc)
            if bad is not None:
                raise DownloadError(
                    "protocol",
                    f"{urlsplit(current).netloc} redirected the download of {path_in_repo(url)} "
                    f"{bad} - {redact_url(loc)}; refused, not retried. Is HF_ENDPOINT, a proxy "
                    "or the catalog entry pointing somewhere else?",
                )
            if _downgrade(current, loc):
                raise DownloadError(
                    "protocol",
                    f"{urlsplit(current).hostname} redirected the download of "
                    f"{path_in_repo(url)} from https to plain http ({redact_url(loc)}); refused: "
                    "the token and the signed download URL never travel in clear. Is a proxy or "
                    "mirror (HF_ENDPOINT) downgrading the connection?",
                )
            if origin(loc) == home and not _has_linked(resp):
                # relative/same-origin redirect (renamed repo, resolve-cache): follow it
                hops += 1
                if hops > 5:
                    raise DownloadError(
                        "protocol",
                        f"{urlsplit(url).netloc} redirected {hops - 1} times without reaching "
                        f"{path_in_repo(url)} (a redirect loop: last to {redact_url(loc)})",
                    )
                current = loc
                continue
            return _meta(resp, url, loc, same_origin=may_send_token(hub_url, loc))
        if status == 200:
            return _meta(resp, url, current, same_origin=may_send_token(hub_url, current))
        if token and "Authorization" not in headers and status in (401, 403):
            # a mirror (or anything that is not the Hub) asks for credentials: it never gets the
            # Hugging Face token, and the Hub's "set HF_TOKEN" advice would be wrong
            raise DownloadError(
                "auth",
                f"{urlsplit(current).netloc} refused {path_in_repo(url)} ({status}: it wants a "
                "login); the Hugging Face token is sent to the Hub only, never to a mirror",
            )
        raise hub_error(resp, url, token)


#: a wait the server asked for longer than this is shown to the person
NOTE_WAIT = 3.0


async def wait_noted(seconds: float, on_wait: Callable[[float], None] | None) -> None:
    """Sleep ``seconds``; a long one is announced through ``on_wait`` (and cleared after)."""
    if on_wait is None or seconds < NOTE_WAIT:
        await asyncio.sleep(seconds)
        return
    on_wait(seconds)
    try:
        await asyncio.sleep(seconds)
    finally:
        on_wait(0.0)


def wait_note(seconds: float) -> str:
    """The words for a server-requested wait (``Retry-After``)."""
    until = time.strftime("%H:%M:%S", time.localtime(time.time() + seconds))
    return f"the server asked to wait {seconds:.0f} s (Retry-After); retrying at {until}"


def _has_linked(resp: httpx.Response) -> bool:
    return "x-linked-size" in resp.headers


def _meta(resp: httpx.Response, url: str, location: str, *, same_origin: bool) -> HubMeta:
    h = resp.headers
    size: int | None = None
    if h.get("x-linked-size"):
        try:
            size = int(h["x-linked-size"])
        except ValueError:
            size = None
    elif not resp.is_redirect and h.get("content-length"):
        with contextlib.suppress(ValueError):
            size = int(h["content-length"])  # only for a 200, never the body of a 3xx
    if size is not None and size <= 0:
        # a model file is never empty (the catalog requires a positive size): a mirror or proxy
        # that answers for the Hub and knows nothing of the file
        how = "X-Linked-Size" if h.get("x-linked-size") else "Content-Length"
        raise DownloadError(
            "protocol",
            f"{urlsplit(url).netloc} says {path_in_repo(url)} has {size} bytes ({how}: "
            f"{size}); refused, nothing was downloaded. Is HF_ENDPOINT or a proxy answering "
            "for the Hub?",
        )
    if size is None:
        raise DownloadError(
            "protocol",
            f"{redact_url(url)} did not announce a size (no X-Linked-Size): is HF_ENDPOINT or a "
            "proxy rewriting the Hub's answers?",
        )
    etag = (h.get("x-linked-etag") or h.get("etag") or "").strip()
    etag = etag.removeprefix("W/").strip('"').lower()
    sha = etag if _SHA256.match(etag) else None
    return HubMeta(
        resolve_url=redact_url(url).replace("?<redacted>", ""),
        location=location,
        size=size,
        sha256=sha,
        revision=h.get("x-repo-commit"),
        same_origin=same_origin,
    )
