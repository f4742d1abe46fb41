"""Downloads against a local HTTP server on 127.0.0.1 (with Range support).

The server is a tiny `http.server` handler in a thread; per test it can break a
transfer off half-way, ignore Range requests or serve a 404, and it records every
request's Range header so that resuming is observed, not assumed.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from hapexp.errors import InputError
from hapexp.inputs.download import download, download_entries, read_sidecar

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 1200  # 300 kB, several read chunks' worth of Range
FASTA = b">1\n" + b"ACGTNACGTA" * 30 + b"\n>2\n" + b"GGGCCCAAAT" * 12 + b"\n"


class Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    break_after: dict[str, int] = {}  # path -> bytes to send before hanging up (once)
    ignore_range: set[str] = set()
    requests: list[tuple[str, str | None]] = []
    if_ranges: list[str | None] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).requests.append((self.path, rng))
        type(self).if_ranges.append(self.headers.get("If-Range"))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        etag = '"' + hashlib.md5(data).hexdigest() + '"'
        if_range = self.headers.get("If-Range")
        start = 0
        if rng and self.path not in self.ignore_range and if_range in (None, etag):
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cut = type(self).break_after.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # hang up mid-body
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    Handler.files = {
        "/data.bin": PAYLOAD,
        "/genome.fa.gz": gzip.compress(FASTA, mtime=0),
        "/chr1.txt": b"one\n",
        "/chr2.txt": b"two\n",
    }
    Handler.break_after = {}
    Handler.ignore_range = set()
    Handler.requests = []
    Handler.if_ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


FAST = {"timeout": 5, "backoff": 0}


def test_fresh_download_records_checksum_and_is_then_skipped(server, tmp_path):
    dest = tmp_path / "sub" / "data.bin"
    download(f"{server}/data.bin", dest, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert read_sidecar(dest) == _sha(PAYLOAD)
    assert (tmp_path / "sub" / "data.bin.sha256").read_text() == f"{_sha(PAYLOAD)}  data.bin\n"
    assert not Path(f"{dest}.part").exists()
    n = len(Handler.requests)
    download(f"{server}/data.bin", dest, **FAST)  # present + verified: no request
    assert len(Handler.requests) == n
    # A present file that no longer matches its recorded checksum is not trusted.
    dest.write_bytes(PAYLOAD[:-1] + b"x")
    with pytest.raises(InputError, match="present but its checksum differs"):
        download(f"{server}/data.bin", dest, **FAST)
    assert len(Handler.requests) == n


def test_checksum_mismatch_is_a_clear_error_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "data.bin"
    wrong = "0" * 32
    with pytest.raises(InputError) as e:
        download(f"{server}/data.bin", dest, md5=wrong, **FAST)
    msg = str(e.value)
    assert f"{server}/data.bin" in msg and wrong in msg
    assert hashlib.md5(PAYLOAD).hexdigest() in msg  # what we got
    assert "run again" in msg and "md5" in msg
    assert list(tmp_path.iterdir()) == []  # neither the file, nor .part, nor .sha256
    # The right checksums (both kinds) pass.
    download(f"{server}/data.bin", dest, md5=hashlib.md5(PAYLOAD).hexdigest(), sha256=_sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_broken_transfer_keeps_only_part_and_resumes_with_range(server, tmp_path):
    dest = tmp_path / "data.bin"
    Handler.break_after["/data.bin"] = 100_000
    with pytest.raises(InputError, match=r"failed after 1 attempts.*100000 bytes kept in .*data\.bin\.part"):
        download(f"{server}/data.bin", dest, retries=1, **FAST)
    assert not dest.exists()
    part = Path(f"{dest}.part")
    assert part.read_bytes() == PAYLOAD[:100_000]
    download(f"{server}/data.bin", dest, sha256=_sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert Handler.requests[-1] == ("/data.bin", "bytes=100000-")


def test_file_changed_upstream_between_runs_is_not_spliced(server, tmp_path):
    dest = tmp_path / "data.bin"
    Handler.break_after["/data.bin"] = 50_000
    with pytest.raises(InputError, match="kept in"):
        download(f"{server}/data.bin", dest, retries=1, **FAST)
    assert Path(f"{dest}.part.validator").read_text().strip().startswith('"')
    new = PAYLOAD[::-1]
    Handler.files["/data.bin"] = new  # a new release under the same URL
    download(f"{server}/data.bin", dest, **FAST)
    assert Handler.if_ranges[-1] is not None  # asked to resume only if unchanged ...
    assert dest.read_bytes() == new  # ... got the whole new file, not old head + new tail
    assert not Path(f"{dest}.part.validator").exists()


def test_recorded_checksum_pins_later_downloads(server, tmp_path):
    dest = tmp_path / "data.bin"
    download(f"{server}/data.bin", dest, **FAST)
    recorded = read_sidecar(dest)
    dest.unlink()
    download(f"{server}/data.bin", dest, **FAST)  # same content: fine
    assert read_sidecar(dest) == recorded
    dest.unlink()
    Handler.files["/data.bin"] = PAYLOAD + b"!"
    with pytest.raises(InputError, match=r"recorded .* at the first download.*delete .*data\.bin\.sha256"):
        download(f"{server}/data.bin", dest, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin.sha256"]


def test_retry_within_one_call_resumes(server, tmp_path):
    dest = tmp_path / "data.bin"
    Handler.break_after["/data.bin"] = 12_345
    download(f"{server}/data.bin", dest, retries=2, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in Handler.requests] == [None, "bytes=12345-"]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    dest = tmp_path / "data.bin"
    Path(f"{dest}.part").write_bytes(b"garbage that is not a prefix")
    Handler.ignore_range.add("/data.bin")
    download(f"{server}/data.bin", dest, sha256=_sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert Handler.requests[-1][1] is not None  # it asked to resume; got a 200


def test_complete_part_file_is_finished_without_refetching(server, tmp_path):
    dest = tmp_path / "data.bin"
    Path(f"{dest}.part").write_bytes(PAYLOAD)
    download(f"{server}/data.bin", dest, sha256=_sha(PAYLOAD), **FAST)  # server answers 416
    assert dest.read_bytes() == PAYLOAD


def test_decompress_and_faidx(server, tmp_path):
    dest = tmp_path / "genome.fa"
    gz = Handler.files["/genome.fa.gz"]
    download(
        f"{server}/genome.fa.gz", dest, md5=hashlib.md5(gz).hexdigest(), decompress=True, faidx=True, **FAST
    )
    assert dest.read_bytes() == FASTA
    assert read_sidecar(dest) == _sha(FASTA)  # of the stored (decompressed) file
    fai = Path(f"{dest}.fai").read_text().splitlines()
    assert [line.split("\t")[:2] for line in fai] == [["1", "300"], ["2", "120"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["genome.fa", "genome.fa.fai", "genome.fa.sha256"]


def test_not_gzip_with_decompress_and_http_404(server, tmp_path):
    with pytest.raises(InputError, match="cannot gunzip"):
        download(f"{server}/data.bin", tmp_path / "x", decompress=True, **FAST)
    with pytest.raises(InputError, match="HTTP 404"):
        download(f"{server}/missing", tmp_path / "y", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_file_url_for_local_mirrors(tmp_path):
    src = tmp_path / "mirror" / "x.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "x.bin"
    download(src.as_uri(), dest, sha256=_sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD and read_sidecar(dest) == _sha(PAYLOAD)


def test_download_entries_expand_chromosomes():
    cfg = {
        "download": {
            "ref": {"url": "https://x/ref.fa.gz", "decompress": True},
            "vcf": {
                "url": "https://x/chr{chrom}.vcf.gz",
                "path": "resources/c/chr{chrom}.vcf.gz",
                "chromosomes": ["1", 2],
                "md5": {"1": "a" * 32},
            },
        }
    }
    e = download_entries(cfg)
    assert list(e) == ["ref", "vcf_1", "vcf_2"]
    assert e["ref"]["path"] == "resources/ref"
    assert e["vcf_2"]["url"] == "https://x/chr2.vcf.gz" and e["vcf_2"]["path"] == "resources/c/chr2.vcf.gz"
    assert e["vcf_1"]["md5"] == "a" * 32 and e["vcf_2"]["md5"] is None
    with pytest.raises(InputError, match="no {chrom} placeholder"):
        download_entries({"download": {"v": {"url": "https://x/a", "chromosomes": ["1"]}}})
    with pytest.raises(InputError, match="both write resources/same"):
        download_entries(
            {
                "download": {
                    "a": {"url": "u", "path": "resources/same"},
                    "b": {"url": "v", "path": "resources/./same"},
                }
            }
        )


# ----------------------------------------------------------------- via Snakemake
def _mini_workflow(tmp_path: Path, downloads: dict) -> Path:
    """A workflow of only common.smk + download.smk (copied with the schema and the
    rule scripts, so that the test needs no other stage), and a minimal config."""
    for rel in [
        "rules/common.smk",
        "rules/download.smk",
        "workflow/scripts/download.py",
        "workflow/scripts/download_faidx.py",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    shutil.copytree(REPO / "config/schema", tmp_path / "config/schema")
    env = tmp_path / "envs/variants.yaml"
    env.parent.mkdir()
    if (REPO / "envs/variants.yaml").exists():
        shutil.copy(REPO / "envs/variants.yaml", env)
    else:
        env.write_text("channels: [conda-forge]\ndependencies: [python, pysam]\n")
    (tmp_path / "Snakefile").write_text('include: "rules/common.smk"\ninclude: "rules/download.smk"\n')
    cfg = {
        "reference": {"fasta": "resources/dl/genome.fa"},
        "genes": {"table": "resources/dl/genes.tsv"},
        "cohorts": {
            "c": {"vcf": "resources/dl/chr{chrom}.vcf.gz", "chromosomes": ["1"], "expression": "e.tsv"}
        },
        "models": {"m": {"kind": "enformer_tiny", "window": 2048}},
        "download": downloads,
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _snakemake(workdir: Path, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            *args,
            "--cores",
            "1",
            "--nocolor",
            "--configfile",
            "config.yaml",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.long
def test_download_rules_via_snakemake(server, tmp_path):
    if shutil.which("snakemake") is None and not (Path(sys.executable).parent / "snakemake").exists():
        pytest.skip("snakemake not installed")
    gz = Handler.files["/genome.fa.gz"]
    wd = _mini_workflow(
        tmp_path,
        {
            "genome": {
                "url": f"{server}/genome.fa.gz",
                "path": "resources/dl/genome.fa",
                "md5": hashlib.md5(gz).hexdigest(),
                "decompress": True,
                "faidx": True,
            },
            "txt": {
                "url": f"{server}/chr{{chrom}}.txt",
                "path": "resources/dl/chr{chrom}.txt",
                "chromosomes": ["1", "2"],
            },
        },
    )
    p = _snakemake(wd, "download_all")
    assert p.returncode == 0, p.stderr[-4000:]
    assert (wd / "resources/dl/genome.fa").read_bytes() == FASTA
    assert (wd / "resources/dl/genome.fa.fai").stat().st_size > 0
    assert (wd / "resources/dl/chr2.txt").read_bytes() == b"two\n"
    assert read_sidecar(wd / "resources/dl/chr1.txt") == _sha(b"one\n")
    assert (wd / "logs/download/resources/dl/chr1.txt.log").exists()
    n = len(Handler.requests)
    p = _snakemake(wd, "download_all")
    assert p.returncode == 0 and "Nothing to be done" in p.stdout + p.stderr
    assert len(Handler.requests) == n

    # A wrong checksum fails the job with the message, leaving no file behind.
    wd2 = _mini_workflow(
        tmp_path / "bad",
        {"data": {"url": f"{server}/data.bin", "path": "resources/dl/data.bin", "sha256": "f" * 64}},
    )
    p = _snakemake(wd2, "download_all")
    assert p.returncode != 0
    log = (wd2 / "logs/download/resources/dl/data.bin.log").read_text()
    assert "sha256 mismatch" in log and "f" * 64 in log and _sha(PAYLOAD) in log
    assert not list((wd2 / "resources/dl").glob("data.bin*"))


# ------------------------------------------------ the Geuvadis preset, dry run
def _place_geuvadis_fixtures(workdir: Path, cfg: dict) -> None:
    """Tiny, mutually consistent stand-ins at every path of config/geuvadis.yaml."""
    import numpy as np
    import pysam

    rng = np.random.default_rng(0)
    chroms = [str(c) for c in cfg["cohorts"]["geuvadis"]["chromosomes"]]
    length = 3000
    fasta = workdir / cfg["reference"]["fasta"]
    fasta.parent.mkdir(parents=True, exist_ok=True)
    seqs = {c: "".join(rng.choice(list("ACGT"), length)) for c in chroms}
    fasta.write_text("".join(f">{c}\n{s}\n" for c, s in seqs.items()))
    pysam.faidx(str(fasta))
    samples = ["HG00096", "HG00097", "NA12878"]
    for c in chroms:
        vcf = workdir / cfg["cohorts"]["geuvadis"]["vcf"].format(chrom=c)
        plain = vcf.with_suffix("")
        ref = seqs[c][1499]
        alt = "A" if ref != "A" else "C"
        plain.write_text(
            "##fileformat=VCFv4.1\n"
            f"##contig=<ID={c},assembly=b37,length={length}>\n"
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples) + "\n"
            f"{c}\t1500\t.\t{ref}\t{alt}\t100\tPASS\t.\tGT\t0|1\t1|1\t0|0\n"
        )
        pysam.tabix_compress(str(plain), str(vcf), force=True)
        pysam.tabix_index(str(vcf), preset="vcf", force=True)
        plain.unlink()
    gtf = workdir / cfg["genes"]["gtf"]
    genes = [("ENSG00000000001.1", "21", 1200, 2000, "+"), ("ENSG00000000002.1", "22", 1000, 1800, "-")]
    with gzip.open(gtf, "wt") as fh:
        for gid, c, s, e, st in genes:
            fh.write(
                f'chr{c}\tHAVANA\tgene\t{s}\t{e}\t.\t{st}\t.\tgene_id "{gid}"; gene_type "protein_coding"; '
                f'gene_name "G{c}";\n'
            )
    expr = workdir / cfg["cohorts"]["geuvadis"]["expression"]
    with gzip.open(expr, "wt") as fh:  # Geuvadis layout, GENCODE v12 versions (.2)
        fh.write("TargetID\tGene_Symbol\tChr\tCoord\t" + "\t".join(samples) + "\n")
        for gid, c, s, _, _ in genes:
            v = "\t".join(f"{x:.3f}" for x in rng.normal(size=len(samples)))
            fh.write(f"{gid[:-1]}2\t{gid[:-1]}2\t{c}\t{s}\t{v}\n")
    level = workdir / cfg["cohorts"]["geuvadis"]["expression_level"]
    with gzip.open(level, "wt") as fh:  # GD660: RPKM per library (sample.replicate.lab)
        fh.write(
            "TargetID\tGene_Symbol\tChr\tCoord\t" + "\t".join(f"{x}.1.M_111124_1" for x in samples) + "\n"
        )
        for gid, c, s, _, _ in genes:
            v = "\t".join(f"{x:.3f}" for x in rng.uniform(1, 50, size=len(samples)))
            fh.write(f"{gid[:-1]}2\t{gid[:-1]}2\t{c}\t{s}\t{v}\n")


@pytest.mark.slow
@pytest.mark.long
def test_geuvadis_preset_dry_run(tmp_path):
    """`snakemake -n --configfile config/geuvadis.yaml`: without inputs it plans the
    downloads; with fixture files at the preset's paths it plans no download."""
    from tests.workflow_utils import run_snakemake

    preset = REPO / "config/geuvadis.yaml"
    cfg = yaml.safe_load(preset.read_text())
    entries = download_entries(cfg)
    assert len(entries) == 4 + 2 * 22
    # The preset's inputs are exactly the download targets.
    assert {e["path"] for e in entries.values()} >= {
        cfg["reference"]["fasta"],
        cfg["genes"]["gtf"],
        cfg["cohorts"]["geuvadis"]["expression"],
        cfg["cohorts"]["geuvadis"]["expression_level"],
        cfg["cohorts"]["geuvadis"]["vcf"].format(chrom="22"),
    }

    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_snakemake(empty, "-n", "--configfile", str(preset))
    out = p.stdout + p.stderr
    planned = re.search(r"^download\s+(\d+)$", out, re.M)
    assert planned and int(planned.group(1)) >= 25, out[-3000:]

    placed = tmp_path / "placed"
    placed.mkdir()
    _place_geuvadis_fixtures(placed, cfg)
    p = run_snakemake(placed, "-n", "--configfile", str(preset))
    out = p.stdout + p.stderr
    assert "validate_inputs" in out, out[-3000:]
    assert "rule download:" not in out and "localrule download:" not in out, out[-3000:]
