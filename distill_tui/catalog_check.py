"""Check the runtime catalog against the Hub (``distill catalog check``). No textual import.

Every source of every file (``CatalogFile.sources``: downloadUrl, then the mirrors) gets one
HEAD of its resolve URL (:func:`distill_tui.downloads.hub.head`; a URL shared by several
entries, like a VAE, is asked once). The answers are compared with what the catalog says:

- a source that answers with other bytes than the catalog's sha256 (or, for an exact catalog
  size, another size) is a problem;
- a file is fine when at least one source serves it: a gated, missing or unreachable source
  next to a good one is a note, not a problem (the download falls through to the next one);
- a file no source serves (all missing, gated without an approved token, unreachable) is a
  problem: without a token, a gated-only file counts as not reachable.

:func:`record_exact` writes what the Hub said (exact size, sha256, revision) into the user's
catalog copy, only for files without problems and never over a value that contradicts it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from distill_tui.atomic import atomic_write_json
from distill_tui.catalog import (
    HF_DEFAULT_ENDPOINT,
    Catalog,
    CatalogError,
    CatalogFile,
    CatalogModel,
    parse_catalog,
)
from distill_tui.jsonfile import loads as load_json
from distill_tui.redact import redact
from distill_tui.safepaths import is_commit

if TYPE_CHECKING:
    import httpx

#: HEADs in flight at once
CONCURRENCY = 8
#: seconds one source may take, its retries included
DEFAULT_TIMEOUT = 30.0

_CTRL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

GATED_NO_TOKEN = "gated (needs a token + accepted license)"
HF_PAGE = "https://huggingface.co"


def safe(text: object) -> str:
    """Outside text (catalog names, server messages) with control characters shown, not sent."""

    def show(m: re.Match[str]) -> str:
        n = ord(m.group(0))
        return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"

    return _CTRL.sub(show, str(text))


def hub_origin() -> str:
    """``scheme://host[:port]`` of the Hub (``HF_ENDPOINT`` or huggingface.co): the only origin
    the token is sent to."""
    return _origin((os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/"))


def _origin(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme.lower()}://{p.netloc.lower()}"


def repo_and_path(url: str) -> tuple[str | None, str]:
    m = re.search(r"^/(.+?/[^/]+)/resolve/[^/]+/(.+)$", urlsplit(url).path)
    if m:
        return m.group(1), m.group(2)
    return None, urlsplit(url).path


# ---- answers -----------------------------------------------------------------------------


@dataclass
class Answer:
    """What the Hub said about one URL.

    status: ok | missing | gated | denied | unreachable | error
    """

    url: str
    status: str
    message: str | None = None
    size: int | None = None
    sha256: str | None = None
    revision: str | None = None
    host: str = ""


def _network_reason(exc: BaseException) -> str:
    """'connection refused' / 'unknown host' / 'timed out' from the httpx error behind ``exc``."""
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(f"{type(x).__name__}: {x}" for x in seen).lower()
    if "refused" in text:
        return "connection refused"
    if any(
        k in text
        for k in (
            "name or service not known",
            "nodename nor servname",
            "name resolution",
            "getaddrinfo",
            "no address associated",
        )
    ):
        return "unknown host (DNS lookup failed)"
    if "timeout" in text or "timed out" in text:
        return "timed out"
    if "unreachable" in text:
        return "network unreachable"
    if "certificate" in text:
        return "its TLS certificate was rejected"
    msg = str(exc).removesuffix("; rerun to resume")
    return re.sub(r"^network error talking to [^:]+(:\d+)?[^:]*: ", "", msg)


async def ask(client: httpx.AsyncClient, url: str, token: str | None, timeout: float) -> Answer:
    """One HEAD (with head()'s few retries), bounded by ``timeout`` seconds in all."""
    from distill_tui.downloads.errors import DownloadError
    from distill_tui.downloads.hub import head

    host = urlsplit(url).netloc
    secrets = (token,) if token else ()
    try:
        meta = await asyncio.wait_for(head(client, url, token, retries=2, backoff=0.5), timeout)
    except TimeoutError:
        return Answer(url, "unreachable", f"no answer from {host} within {timeout:g} s", host=host)
    except DownloadError as e:
        msg = redact(e.message, secrets)
        if e.kind == "gated":
            status = "gated"
            if not token:
                repo = repo_and_path(url)[0] or host
                msg = (
                    f"{GATED_NO_TOKEN}: accept the license at {HF_PAGE}/{repo}, then set "
                    "HF_TOKEN or run `hf auth login`"
                )
        elif e.kind == "not_found":
            status = "missing"
        elif e.kind == "auth":
            status = "denied"
        elif e.kind == "network" and msg.startswith("network error"):
            status, msg = "unreachable", f"cannot reach {host}: {_network_reason(e)}"
        else:
            status = "error"
        return Answer(url, status, msg, host=host)
    except Exception as e:  # an answer head() does not map (malformed headers...): one line
        return Answer(url, "error", redact(f"{type(e).__name__}: {e}", secrets), host=host)
    # X-Repo-Commit is a commit id: anything else (``..``, a path) is not recorded, it would
    # turn every later download of the file into another URL (a 404, or worse)
    revision = meta.revision if is_commit(meta.revision) else None
    return Answer(url, "ok", None, meta.size, meta.sha256, revision, host=host)


async def ask_all(
    urls: list[str],
    token: str | None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = CONCURRENCY,
) -> dict[str, Answer]:
    """HEAD every URL once, ``concurrency`` at a time; the token goes to the Hub origin only."""
    import httpx

    from distill_tui.downloads.hub import new_client

    origin = hub_origin()
    sem = asyncio.Semaphore(concurrency)
    client = new_client(stall_timeout=min(timeout, 20.0), connections=max(1, concurrency // 2))
    client.timeout = httpx.Timeout(
        connect=min(timeout, 10.0), read=min(timeout, 20.0), write=10.0, pool=timeout
    )

    async def one(url: str) -> Answer:
        async with sem:
            tok = token if _origin(url) == origin else None
            return await ask(client, url, tok, timeout)

    try:
        unique = list(dict.fromkeys(urls))
        answers = await asyncio.gather(*(one(u) for u in unique))
    finally:
        await client.aclose()
    return dict(zip(unique, answers, strict=True))


# ---- comparison --------------------------------------------------------------------------


@dataclass
class SourceCheck:
    url: str
    role: str  # primary | mirror
    answer: Answer
    verdict: str  # ok | differs | missing | gated | denied | unreachable | error
    problems: list[str] = field(default_factory=list)

    @property
    def repo(self) -> str | None:
        return repo_and_path(self.url)[0]

    @property
    def path(self) -> str:
        return repo_and_path(self.url)[1]


@dataclass
class FileCheck:
    model_id: str
    component: str
    quant_id: str | None
    entry: CatalogFile
    sources: list[SourceCheck]
    #: problems of the file as a whole (no source serves it, sources disagree)
    own_problems: list[str] = field(default_factory=list)
    #: which source serves the file when another one does not (the table shows the source's
    #: own message instead)
    fallback_notes: list[str] = field(default_factory=list)
    own_notes: list[str] = field(default_factory=list)
    #: exact values to record (``--write``): only for a file without problems
    exact_size: int | None = None
    exact_sha256: str | None = None
    revision: str | None = None

    @property
    def where(self) -> str:
        return f"{self.model_id} {self.label} ({self.entry.file})"

    @property
    def problems(self) -> list[str]:
        """Every problem, each naming the model, the file and (for a source) the source."""
        out = [
            f"{self.where}: {s.role} {s.repo or s.answer.host}: {p}"
            for s in self.sources
            for p in s.problems
        ]
        return out + [f"{self.where}: {p}" for p in self.own_problems]

    @property
    def notes(self) -> list[str]:
        return self.fallback_notes + self.own_notes

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def served(self) -> bool:
        """At least one source serves the file with the catalog's bytes."""
        return any(s.verdict == "ok" for s in self.sources)

    @property
    def label(self) -> str:
        comp = {"textEncoder": "text enc"}  # a short word: the table fits 80 columns
        return f"{comp.get(self.component, self.component)} {self.quant_id or ''}".strip()

    @property
    def to_record(self) -> dict[str, object]:
        """Fields ``--write`` would change: {"size", "sha256", "revision"} (some of them)."""
        if not self.ok:
            return {}
        e = self.entry
        out: dict[str, object] = {}
        if self.exact_size is not None and (e.size_estimated or e.size != self.exact_size):
            out["size"] = self.exact_size
        if self.exact_sha256 and not e.sha256:
            out["sha256"] = self.exact_sha256
        if self.revision and self.revision != e.revision:
            out["revision"] = self.revision
        return out


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def evaluate(
    model: CatalogModel,
    component: str,
    quant_id: str | None,
    entry: CatalogFile,
    answers: dict[str, Answer],
) -> FileCheck:
    sources: list[SourceCheck] = []
    for i, url in enumerate(entry.sources):
        a = answers[url]
        role = "primary" if i == 0 else "mirror"
        sc = SourceCheck(url, role, a, a.status)
        if a.status == "ok":
            if entry.sha256 and a.sha256 and a.sha256 != entry.sha256:
                what = "serves other bytes" if role == "mirror" else "sha256 differs"
                sc.problems.append(
                    f"{what}: the Hub's sha256 is {_short(a.sha256)}, the catalog's "
                    f"{_short(entry.sha256)}"
                )
            if not entry.size_estimated and a.size is not None and a.size != entry.size:
                sc.problems.append(
                    f"size differs: the Hub says {a.size:,} B, the catalog {entry.size:,} B"
                )
            if sc.problems:
                sc.verdict = "differs"
        sources.append(sc)
    fc = FileCheck(model.id, component, quant_id, entry, sources)
    good = [s for s in sources if s.verdict == "ok"]
    # sources that answered must agree with each other too (sha256, then size)
    if (
        len({s.answer.sha256 for s in good if s.answer.sha256}) > 1
        or len({s.answer.size for s in good}) > 1
    ):
        fc.own_problems.append("its sources serve different bytes (sha256 or size differ)")
    if not good and not any(s.verdict == "differs" for s in sources):
        why = "; ".join(f"{s.role}: {s.answer.message or s.verdict}" for s in sources)
        if all(s.verdict == "missing" for s in sources):
            fc.own_problems.append(f"missing on the Hub ({why})")
        else:
            fc.own_problems.append(f"no source serves it ({why})")
    best = good[0] if good else None
    if best is None:
        return fc
    for s in sources:
        if s.verdict not in ("ok", "differs"):
            fc.fallback_notes.append(
                f"{s.role} {s.repo or s.answer.host} is {s.verdict}: the file comes from "
                f"{best.role} {best.repo or best.answer.host}"
            )
    if best.answer.sha256 is None and entry.sha256 is None:
        fc.own_notes.append("no sha256 from the Hub or the catalog: its bytes cannot be verified")
    elif best.answer.sha256 is None:
        fc.own_notes.append(f"the Hub gives no sha256 for {best.role} {best.repo}: not compared")
    if fc.ok:
        fc.exact_size = best.answer.size
        fc.exact_sha256 = best.answer.sha256
        primary = sources[0]
        if primary.verdict == "ok" and primary.answer.revision:
            fc.revision = primary.answer.revision
            if entry.revision and entry.revision != primary.answer.revision:
                fc.own_notes.append(
                    f"{primary.repo} moved from revision {entry.revision[:12]} to "
                    f"{primary.answer.revision[:12]} (this file is unchanged)"
                )
    return fc


@dataclass
class CheckReport:
    endpoint: str
    token_present: bool
    files: list[FileCheck]
    answers: dict[str, Answer]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def unreachable(self) -> str | None:
        """One line when no source could be reached at all (endpoint down, offline, DNS)."""
        if not self.answers or any(a.status != "unreachable" for a in self.answers.values()):
            return None
        hosts: dict[str, str] = {}
        for a in self.answers.values():
            hosts.setdefault(a.host, a.message or f"cannot reach {a.host}")
        return "; ".join(hosts.values()) + (
            " - check the network, the proxy or HF_ENDPOINT (nothing was checked)"
        )


def check_catalog(
    catalog: Catalog,
    *,
    model_id: str | None = None,
    token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> CheckReport:
    """HEAD every source of every file (of ``model_id`` only, when given) and compare."""
    models = [catalog.require(model_id)] if model_id else list(catalog.models)
    entries = [(m, comp, qid, f) for m in models for comp, qid, f in m.files()]
    urls = [u for *_, f in entries for u in f.sources]
    answers = asyncio.run(ask_all(urls, token, timeout=timeout))
    files = [evaluate(m, comp, qid, f, answers) for m, comp, qid, f in entries]
    ep = os.environ.get("HF_ENDPOINT") or ""
    return CheckReport(ep.rstrip("/") or HF_DEFAULT_ENDPOINT, bool(token), files, answers)


# ---- --write -----------------------------------------------------------------------------


@dataclass
class WriteResult:
    path: Path
    sizes: int = 0
    sha256: int = 0
    revisions: int = 0
    not_found: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.sizes + self.sha256 + self.revisions


def _moved(url: object, endpoint: str | None) -> object:
    """``url`` as the runtime catalog has it (``HF_ENDPOINT`` applied)."""
    ep = (endpoint or "").rstrip("/")
    if isinstance(url, str) and ep and url.startswith(HF_DEFAULT_ENDPOINT + "/"):
        return ep + url[len(HF_DEFAULT_ENDPOINT) :]
    return url


def _raw_entry(model: dict, role: str, quant_id: str | None) -> object:
    """The raw JSON entry of one file of a raw catalog model: a v3 component (by role: its
    quant, or its one ``file``), or a v2 model's ``diffusion`` / ``textEncoder`` quant or
    ``vae`` file."""
    comps = model.get("components")
    if isinstance(comps, list):
        section = next((c for c in comps if isinstance(c, dict) and c.get("role") == role), None)
        if section is None:
            return None
        if quant_id is None:
            return section.get("file")
    elif quant_id is None:
        return model.get(role)  # v2: the VAE's file entry
    else:
        section = model.get(role)
    if not isinstance(section, dict) or not isinstance(section.get("quants"), list):
        return None
    return next(
        (q for q in section["quants"] if isinstance(q, dict) and q.get("id") == quant_id), None
    )


def record_exact(user_path: Path, files: list[FileCheck]) -> WriteResult:
    """Record exact sizes, sha256 and revisions in the user catalog copy (atomic write).

    Entries are matched by model id, component, quant id and file name, and only when their
    downloadUrl is the URL that was checked (so a value learnt from one URL never lands on an
    entry that points elsewhere). The result is validated before it replaces the file.
    """
    endpoint = os.environ.get("HF_ENDPOINT")
    result = WriteResult(user_path)
    try:
        raw = load_json(user_path.read_bytes())
    except FileNotFoundError:
        raise CatalogError(f"{user_path}: no user catalog copy to write to") from None
    except (OSError, ValueError) as e:
        raise CatalogError(f"{user_path}: cannot read: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("models", []), list):
        raise CatalogError(f"{user_path}: $: expected a catalog object")
    models = {m.get("id"): m for m in raw.get("models", []) if isinstance(m, dict)}
    for fc in files:
        change = fc.to_record
        if not change:
            continue
        m = models.get(fc.model_id)
        entry = _raw_entry(m, fc.component, fc.quant_id) if isinstance(m, dict) else None
        if (
            not isinstance(entry, dict)
            or entry.get("file") != fc.entry.file
            or _moved(entry.get("downloadUrl"), endpoint) != fc.entry.download_url
        ):
            result.not_found.append(f"{fc.model_id} {fc.label}")
            continue
        if "size" in change:
            entry["size"] = change["size"]
            entry.pop("sizeEstimated", None)
            result.sizes += 1
        if "sha256" in change:
            entry["sha256"] = change["sha256"]
            result.sha256 += 1
        if "revision" in change:
            entry["revision"] = change["revision"]
            result.revisions += 1
    if result.changed:
        parse_catalog(json.dumps(raw), user_path)  # keep the schema: refuse to write otherwise
        atomic_write_json(user_path, raw)
    return result
