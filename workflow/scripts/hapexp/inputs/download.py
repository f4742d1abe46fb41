"""Resumable, checksummed, atomic downloads of public inputs (config section `download`).

One entry of the config's ``download:`` mapping::

    download:
      geuvadis_expression:
        url: https://…/GD462.GeneQuantRPKM.50FN.samplename.resk10.txt.gz
        path: resources/geuvadis/GD462.GeneQuantRPKM.50FN.samplename.resk10.txt.gz
        md5: 0123…            # optional: md5 and/or sha256 of the bytes at `url`
        decompress: false     # true: gunzip after download (e.g. a .fa.gz to a .fa)
        faidx: false          # true: also write `<path>.fai` (FASTA)

Guarantees:

- The final path only ever holds a complete, verified file. Bytes arrive in
  ``<path>.part`` and are renamed (``os.replace``) once complete and checked.
- ``<path>.part`` (with ``<path>.part.validator``, the server's ETag or
  Last-Modified) is the only partial file ever left behind, and only when the
  transfer broke off: the next run resumes it with an HTTP ``Range`` request and
  ``If-Range``, so a file that changed upstream in between is fetched whole rather
  than spliced; a server that ignores ``Range`` makes it start over. A checksum
  mismatch deletes it.
- Checksums (``md5``/``sha256``) are of the bytes served at the URL. When none is
  configured, the sha256 of the stored file is recorded in ``<path>.sha256``
  (``sha256sum -c`` format) at first download and pins later downloads and a file
  found present; a present file that matches is not downloaded again.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from hapexp.config.schema import with_defaults
from hapexp.errors import InputError
from hapexp.io import atomic_output

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "hapexp-download/0.1 (+https://github.com/; resumable)"


def _expand(name: str, entry: dict) -> list[tuple[str, dict]]:
    """One entry → one (name, entry) per chromosome when it lists `chromosomes`."""
    chroms = entry.get("chromosomes")
    if not chroms:
        return [(name, dict(entry))]
    for key in ("url", "path"):
        if "{chrom}" not in str(entry.get(key, "{chrom}")):
            raise InputError(
                "config",
                f"entry lists chromosomes but its {key} has no {{chrom}} placeholder",
                "Put {chrom} where the chromosome name goes, or drop `chromosomes`.",
                where=f"download.{name}",
            )
    out = []
    for c in chroms:
        c = str(c)
        e = {k: v for k, v in entry.items() if k != "chromosomes"}
        e["url"] = entry["url"].replace("{chrom}", c)
        if "path" in entry:
            e["path"] = entry["path"].replace("{chrom}", c)
        for algo in ("md5", "sha256"):
            if isinstance(entry.get(algo), dict):  # per-chromosome checksums
                e[algo] = {str(k): v for k, v in entry[algo].items()}.get(c)
        out.append((f"{name}_{c}", e))
    return out


def download_entries(config: dict) -> dict[str, dict]:
    """The config's ``download`` entries keyed by name, with ``path`` filled in
    (default ``resources/<name>``) and entries that list ``chromosomes`` expanded
    into one entry per chromosome (``<name>_<chrom>``; ``{chrom}`` in url and path
    replaced; ``md5``/``sha256`` may then map chromosome → checksum). Paths must be
    unique."""
    out: dict[str, dict] = {}
    seen: dict[str, str] = {}
    for base, entry in with_defaults("download", config.get("download")).items():
        for name, e in _expand(base, entry):
            e["name"] = name
            e.setdefault("path", f"resources/{name}")
            e["path"] = os.path.normpath(e["path"])
            if e["path"] in seen:
                raise InputError(
                    "config",
                    f"download entries {seen[e['path']]!r} and {name!r} both write {e['path']}",
                    "Give each download its own path.",
                    where=f"download.{base}",
                )
            seen[e["path"]] = name
            out[name] = e
    return out


def file_digest(path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def validator(part) -> Path:
    """The server's ETag/Last-Modified for a `.part` file, sent as If-Range on resume."""
    return Path(f"{part}.validator")


def sidecar(path) -> Path:
    """Where the recorded sha256 of a download lives: ``<path>.sha256``."""
    return Path(f"{path}.sha256")


def read_sidecar(path) -> str | None:
    p = sidecar(path)
    if not p.is_file():
        return None
    text = p.read_text().split()
    return text[0].lower() if text else None


def write_sidecar(path, digest: str) -> None:
    with atomic_output(sidecar(path)) as tmp:
        Path(tmp).write_text(f"{digest}  {Path(path).name}\n")


def _expected(md5: str | None, sha256: str | None) -> list[tuple[str, str]]:
    out = []
    if sha256:
        out.append(("sha256", sha256.lower()))
    if md5:
        out.append(("md5", md5.lower()))
    return out


def _verify(path, url: str, expected: list[tuple[str, str]], what: str) -> None:
    for algo, want in expected:
        got = file_digest(path, algo)
        if got != want:
            raise InputError(
                path,
                f"{algo} mismatch for {what} downloaded from {url}: expected {want}, got {got}",
                "The download is corrupt or the file changed upstream. It has been deleted; run again "
                "to download it afresh. If it fails again, check the file's published checksum and "
                f"update (or remove) `{algo}` for this entry in the config's `download` section.",
            )


def _content_range_total(header: str | None) -> int | None:
    # "bytes 100-199/200" or "bytes */200"
    if not header or "/" not in header:
        return None
    total = header.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _fetch_to_part(url: str, part: Path, timeout: float) -> None:
    """Append the rest of `url` to `part` (resuming from its size) until complete.

    Raises OSError/URLError on a broken transfer (the part file is kept)."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    val = validator(part)
    if have and url.startswith(("http://", "https://")):
        req.add_header("Range", f"bytes={have}-")
        if val.is_file():
            # If-Range: the server sends the whole (new) file instead of the rest
            # when it changed since the part was started, so nothing is spliced.
            req.add_header("If-Range", val.read_text().strip())
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            total = _content_range_total(e.headers.get("Content-Range"))
            if total == have:
                log.info("%s: already complete in %s", url, part)
                return
            log.warning("%s: server refused resuming at byte %d; starting over", url, have)
            part.unlink()
            val.unlink(missing_ok=True)
            return _fetch_to_part(url, part, timeout)
        raise
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        if have and status == 206:
            start = int(resp.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0])
            if start != have:
                raise OSError(f"server resumed at byte {start}, expected {have}")
            mode = "ab"
            log.info("%s: resuming at byte %d", url, have)
        else:
            if have:
                log.info(
                    "%s: server sent the whole file (no resume support, or it changed); starting over", url
                )
            mode, have = "wb", 0
            tag = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
            if tag and not tag.startswith("W/"):  # weak ETags are not allowed in If-Range
                val.write_text(tag + "\n")
            else:
                val.unlink(missing_ok=True)
        length = resp.headers.get("Content-Length")
        expect = have + int(length) if length and length.isdigit() else None
        with open(part, mode) as out:
            while chunk := resp.read(CHUNK):
                out.write(chunk)
    size = part.stat().st_size
    if expect is not None and size != expect:
        raise OSError(f"transfer ended at byte {size} of {expect}")


def download(
    url: str,
    path,
    md5: str | None = None,
    sha256: str | None = None,
    decompress: bool = False,
    faidx: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
    backoff: float = 2.0,
) -> Path:
    """Download `url` to `path` (see the module docstring for the guarantees).

    `md5`/`sha256` are checksums of the bytes served at `url`. With `decompress`,
    those bytes are gunzipped into `path` (the checksums still refer to the
    compressed bytes; ``<path>.sha256`` to the stored, decompressed file).
    Returns `path`.
    """
    path = Path(path)
    expected = _expected(md5, sha256)
    if path.exists():
        recorded = read_sidecar(path)
        checks = [] if decompress else list(expected)
        if recorded:
            checks.append(("sha256", recorded))
        if checks:
            try:
                _verify(path, url, checks, "the file already present")
            except InputError:
                raise InputError(
                    path,
                    f"the file is present but its checksum differs from the expected/recorded one ({url})",
                    f"Delete {path} (and {sidecar(path)}) to download it again, or fix the checksum in the config.",
                ) from None
            log.info("%s: present and verified; not downloading", path)
        else:
            write_sidecar(path, file_digest(path))
            log.info("%s: present; recorded its sha256 in %s", path, sidecar(path))
        if faidx:
            write_fai(path)
        return path

    path.parent.mkdir(parents=True, exist_ok=True)
    part = Path(f"{path}.part")
    for attempt in range(1, retries + 1):
        try:
            _fetch_to_part(url, part, timeout)
            break
        except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
            if isinstance(e, urllib.error.HTTPError) and e.code in (401, 403, 404, 410):
                raise InputError(
                    path,
                    f"HTTP {e.code} {e.reason} for {url}",
                    "Check the URL in the config's `download` section (files move; the source's "
                    "web page lists the current location), or place the file at this path yourself.",
                ) from None
            size = part.stat().st_size if part.exists() else 0
            log.warning("%s: attempt %d/%d failed at byte %d: %s", url, attempt, retries, size, e)
            if attempt == retries:
                raise InputError(
                    path,
                    f"download from {url} failed after {retries} attempts ({e}); {size} bytes kept in {part}",
                    "Run again to resume from there (the server must support HTTP Range requests), "
                    "or download the file yourself to this path.",
                ) from None
            time.sleep(backoff * attempt)

    validator(part).unlink(missing_ok=True)
    try:
        _verify(part, url, expected, "the file")
    except InputError:
        part.unlink(missing_ok=True)
        raise
    # Without a configured checksum, a sha256 recorded by an earlier download pins
    # the content (of the stored file: decompressed when `decompress`).
    pinned = None if expected else read_sidecar(path)
    if decompress:
        try:
            with atomic_output(path) as tmp:
                with gzip.open(part, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                _check_pinned(tmp, path, url, pinned, part)
        except (OSError, EOFError) as e:
            part.unlink(missing_ok=True)
            raise InputError(
                path,
                f"cannot gunzip the file downloaded from {url} ({e})",
                "Set `decompress: false` for this entry if the file is not gzip-compressed.",
            ) from None
        part.unlink()
    else:
        _check_pinned(part, path, url, pinned, part)
        os.replace(part, path)
    digest = pinned or file_digest(path)
    if not expected and not pinned:
        log.warning(
            "%s: no checksum configured; recorded sha256 %s in %s (pin it in the config as `sha256:`)",
            url,
            digest,
            sidecar(path),
        )
    write_sidecar(path, digest)
    log.info("%s: done (sha256 %s)", path, digest)
    if faidx:
        write_fai(path)
    return path


def _check_pinned(candidate, path: Path, url: str, pinned: str | None, part: Path) -> None:
    if pinned is None:
        return
    got = file_digest(candidate)
    if got != pinned:
        part.unlink(missing_ok=True)
        raise InputError(
            path,
            f"sha256 of the new download from {url} is {got}, but {sidecar(path)} recorded {pinned} "
            "at the first download",
            f"The file changed upstream (or the URL now points elsewhere). If that is intended, delete "
            f"{sidecar(path)} and run again; otherwise fix the URL.",
        )


def write_fai(path) -> None:
    """Write `<path>.fai` (atomically) unless an index newer than `path` exists."""
    path = Path(path)
    fai = Path(f"{path}.fai")
    if fai.exists() and fai.stat().st_mtime >= path.stat().st_mtime:
        return
    import pysam

    # pysam writes `<path>.fai` directly; build it beside a temporary link so a
    # killed job leaves no truncated index.
    tmpdir = path.parent / f".{path.name}.faidx.tmp"
    shutil.rmtree(tmpdir, ignore_errors=True)
    tmpdir.mkdir()
    try:
        link = tmpdir / path.name
        os.symlink(os.path.abspath(path), link)
        pysam.faidx(str(link))
        os.replace(tmpdir / f"{path.name}.fai", fai)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmpdir)
    log.info("%s: indexed", path)


# ------------------------------------------------- helpers for rules/download.smk
def paths_regex(paths) -> str:
    """A wildcard constraint matching exactly `paths` (``(?!)``, never, when empty)."""
    return "|".join(re.escape(str(p)) for p in paths) or "(?!)"


def index_of(path: str, entries_by_path: dict) -> str | None:
    """For an index download (``.tbi``/``.csi``), its data file when that is also a
    download: the index job then waits for it and ends up newer than the data
    (htslib warns about indexes older than their data file)."""
    data = re.sub(r"\.(tbi|csi)$", "", path)
    return data if data != path and data in entries_by_path else None


def all_targets(entries_by_path: dict) -> list[str]:
    """Every file the download section produces (downloads and `.fai` indexes)."""
    out = list(entries_by_path)
    out += [f"{p}.fai" for p, e in entries_by_path.items() if e.get("faidx")]
    return out


def run_download(path, entry: dict) -> None:
    """Rule `download`: one configured entry (`download_entries`) to its `path`."""
    download(
        entry["url"],
        path,
        md5=entry.get("md5"),
        sha256=entry.get("sha256"),
        decompress=bool(entry["decompress"]),
    )


def run_download_faidx(fasta) -> None:
    """Rule `download_faidx`: the `.fai` index of a downloaded FASTA."""
    write_fai(fasta)
