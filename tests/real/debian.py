"""Fetch and unpack Debian packages without root: `apt-get download` + `dpkg -x`.

Every package is downloaded into `<cache>/debs/` (skipped when a `.deb` of the
candidate version is already there) and unpacked into `<cache>/pkgs/<name>/`.
Nothing here needs root; `apt-get download` only needs the package lists, which
`apt-get update` (run once, as root) provides.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class BuildError(RuntimeError):
    """A step of the real-cohort build failed; the message says what to do."""


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Package:
    name: str
    version: str
    deb: Path
    root: Path  # where `dpkg -x` unpacked it

    def file(self, relpath: str, expect_sha256: str | None = None) -> Path:
        """A file of the package; with `expect_sha256`, check that it is the file we documented."""
        p = self.root / relpath
        if not p.is_file():
            raise BuildError(f"{self.name} {self.version}: {relpath} is missing from the package")
        if expect_sha256 is not None:
            got = sha256(p)
            if got != expect_sha256:
                raise BuildError(
                    f"{self.name} {self.version}: {relpath} has sha256 {got}, expected {expect_sha256} "
                    "(the Debian package changed upstream: check the new file and update "
                    "tests/real/build.py SOURCES and tests/real/README.md)"
                )
        return p

    def provenance(self) -> dict:
        return {
            "package": self.name,
            "version": self.version,
            "deb": self.deb.name,
            "deb_sha256": sha256(self.deb),
        }


def candidate_version(name: str) -> str:
    out = subprocess.run(["apt-cache", "policy", name], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
            if version and version != "(none)":
                return version
    raise BuildError(
        f"apt knows no candidate version of Debian package {name!r}: run `apt-get update` "
        "(as root, once) so that `apt-get download` can find it"
    )


def fetch(name: str, cache: Path) -> Package:
    """Download (once) and unpack the candidate version of Debian package `name`."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise BuildError("apt-get and dpkg are needed to fetch the real data (a Debian/Ubuntu machine)")
    version = candidate_version(name)
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    # apt-get download names the file NAME_VERSION_ARCH.deb with ':' in the version escaped as %3a.
    quoted = version.replace(":", "%3a")
    found = sorted(debs.glob(f"{name}_{quoted}_*.deb"))
    if not found:
        proc = subprocess.run(["apt-get", "download", name], cwd=debs, capture_output=True, text=True)
        found = sorted(debs.glob(f"{name}_{quoted}_*.deb"))
        if proc.returncode != 0 or not found:
            raise BuildError(
                f"`apt-get download {name}` failed ({proc.returncode}): {proc.stderr.strip()[-500:]}; "
                "run `apt-get update` first if the package lists are empty"
            )
    deb = found[0]
    root = cache / "pkgs" / name
    stamp = root / ".unpacked"
    if not stamp.is_file() or stamp.read_text() != deb.name:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        stamp.write_text(deb.name)
    return Package(name, version, deb, root)
