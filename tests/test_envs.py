"""Per-rule conda environments (envs/*.yaml) against the rules that use them.

Checks, on whatever rules/*.smk holds when the test runs:
- every rule that runs code (script/shell/wrapper) names a `conda:` env file that exists
  and parses, and every env file is used by some rule;
- every env pins every package, and the pins agree with requirements.txt (the pip side);
- each env provides what its rules' scripts import, following imports into the hapexp
  package (lazy imports inside functions count: they run), and the command-line tools
  its shell rules call.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
ENVS = ROOT / "envs"
PKG = ROOT / "workflow" / "scripts" / "hapexp"

# Import name -> conda/pip package names that provide it (first is the canonical one).
PROVIDERS = {
    "numpy": ["numpy"],
    "pandas": ["pandas"],
    "scipy": ["scipy"],
    "sklearn": ["scikit-learn"],
    "numba": ["numba"],
    "statsmodels": ["statsmodels"],
    "pyarrow": ["pyarrow"],
    "pysam": ["pysam"],
    "torch": ["pytorch", "torch"],
    "enformer_pytorch": ["enformer-pytorch"],
    "einops": ["einops"],
    "msprime": ["msprime"],
    "tskit": ["tskit"],
    "matplotlib": ["matplotlib-base", "matplotlib"],
    "tqdm": ["tqdm"],
    "jsonschema": ["jsonschema"],
    "yaml": ["pyyaml"],
    "tensorqtl": ["tensorqtl"],
    "pandas_plink": ["pandas-plink"],
    "pyfaidx": ["pyfaidx"],
    "polars": ["polars"],
    "h5py": ["h5py"],
    "requests": ["requests"],
    "threadpoolctl": ["threadpoolctl"],
    "joblib": ["joblib"],
    "qtl": ["qtl"],
    "pgenlib": ["pgenlib"],
    "xarray": ["xarray"],
    "dask": ["dask"],
    "peft": ["peft"],
}
# Command-line tools used in shell: directives -> package.
TOOLS = {"bcftools": "bcftools", "tabix": "htslib", "bgzip": "htslib", "samtools": "samtools"}
# conda name -> pip distribution name where they differ (for the requirements.txt check).
PIP_NAME = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
# Not pinned against requirements.txt: the interpreter and non-Python tools.
NOT_PIP = {"python", "pip", "bcftools", "htslib", "samtools"}

STDLIB = set(sys.stdlib_module_names)


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def parse_rules() -> dict[str, dict]:
    """rule name -> {file, conda, script, shell, wrapper, run} from rules/*.smk (and Snakefile)."""
    rules: dict[str, dict] = {}
    head = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:")
    directive = re.compile(r"^(\s+)(\w+)\s*:(.*)$")
    for path in sorted(RULES.glob("*.smk")) + [ROOT / "Snakefile"]:
        if not path.exists():
            continue
        lines = path.read_text().splitlines()
        current = None
        key = key_indent = None
        for line in lines:
            m = head.match(line)
            if m:
                current = rules.setdefault(m.group(1), {"file": path})
                key = None
                continue
            if current is None:
                continue
            if line.strip() and not line[0].isspace():
                current = key = None  # back at top level
                continue
            d = directive.match(line)
            if d and (key is None or len(d.group(1)) <= key_indent):
                key, key_indent = d.group(2), len(d.group(1))
                value = d.group(3).strip()
                current.setdefault(key, "")
                if value:
                    current[key] += value + "\n"
            elif key is not None and line.strip():
                current[key] += line.strip() + "\n"
    return rules


def _literal(text: str, what: str, rule: str) -> str:
    text = text.strip().rstrip(",")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pytest.fail(f"rule {rule}: {what} is not a plain string literal ({text!r}); the env test needs one")
    assert isinstance(value, str), f"rule {rule}: {what} must be a string"
    return value


def _runs_code(spec: dict) -> bool:
    return any(k in spec for k in ("script", "shell", "wrapper", "notebook"))


RULE_SPECS = parse_rules()
CODE_RULES = {name: spec for name, spec in RULE_SPECS.items() if _runs_code(spec)}


def env_path(rule: str) -> Path:
    spec = CODE_RULES[rule]
    return (spec["file"].parent / _literal(spec["conda"], "conda:", rule)).resolve()


def load_env(path: Path) -> tuple[dict[str, str], dict]:
    """package name -> pinned version ('' when unpinned); also the raw YAML."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and isinstance(data.get("dependencies"), list), (
        f"{path}: not a conda env file (no 'dependencies' list)"
    )
    pins: dict[str, str] = {}
    for dep in data["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep.get("pip", []):
                if spec.startswith("-"):  # a pip option line (e.g. --no-deps), not a package
                    continue
                name, _, version = spec.partition("==")
                pins[_norm(name)] = version.strip()
            continue
        spec = str(dep).split("::")[-1].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:==?\s*([^\s=]+))?", spec)
        assert m, f"{path}: cannot parse dependency {dep!r}"
        pins[_norm(m.group(1))] = m.group(2) or ""
    return pins, data


def requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        # torch, tensorqtl, pandas-plink are installed by make outside this file (CPU wheel
        # index, --no-deps) and recorded as "# pinned-elsewhere: name==version".
        line = line.replace("# pinned-elsewhere:", "").split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;]+)", line)
        if m:
            pins[_norm(re.sub(r"\[.*\]", "", m.group(1)))] = m.group(2)
    return pins


# ---- imports of a script, followed through the hapexp package ----------------------------


def _guarded(node: ast.AST, parents: dict) -> bool:
    """True for an import inside `try: ... except ImportError` (optional dependency)."""
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.Try) and node in parent.body:
            for h in parent.handlers:
                names = []
                if isinstance(h.type, ast.Name):
                    names = [h.type.id]
                elif isinstance(h.type, ast.Tuple):
                    names = [e.id for e in h.type.elts if isinstance(e, ast.Name)]
                if {"ImportError", "ModuleNotFoundError"} & set(names):
                    return True
        node = parent
    return False


def _imports(path: Path, package: str | None) -> set[str]:
    """Dotted module names imported by a file (relative imports resolved against `package`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and not _guarded(node, parents):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not _guarded(node, parents):
            if node.level:
                base = package or ""
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            # `from hapexp import io` imports the submodule hapexp.io
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return found


def script_requirements(script: Path) -> dict[str, set[str]]:
    """Third-party top-level module -> files that import it, for a script and the hapexp
    modules it reaches."""
    needed: dict[str, set[str]] = {}
    todo, seen = [(script, None)], set()
    while todo:
        path, package = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for mod in _imports(path, package):
            top = mod.split(".")[0]
            if top == "hapexp":
                # Python runs every package's __init__ on the way to a module
                parts = mod.split(".")[1:]
                here, name = PKG, "hapexp"
                todo.append((here / "__init__.py", name))
                for part in parts:
                    if (here / part / "__init__.py").exists():
                        here, name = here / part, f"{name}.{part}"
                        todo.append((here / "__init__.py", name))
                    else:
                        if (here / f"{part}.py").exists():
                            todo.append((here / f"{part}.py", name))
                        break
            elif top and top not in STDLIB and top != "__future__":
                needed.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return needed


# ---- tests -----------------------------------------------------------------------------------


def test_rules_found():
    # Guards the parser: the workflow's core rules must be seen, with their scripts.
    for rule in ("predict", "haplotypes"):
        if (RULES / f"{rule}.smk").exists() or any(rule in p.read_text() for p in RULES.glob("*.smk")):
            assert rule in CODE_RULES, f"parser missed rule {rule}"
    assert len(CODE_RULES) >= 5, f"only {sorted(CODE_RULES)} parsed from rules/*.smk"


@pytest.mark.parametrize("rule", sorted(CODE_RULES))
def test_rule_has_existing_env(rule):
    spec = CODE_RULES[rule]
    assert "conda" in spec, f"rule {rule} ({spec['file'].name}) runs code but has no conda: directive"
    path = env_path(rule)
    assert path.parent == ENVS.resolve(), f"rule {rule}: env {path} is not under envs/"
    assert path.exists(), f"rule {rule}: env file {path} does not exist"
    load_env(path)


def test_every_env_is_used():
    used = {env_path(r) for r in CODE_RULES if "conda" in CODE_RULES[r]}
    unused = sorted(p.name for p in ENVS.glob("*.yaml") if p.resolve() not in used)
    assert not unused, f"env files no rule uses: {unused}"


@pytest.mark.parametrize("env", sorted(p.name for p in ENVS.glob("*.yaml")))
def test_env_pinned_and_consistent(env):
    pins, data = load_env(ENVS / env)
    assert data.get("channels") and data["channels"][0] == "conda-forge", (
        f"{env}: conda-forge must come first"
    )
    unpinned = sorted(name for name, version in pins.items() if not version and name != "pip")
    assert not unpinned, f"{env}: unpinned packages {unpinned}"
    assert pins.get("python", "").startswith("3.11"), f"{env}: python must be pinned to the venv's 3.11"
    req = requirements()
    mismatched = {}
    for name, version in pins.items():
        if name in NOT_PIP:
            continue
        pip_name = PIP_NAME.get(name, name)
        assert pip_name in req, f"{env}: {name} is not pinned in requirements.txt (the pip side)"
        if req[pip_name].split("+")[0] != version:
            mismatched[name] = (version, req[pip_name])
    assert not mismatched, f"{env}: versions differ from requirements.txt (env, pip): {mismatched}"


@pytest.mark.parametrize("rule", sorted(CODE_RULES))
def test_env_covers_imports_and_tools(rule):
    spec = CODE_RULES[rule]
    if "conda" not in spec:
        pytest.skip("no conda: directive (reported by test_rule_has_existing_env)")
    pins, _ = load_env(env_path(rule))
    missing = {}
    if "script" in spec:
        script = (spec["file"].parent / _literal(spec["script"], "script:", rule)).resolve()
        assert script.exists(), f"rule {rule}: script {script} does not exist"
        if script.suffix == ".py":
            for module, where in script_requirements(script).items():
                providers = PROVIDERS.get(module)
                assert providers, (
                    f"rule {rule}: {sorted(where)} import {module!r}, which tests/test_envs.py "
                    "does not know; add it to PROVIDERS (import name -> package)"
                )
                if not any(_norm(p) in pins for p in providers):
                    missing[module] = sorted(where)
    for tool, package in TOOLS.items():
        if re.search(rf"\b{tool}\b", spec.get("shell", "")) and package not in pins:
            missing[tool] = ["shell:"]
    assert not missing, f"rule {rule}: {env_path(rule).name} lacks the packages for {missing}"


# ---- profiles/slurm against the rules ------------------------------------------------------

PROFILE = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
# Rules that the profile sizes but that may not exist yet in every checkout of the workflow
# are still checked: Snakemake silently ignores set-resources for unknown rules, so a typo
# would go unnoticed on a cluster.


def test_profile_names_existing_rules():
    named = (
        set(PROFILE.get("set-resources", {}))
        | set(PROFILE.get("set-threads", {}))
        | set(PROFILE.get("groups", {}))
    )
    unknown = sorted(named - set(RULE_SPECS))
    assert not unknown, f"profiles/slurm/config.yaml sizes rules that do not exist: {unknown}"
    groups = set(PROFILE.get("groups", {}).values())
    assert set(PROFILE.get("group-components", {})) <= groups


def test_profile_resources_evaluate_and_grow_with_attempt():
    """Every mem_mb/runtime expression evaluates for attempts 1-3 and does not shrink, and
    the retries get more memory than the first attempt (issue: attempt-scaled resources)."""
    entries = {"default": PROFILE["default-resources"], **PROFILE.get("set-resources", {})}
    assert PROFILE.get("retries", 0) >= 1
    for rule, resources in entries.items():
        for key in ("mem_mb", "runtime"):
            if key not in resources:
                continue
            values = [eval(str(resources[key]), {"attempt": a}) for a in (1, 2, 3)]  # noqa: S307
            assert all(isinstance(v, int) and v > 0 for v in values), (rule, key, values)
            assert values[0] < values[1] <= values[2], f"{rule}.{key} does not grow with attempt: {values}"
    for rule in ("predict", "ism", "finetune"):
        assert PROFILE["set-resources"][rule]["mem_mb"], rule
        assert "cpus_per_gpu" in PROFILE["set-resources"][rule], rule
        # GPU rules must not be grouped: a group job adds up its members' GPUs.
        assert rule not in PROFILE.get("groups", {}), rule
        # The GPU request comes from the rule (model device), not forced by the profile.
        assert "gpu" not in PROFILE["set-resources"][rule], rule
        if rule in RULE_SPECS:
            assert "gpu=" in RULE_SPECS[rule].get("resources", ""), f"rule {rule} does not request a GPU"


def test_default_profile_does_not_override_cluster_profile():
    default = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text()) or {}
    # profiles/default is layered over --profile with per-key precedence.
    clashes = sorted(set(default) & set(PROFILE))
    assert not clashes, f"profiles/default would override profiles/slurm keys {clashes}"
    forbidden = {
        "executor",
        "jobs",
        "cores",
        "default-resources",
        "set-resources",
        "set-threads",
        "software-deployment-method",
    }
    assert not (set(default) & forbidden), sorted(set(default) & forbidden)


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/demo_tissues.yaml"])
def test_profile_groups_build_a_valid_dag(tmp_path, configfile):
    """Snakemake refuses a group whose jobs depend on an outside job that depends on the group
    again (e.g. a per-chunk rule reading gather_eqtl's eGenes grouped with eqtl): the
    profile's groups, applied to a dry run of both demos, must build the DAG. (A SLURM run
    fails at once on such a group, before any job; this finds it without SLURM.)"""
    import subprocess

    groups = [f"{rule}={group}" for rule, group in PROFILE.get("groups", {}).items()]
    components = [f"{g}={n}" for g, n in PROFILE.get("group-components", {}).items()]
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(ROOT / configfile),
           "--groups", *groups, "--group-components", *components]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
