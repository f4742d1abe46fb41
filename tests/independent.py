"""Answers the tests compare the code with, written without the code under test."""

from __future__ import annotations

import numpy as np

_COMPLEMENT = bytes.maketrans(b"ACGTN", b"TGCAN")


def revcomp(seq: np.ndarray) -> np.ndarray:
    """Reverse complement of uint8 ASCII sequence(s) (A, C, G, T, N) along the last axis:
    the tests' own, so that a wrong table in hapexp.sequences.windows cannot cancel out."""
    seq = np.asarray(seq, dtype=np.uint8)
    flipped = np.ascontiguousarray(seq[..., ::-1]).tobytes().translate(_COMPLEMENT)
    return np.frombuffer(flipped, dtype=np.uint8).reshape(seq.shape)


# --------------------------------------------------------------------------- R's susieR
# susieR's susie() defaults (0.12.35), written out: the fine-mapping tests' independent answer.
SUSIER_DEFAULTS = {
    "L": 10,
    "scaled_prior_variance": 0.2,
    "coverage": 0.95,
    "min_abs_corr": 0.5,
    "max_iter": 100,
    "tol": 1e-3,
}

# One susie() per problem: X (samples × variants) and y read as little-endian float64 (the
# exact numbers Python holds), the options from options.txt; per problem its PIPs, credible
# sets (effect, members 0-based, coverage, purity) and whether IBSS converged. set.seed: susieR
# draws 100 variants of a larger set for its purity.
_SUSIER_SCRIPT = r"""
suppressMessages(library(susieR))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
opt <- read.table(file.path(dir, "options.txt"), header = FALSE, row.names = 1)
o <- function(k) opt[k, 1]
for (g in readLines(file.path(dir, "problems.txt"))) {
  dims <- scan(file.path(dir, paste0(g, ".dim")), quiet = TRUE)
  n <- dims[1]
  p <- dims[2]
  y <- readBin(file.path(dir, paste0(g, ".y")), "double", n = n, endian = "little")
  X <- matrix(readBin(file.path(dir, paste0(g, ".X")), "double", n = n * p, endian = "little"),
              nrow = n, byrow = TRUE)
  set.seed(1)
  f <- susie(X, y, L = o("L"), scaled_prior_variance = o("scaled_prior_variance"),
             coverage = o("coverage"), min_abs_corr = o("min_abs_corr"),
             estimate_residual_variance = TRUE, estimate_prior_variance = TRUE,
             standardize = TRUE, intercept = TRUE, max_iter = o("max_iter"), tol = o("tol"))
  writeLines(format(f$pip, digits = 17), file.path(dir, paste0(g, ".pip")))
  out <- character(0)
  for (l in names(f$sets$cs)) {
    k <- as.integer(sub("L", "", l))
    cs <- f$sets$cs[[l]]
    out <- c(out, paste(l, paste(cs - 1, collapse = ","), format(sum(f$alpha[k, cs]), digits = 17),
                        format(f$sets$purity[l, 1], digits = 17), sep = "\t"))
  }
  writeLines(out, file.path(dir, paste0(g, ".cs")))
  writeLines(as.character(f$converged), file.path(dir, paste0(g, ".converged")))
}
"""


def susier_available() -> bool:
    """Rscript and the R package susieR (Debian: r-cran-susier) are installed."""
    import shutil
    import subprocess

    if shutil.which("Rscript") is None:
        return False
    check = subprocess.run(
        ["Rscript", "-e", "cat(requireNamespace('susieR', quietly=TRUE))"], capture_output=True, text=True
    )
    return check.stdout.strip() == "TRUE"


def susier(problems: dict, workdir, options: dict | None = None) -> dict:
    """R susieR's `susie(X, y)` on each problem (name → (X samples × variants, y)), with
    `options` (L, scaled_prior_variance, coverage, min_abs_corr, max_iter, tol; default
    `SUSIER_DEFAULTS`), residual and prior variances estimated, standardize and intercept
    TRUE. Returns name → {"pip": array, "sets": {effect (1-based): (set of 0-based variant
    indices, coverage, min |r|)}, "converged": bool}."""
    import subprocess
    from pathlib import Path

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    opts = {**SUSIER_DEFAULTS, **(options or {})}
    (workdir / "options.txt").write_text("".join(f"{k} {float(opts[k])!r}\n" for k in SUSIER_DEFAULTS))
    names = [f"p{i}" for i in range(len(problems))]
    for name, (X, y) in zip(names, problems.values(), strict=True):
        X = np.ascontiguousarray(X, dtype="<f8")
        y = np.ascontiguousarray(y, dtype="<f8").ravel()
        assert X.ndim == 2 and X.shape[0] == len(y), (name, X.shape, y.shape)
        (workdir / f"{name}.dim").write_text(f"{X.shape[0]} {X.shape[1]}\n")
        X.tofile(workdir / f"{name}.X")  # row-major: R reads it with byrow = TRUE
        y.tofile(workdir / f"{name}.y")
    (workdir / "problems.txt").write_text("\n".join(names) + "\n")
    (workdir / "susie.R").write_text(_SUSIER_SCRIPT)
    run = subprocess.run(["Rscript", str(workdir / "susie.R"), str(workdir)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    out = {}
    for key, name in zip(problems, names, strict=True):
        sets = {}
        for line in (workdir / f"{name}.cs").read_text().splitlines():
            effect, members, coverage, purity = line.split("\t")
            sets[int(effect[1:])] = ({int(i) for i in members.split(",")}, float(coverage), float(purity))
        out[key] = {
            "pip": np.loadtxt(workdir / f"{name}.pip", ndmin=1),
            "sets": sets,
            "converged": (workdir / f"{name}.converged").read_text().strip() == "TRUE",
        }
    return out
