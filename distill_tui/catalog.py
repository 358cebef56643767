"""The model catalog: pydantic schema, validation rules, user copy layering.

No textual import here: the CLI and the engine child use this module too.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distill_tui.atomic import atomic_write_json, move_aside
from distill_tui.jsonfile import JSONFileError
from distill_tui.jsonfile import loads as load_json
from distill_tui.safepaths import file_key, is_commit, rel_problem

if TYPE_CHECKING:
    from distill_tui.families import Family

log = logging.getLogger(__name__)

HF_DEFAULT_ENDPOINT = "https://huggingface.co"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DRIVE = re.compile(r"^[A-Za-z]:")

COMPONENT_LABELS: dict[str, str] = {
    "diffusion": "Diffusion Model",
    "textEncoder": "Text Encoder",
    "vae": "VAE",
    "upscaler": "Upscaler",
}


#: the most models a catalog may hold (README, "Where files live"): every screen and command stays
#: responsive up to it (bench/model_manager_scale.py); a larger file is refused, not read slowly
MAX_MODELS = 1000
#: a catalog file larger than this is refused before it is read (1,000 models are ~4 MB)
MAX_CATALOG_BYTES = 32_000_000


class CatalogError(Exception):
    """The catalog file is unusable. The message names the file, the JSON path and the problem."""


_REF = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,99}$")


def revision_problem(rev: object) -> str | None:
    """None for a revision that can stand in ``resolve/<revision>/``: a 40-hex commit, or a
    plain ref name (a branch or tag: letters, digits, ``._-``, starting with a letter or
    digit, no ``..``, not ending in ``.`` or ``.lock``). Anything else (``..``, ``.``, a
    path) would change which URL is asked: every download of the file would 404 or worse."""
    if not isinstance(rev, str):
        return "must be a text revision (a 40-hex commit or a branch/tag name)"
    if is_commit(rev):
        return None
    if not _REF.match(rev) or ".." in rev or rev.endswith((".", ".lock")):
        shown = rev[:60].encode("unicode_escape").decode()
        return (
            f"revision {shown!r} is not a 40-hex commit nor a plain branch/tag name "
            "(letters, digits, '._-'; no '..')"
        )
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _under_user_endpoint(url: str) -> bool:
    """``url`` is on the origin of the user's own ``HF_ENDPOINT`` (an http LAN mirror is the
    user's explicit choice; the token still goes only to that origin: downloads.hub)."""
    from distill_tui.hftoken import endpoint_origin

    ep = endpoint_origin()
    if ep is None:
        return False
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port) == ep


def _check_url(v: str) -> str:
    parts = urlsplit(v)
    host = parts.hostname or ""
    if "@" in parts.netloc:  # credentials would be sent as Basic auth and printed by listings
        raise ValueError(
            "carries credentials (user:...@, not shown): a catalog URL names no login; the "
            "Hugging Face token goes in HF_TOKEN (or `hf auth login`)"
        )
    if parts.scheme == "https" and host:
        return v
    if parts.scheme == "http" and host and (_is_loopback(host) or _under_user_endpoint(v)):
        return v
    if parts.scheme == "http":
        raise ValueError(
            f"plain http is allowed only for loopback hosts and the HF_ENDPOINT you set, got "
            f"{host!r}"
        )
    raise ValueError(f"must be an https URL, got scheme {parts.scheme or 'none'!r}")


def _ours_problem(v: str) -> str | None:
    """A catalog file may not be (or look like) one of distill's own files in the models
    dir: the inventory, a partial, a sidecar, a lock, an atomic-write temp file (``models
    clean`` deletes those), nor hold control characters (NUL cuts a path short)."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in v):
        return f"has control characters: {v.encode('unicode_escape').decode()!r}"
    parts = PurePosixPath(v.replace("\\", "/")).parts
    name = parts[-1].lower() if parts else ""
    if len(parts) == 1 and (name.startswith(("installed.json", ".installed.json"))):
        return f"{v!r} collides with distill's inventory (installed.json)"
    for suffix in (".part", ".part.json", ".lock"):
        if name.endswith(suffix):
            return (
                f"{v!r} ends with {suffix!r}, which distill uses for its own partial "
                "downloads and locks"
            )
    if name.startswith(".") and name.endswith(".tmp"):
        return f"{v!r} looks like one of distill's temporary files (.*.tmp)"
    return None


def model_file_problem(v: object) -> str | None:
    """None when ``v`` may name a model file in the models dir (a catalog ``file``, an
    ``installed.json`` key): a clean relative path (safepaths.rel_problem) that is not one of
    distill's own files. The inventory uses it for the keys it reads back."""
    if not isinstance(v, str):
        return "is not text"
    problem = rel_problem(v)
    if problem:
        return problem.replace("inside its folder", "inside the model directory")
    if PureWindowsPath(v).is_absolute():
        return f"must be a relative path, got absolute path {v!r}"
    return _ours_problem(v)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class CatalogFile(_Model):
    """One downloadable file. ``file`` is relative to the model directory."""

    file: str
    size: int = Field(gt=0, description="Size in bytes")
    download_url: str = Field(alias="downloadUrl")
    sha256: str | None = None
    #: other URLs that serve the same bytes (same sha256), tried in order after downloadUrl
    mirrors: tuple[str, ...] = ()
    #: ``size`` is an estimate (the exact size is learnt from the Hub at download time)
    size_estimated: bool = Field(default=False, alias="sizeEstimated")
    #: the Hub revision (commit) of downloadUrl this entry pins: downloads and `distill models
    #: check` ask ``resolve/<revision>/`` instead of the URL's own (``main``); written by
    #: ``distill catalog check --write``. A URL with ``resolve/<commit>`` is pinned by itself.
    revision: str | None = None

    @field_validator("file")
    @classmethod
    def _relative_inside(cls, v: str) -> str:
        """One canonical spelling (safepaths.rel_problem): ``diffusion//x.gguf``,
        ``diffusion/./x.gguf`` or ``x.gguf.`` would name (on some filesystem) the file of
        another entry while comparing unequal as strings: refused, with the clean spelling."""
        if not v or v.strip() != v:
            raise ValueError("must be a non-empty relative path without surrounding spaces")
        if v.startswith(("/", "\\")) or _DRIVE.match(v) or PureWindowsPath(v).is_absolute():
            raise ValueError(f"must be a relative path, got absolute path {v!r}")
        problem = rel_problem(v)
        if problem:
            raise ValueError(problem.replace("inside its folder", "inside the model directory"))
        return v

    @field_validator("revision")
    @classmethod
    def _revision(cls, v: str | None) -> str | None:
        if v is None:
            return None
        problem = revision_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("file")
    @classmethod
    def _not_ours(cls, v: str) -> str:
        problem = _ours_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("download_url")
    @classmethod
    def _url_scheme(cls, v: str) -> str:
        return _check_url(v)

    @field_validator("mirrors")
    @classmethod
    def _mirror_urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_url(u) for u in v)

    @property
    def resolve_url(self) -> str:
        """``downloadUrl`` at the pinned ``revision`` (a Hub resolve URL; others as they are)."""
        if not self.revision:
            return self.download_url
        parts = urlsplit(self.download_url)
        path = re.sub(r"/resolve/[^/]+/", f"/resolve/{self.revision}/", parts.path, count=1)
        return parts._replace(path=path).geturl()

    @property
    def pinned_revision(self) -> str | None:
        """The revision this file is pinned to: ``revision``, or a commit in the URL itself."""
        if self.revision:
            return self.revision
        m = re.search(r"/resolve/([0-9a-f]{40})/", urlsplit(self.download_url).path)
        return m.group(1) if m else None

    @property
    def sources(self) -> tuple[str, ...]:
        """Every URL that serves this file, in the order they are tried (downloadUrl at its
        pinned revision first)."""
        first = self.resolve_url
        return (first, *(m for m in self.mirrors if m not in (self.download_url, first)))

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.lower()
        if not _SHA256.match(v):
            raise ValueError("must be 64 hexadecimal characters")
        return v

    @model_validator(mode="after")
    def _mirrors_need_sha(self) -> CatalogFile:
        if self.mirrors and not self.sha256:
            raise ValueError(
                "a file with mirrors needs a sha256 (it proves every source serves the same bytes)"
            )
        return self

    @property
    def repo_id(self) -> str | None:
        """``owner/name`` for a Hub resolve URL, else None."""
        m = re.search(r"/([^/]+/[^/]+)/resolve/", urlsplit(self.download_url).path)
        return m.group(1) if m else None


class Quant(CatalogFile):
    id: str = Field(min_length=1)
    label: str
    description: str = ""
    min_vram_gb: float | None = Field(default=None, alias="minVramGb")


class Recommended(_Model):
    steps: int = Field(default=4, ge=1, le=200)
    cfg_scale: float = Field(default=1.0, alias="cfgScale", ge=0)
    sampler: str = "euler"
    scheduler: str = "default"
    width: int = Field(default=1024, ge=16)
    height: int = Field(default=1024, ge=16)
    #: sd.cpp's flow shift; None: the engine's own ("auto": 3.0 for Z-Image)
    flow_shift: float | None = Field(default=None, alias="flowShift")
    #: the recommended quant of each component that has quants: {role: quant id}
    quants: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _v2_quants(cls, data: Any) -> Any:
        """v2 catalogs name the two recommended quants as their own keys."""
        if isinstance(data, dict) and ("diffusionQuant" in data or "textEncoderQuant" in data):
            data = dict(data)
            quants = dict(data.get("quants") or {})
            for key, role in (("diffusionQuant", "diffusion"), ("textEncoderQuant", "textEncoder")):
                v = data.pop(key, None)
                if v is not None:
                    quants.setdefault(role, v)
            data["quants"] = quants
        return data

    @property
    def diffusion_quant(self) -> str | None:
        return self.quants.get("diffusion")

    @property
    def text_encoder_quant(self) -> str | None:
        return self.quants.get("textEncoder")


class License(_Model):
    name: str
    url: str | None = None
    note: str = ""
    #: False: the weights may not be used commercially (shown on the model's card)
    commercial: bool | None = None


_ROLE = r"^[a-z][A-Za-z0-9]{0,39}$"


class Component(_Model):
    """One part of a model: a role (``diffusion``, ``textEncoder``, ``vae``, ``upscaler`` ...)
    loaded into one engine slot, with either quants (a radio set: one is active) or one file.
    The same file may be a component of several models (one copy on disk, shown as shared)."""

    role: str = Field(pattern=_ROLE)
    #: the engine slot (a LoadRequest field such as ``llm_path``); None: the family's
    slot: str | None = None
    name: str | None = None
    quants: list[Quant] | None = None
    file: CatalogFile | None = None

    @model_validator(mode="after")
    def _quants_or_file(self) -> Component:
        if (self.quants is None) == (self.file is None):
            raise ValueError(
                f"component {self.role!r} needs either 'quants' (a list) or 'file' (one file)"
            )
        if self.quants is not None:
            if not self.quants:
                raise ValueError(f"component {self.role!r}: 'quants' is empty")
            seen: set[str] = set()
            for q in self.quants:
                if q.id in seen:
                    raise ValueError(f"duplicate quant id {q.id!r}")
                seen.add(q.id)
        return self

    @property
    def has_quants(self) -> bool:
        return self.quants is not None

    def get(self, quant_id: str) -> Quant | None:
        return next((q for q in self.quants or () if q.id == quant_id), None)

    @property
    def ids(self) -> list[str]:
        return [q.id for q in self.quants or ()]

    @property
    def label(self) -> str:
        """How screens name the component: the role's label ("Text Encoder")."""
        return COMPONENT_LABELS.get(self.role, self.role)

    def files(self) -> Iterator[tuple[str | None, CatalogFile]]:
        if self.quants is not None:
            for q in self.quants:
                yield q.id, q
        elif self.file is not None:
            yield None, self.file

    def engine_slot(self, family_id: str) -> str:
        """The engine slot this component loads into: its own, else its family's."""
        if self.slot:
            return self.slot
        from distill_tui.families import family

        return family(family_id).slot(self.role)


def _v2_components(data: dict) -> dict:
    """A v2 model (``diffusion``/``textEncoder`` quant sections and a ``vae`` file) as v3
    components: the same roles, names and files."""
    data = dict(data)
    if not data.get("family"):  # v2 knew one family and left the field empty
        data["family"] = "flux2-klein"
    comps: list[dict] = []
    for key, role in (("diffusion", "diffusion"), ("textEncoder", "textEncoder")):
        sec = data.pop(key, None)
        if sec is None:
            continue
        if isinstance(sec, dict):
            comps.append({"role": role, **sec})
        else:  # not a section: left for validation to name (as a v3 component would be)
            comps.append({"role": role, "quants": sec})
    vae = data.pop("vae", None)
    if vae is not None:
        comps.append({"role": "vae", "file": vae})
    data["components"] = comps
    return data


class CatalogModel(_Model):
    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    name: str
    description: str = ""
    type: str = "image-generation"
    family: str = "flux2-klein"
    components: tuple[Component, ...] = Field(min_length=1)
    recommended: Recommended = Field(default_factory=Recommended)
    license: License | None = None
    #: the family's features, overridden for this model (e.g. a base model's negative prompt)
    features: tuple[str, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_v2(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and "components" not in data
            and ("diffusion" in data or "textEncoder" in data or "vae" in data)
        ):
            return _v2_components(data)
        return data

    @model_validator(mode="after")
    def _fits_family(self) -> CatalogModel:
        """The family table knows the family; the model's type and roles are its."""
        from distill_tui.families import FAMILIES, FEATURES

        spec = FAMILIES.get(self.family)
        if spec is None:
            raise ValueError(
                f"unknown family {self.family!r}; distill knows {', '.join(sorted(FAMILIES))}"
            )
        if self.type != spec.type:
            raise ValueError(f"family {self.family!r} is of type {spec.type!r}, not {self.type!r}")
        roles = [c.role for c in self.components]
        dup = next((r for r in roles if roles.count(r) > 1), None)
        if dup:
            raise ValueError(f"duplicate component role {dup!r}")
        known = {r.role for r in spec.roles}
        extra = [r for r in roles if r not in known]
        if extra:
            raise ValueError(
                f"family {self.family!r} has no component role {extra[0]!r} "
                f"(its roles: {', '.join(r.role for r in spec.roles)})"
            )
        missing = [r.role for r in spec.roles if r.required and r.role not in roles]
        if missing:
            raise ValueError(f"family {self.family!r} needs a {missing[0]!r} component")
        for c in self.components:
            if c.slot and c.slot != spec.slot(c.role):
                raise ValueError(
                    f"component {c.role!r}: slot {c.slot!r} is not where family "
                    f"{self.family!r} loads it ({spec.slot(c.role)!r})"
                )
        for f in self.features or ():
            if f not in FEATURES:
                raise ValueError(f"unknown feature {f!r}; known: {', '.join(sorted(FEATURES))}")
        for role in self.recommended.quants:
            comp = self.component(role)
            if comp is None or not comp.has_quants:
                raise ValueError(f"recommended quant for {role!r}, which has no quants")
        return self

    # ---- components --------------------------------------------------------------------
    def component(self, role: str) -> Component | None:
        return next((c for c in self.components if c.role == role), None)

    @property
    def roles(self) -> list[str]:
        return [c.role for c in self.components]

    @property
    def quant_roles(self) -> list[str]:
        """The roles with a quant choice (a radio set each), in catalog order."""
        return [c.role for c in self.components if c.has_quants]

    def section(self, component: str) -> Component:
        comp = self.component(component)
        if comp is None or not comp.has_quants:
            raise KeyError(component)
        return comp

    def default_quant(self, component: str) -> str:
        rec = self.recommended.quants.get(component)
        sec = self.section(component)
        if rec and sec.get(rec):
            return rec
        quants = sec.quants or []
        return quants[len(quants) // 2].id if len(quants) > 2 else quants[0].id

    def files(self) -> Iterator[tuple[str, str | None, CatalogFile]]:
        """Every file: (component role, quant id or None, file)."""
        for c in self.components:
            for qid, f in c.files():
                yield c.role, qid, f

    # ---- the family --------------------------------------------------------------------
    @property
    def spec(self) -> Family:
        from distill_tui.families import family

        return family(self.family)

    def has_feature(self, name: str) -> bool:
        if self.features is not None:
            return name in self.features
        return name in self.spec.features

    # ---- the trio of the image families (diffusion, text encoder, VAE) -----------------
    @property
    def diffusion(self) -> Component:
        return self.section("diffusion")

    @property
    def text_encoder(self) -> Component:
        return self.section("textEncoder")

    @property
    def vae(self) -> CatalogFile:
        comp = self.component("vae")
        if comp is None or comp.file is None:
            raise KeyError("vae")
        return comp.file

    @property
    def text_encoder_name(self) -> str:
        comp = self.component("textEncoder")
        return (comp.name if comp else None) or "Text Encoder"


class Catalog(_Model):
    catalog_version: int = Field(alias="catalogVersion", ge=1)
    models: list[CatalogModel]

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalog:
        seen: set[str] = set()
        for m in self.models:
            if m.id in seen:
                raise ValueError(f"duplicate model id {m.id!r}")
            seen.add(m.id)
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _one_file_one_source(cls, data: Any, handler: Any) -> Catalog:
        """Entries that share a local file must be the same file (the shared VAE): the same
        sha256, or - when a sha256 is missing - the same URL. A file path may not also be a
        directory of another file.

        Checked on catalog JSON (a file, HF_ENDPOINT's rewrite), not on catalogs built from
        already validated models (the merge of a user copy with the bundled catalog keeps the
        user's own models as they were)."""
        catalog = handler(data)
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
            return catalog
        # keyed by safepaths.file_key: "X.gguf" and "x.gguf" are one file on macOS/Windows
        where: dict[str, tuple[str, CatalogFile]] = {}
        for m in catalog.models:
            for comp, qid, f in m.files():
                label = f"{m.id} {comp}" + (f" {qid}" if qid else "")
                prev = where.setdefault(file_key(f.file), (label, f))
                if prev[1] is f:
                    continue
                other_label, other = prev
                if other.sha256 != f.sha256 or (
                    other.sha256 is None and other.download_url != f.download_url
                ):
                    what = "sha256" if other.sha256 != f.sha256 else "URLs and no sha256"
                    same = repr(f.file) if f.file == other.file else f"{f.file!r} / {other.file!r}"
                    raise ValueError(
                        f"{label} and {other_label} name the same file {same} with "
                        f"different {what}: one would overwrite the other"
                    )
        for path, (label, _f) in where.items():
            parts = PurePosixPath(path).parts
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent in where:
                    raise ValueError(
                        f"{label}: {_f.file!r} needs {where[parent][1].file!r} to be a "
                        f"directory, but it is the file of {where[parent][0]}"
                    )
        return catalog

    @cached_property
    def _by_id(self) -> dict[str, CatalogModel]:
        return {m.id: m for m in self.models}

    def get(self, model_id: str) -> CatalogModel | None:
        """The model of ``model_id`` (a dict lookup: screens ask this per card and per key,
        with up to 1,000 models)."""
        return self._by_id.get(model_id)

    def require(self, model_id: str) -> CatalogModel:
        m = self.get(model_id)
        if m is None:
            raise UnknownModelError(model_id, self.ids)
        return m

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.models]

    def of_type(self, kind: str) -> list[CatalogModel]:
        """The models of one type ("image-generation", "upscaler" ...), in catalog order."""
        return [m for m in self.models if m.type == kind]

    def users_of(self, path: str) -> list[CatalogModel]:
        """Every model that has ``path`` as one of its files (a shared text encoder, a VAE)."""
        key = file_key(path)
        return [m for m in self.models if any(file_key(f.file) == key for _r, _q, f in m.files())]

    def to_json(self) -> dict:
        """The catalog as JSON, with what each entry says and nothing more: a value an entry
        leaves out (a recommended step count) must still read as left out after a rewrite (the
        merge, HF_ENDPOINT), so the model's family default keeps applying."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)


class UnknownModelError(KeyError):
    def __init__(self, model_id: str, valid: list[str]):
        self.model_id = model_id
        self.valid = valid
        super().__init__(model_id)

    def __str__(self) -> str:
        return f"unknown model {self.model_id!r}; valid ids: {', '.join(self.valid) or '(none)'}"


class UnknownQuantError(KeyError):
    def __init__(self, model_id: str, component: str, quant_id: str, valid: list[str]):
        self.model_id, self.component, self.quant_id, self.valid = (
            model_id,
            component,
            quant_id,
            valid,
        )
        super().__init__(quant_id)

    def __str__(self) -> str:
        label = COMPONENT_LABELS.get(self.component, self.component).lower()
        return (
            f"unknown {label} quant {self.quant_id!r} for {self.model_id}; "
            f"valid: {', '.join(self.valid)}"
        )


def _format_loc(loc: tuple) -> str:
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _v2_keys(raw: object) -> dict[int, list[str]]:
    """For each v2-shaped model of a raw catalog, the v2 key of each migrated component (in
    the order :func:`_v2_components` makes them): errors then name the user's own JSON path."""
    out: dict[int, list[str]] = {}
    models = raw.get("models") if isinstance(raw, dict) else None
    for i, m in enumerate(models if isinstance(models, list) else ()):
        if isinstance(m, dict) and "components" not in m:
            keys = [k for k in ("diffusion", "textEncoder", "vae") if k in m]
            if keys:
                out[i] = keys
    return out


def _v2_loc(loc: tuple, v2: dict[int, list[str]]) -> tuple:
    """``$.models[0].components[2].file.size`` of a migrated v2 model as the user wrote it:
    ``$.models[0].vae.size``."""
    if len(loc) >= 4 and loc[0] == "models" and loc[2] == "components" and loc[1] in v2:
        keys = v2[loc[1]]
        j = loc[3]
        if isinstance(j, int) and j < len(keys):
            rest = loc[4:]
            if keys[j] == "vae" and rest[:1] == ("file",):
                rest = rest[1:]
            return ("models", loc[1], keys[j], *rest)
    return loc


def format_validation_error(source: Path | str, err: ValidationError, raw: object = None) -> str:
    v2 = _v2_keys(raw)
    lines = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {_format_loc(_v2_loc(tuple(e['loc']), v2))}: {msg}")
    return "\n".join(lines)


def parse_catalog(text: str | bytes, source: Path | str) -> Catalog:
    """Parse and validate catalog JSON; raise :class:`CatalogError` with file, path, problem."""
    try:
        raw = load_json(text)  # deep nesting, 1e400, NaN: a JSONFileError like bad syntax
    except JSONFileError as e:
        raise CatalogError(f"{source}: $: {e}") from None
    if not isinstance(raw, dict):
        raise CatalogError(f"{source}: $: expected a JSON object, got {type(raw).__name__}")
    models = raw.get("models")
    if isinstance(models, list) and len(models) > MAX_MODELS:  # before validating each one
        raise CatalogError(
            f"{source}: $.models: catalog has {len(models)} models; distill accepts at most "
            f"{MAX_MODELS}"
        )
    try:
        return Catalog.model_validate(raw)
    except ValidationError as e:
        raise CatalogError(format_validation_error(source, e, raw)) from None


def load_catalog_file(path: Path) -> Catalog:
    try:
        size = path.stat().st_size
        if size > MAX_CATALOG_BYTES:
            raise CatalogError(
                f"{path}: $: the file is {size / 1e6:,.0f} MB; distill reads catalogs of at most "
                f"{MAX_CATALOG_BYTES / 1e6:,.0f} MB ({MAX_MODELS} models)"
            )
        data = path.read_bytes()
    except OSError as e:
        raise CatalogError(f"{path}: cannot read: {e.strerror or e}") from None
    return parse_catalog(data, path)


def apply_endpoint(catalog: Catalog, endpoint: str | None) -> Catalog:
    """Rewrite the ``https://huggingface.co`` prefix of every URL (``HF_ENDPOINT``)."""
    if not endpoint:
        return catalog
    endpoint = endpoint.rstrip("/")
    if endpoint == HF_DEFAULT_ENDPOINT:
        return catalog
    raw = catalog.to_json()

    def move(url: object) -> object:
        if isinstance(url, str) and url.startswith(HF_DEFAULT_ENDPOINT + "/"):
            return endpoint + url[len(HF_DEFAULT_ENDPOINT) :]
        return url

    def fix(node: object) -> object:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "downloadUrl":
                    out[k] = move(v)
                elif k == "mirrors" and isinstance(v, list):
                    out[k] = [move(u) for u in v]
                else:
                    out[k] = fix(v)
            return out
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    try:
        return Catalog.model_validate(fix(raw))
    except ValidationError as e:
        raise CatalogError(format_validation_error(f"HF_ENDPOINT={endpoint}", e)) from None


def merge_catalogs(user: Catalog, bundled: Catalog, warnings: list[str] | None = None) -> Catalog:
    """Bundled models replace same-id user entries; user-only models are kept (after them) —
    unless one names a bundled model's file with other bytes (another sha256, or another URL
    where there is none): one download would overwrite the other, so that model is left out
    and a warning says why."""
    bundled_ids = set(bundled.ids)
    owners: dict[str, CatalogFile] = {}
    for m in bundled.models:
        for _c, _q, f in m.files():
            owners.setdefault(file_key(f.file), f)
    models = list(bundled.models)
    for m in user.models:
        if m.id in bundled_ids:
            continue
        clash = next(
            (
                f.file
                for _c, _q, f in m.files()
                if file_key(f.file) in owners
                and (
                    owners[file_key(f.file)].sha256 != f.sha256
                    or (
                        f.sha256 is None and owners[file_key(f.file)].download_url != f.download_url
                    )
                )
            ),
            None,
        )
        if clash is not None:
            if warnings is not None:
                warnings.append(
                    f"your catalog's model {m.id!r} names {clash!r}, a file of a bundled model, "
                    "with other bytes; it is left out (give it its own file names)"
                )
            continue
        models.append(m)
    return Catalog(catalogVersion=bundled.catalog_version, models=models)


@dataclass
class CatalogLoad:
    catalog: Catalog
    warnings: list[str] = field(default_factory=list)
    source: Path | None = None


def load_catalog(
    user_path: Path,
    bundled_path: Path | None = None,
    seed: bool = True,
) -> CatalogLoad:
    """The runtime catalog: the user copy, seeded/merged from the bundled one.

    - no user copy: seed it from the bundled catalog (when ``seed``);
    - user copy unparsable: move it aside (``.corrupt-<time>``), warn, use the bundled one;
    - bundled ``catalogVersion`` newer: merge bundled models in, keep user-added ones.
    """
    from distill_tui.resources import bundled_catalog_path

    bundled_path = bundled_path or bundled_catalog_path()
    bundled = load_catalog_file(bundled_path)  # a broken bundled catalog is a broken install
    warnings: list[str] = []
    catalog = bundled
    if user_path.exists():
        try:
            user = load_catalog_file(user_path)
        except CatalogError as e:
            try:
                moved = move_aside(user_path)
                warnings.append(
                    f"user catalog {user_path} is invalid and was moved aside to {moved.name}; "
                    f"using the bundled catalog. Problem: {str(e).splitlines()[0]}"
                )
            except OSError as oe:
                warnings.append(
                    f"user catalog {user_path} is invalid ({str(e).splitlines()[0]}) and could "
                    f"not be moved aside ({oe.strerror}); using the bundled catalog"
                )
            _try_seed(user_path, bundled, warnings) if seed else None
        else:
            if bundled.catalog_version > user.catalog_version:
                catalog = merge_catalogs(user, bundled, warnings)
                if seed:
                    _try_write(user_path, catalog, warnings)
            else:
                catalog = user
    elif seed:
        _try_seed(user_path, bundled, warnings)
    return CatalogLoad(apply_endpoint(catalog, os.environ.get("HF_ENDPOINT")), warnings, user_path)


def _try_seed(user_path: Path, bundled: Catalog, warnings: list[str]) -> None:
    _try_write(user_path, bundled, warnings)


def _try_write(user_path: Path, catalog: Catalog, warnings: list[str]) -> None:
    try:
        atomic_write_json(user_path, catalog.to_json())
    except OSError as e:
        warnings.append(f"could not write the user catalog {user_path}: {e.strerror or e}")
