"""Rules are stages: one rule file per stage, one thin script per rule, one entry point.

For every rule that runs a script, on whatever rules/*.smk hold when the test runs:
- the script is `workflow/scripts/<rule>.py`, and every script there belongs to a rule;
- the script calls one function of the package, `run_<rule>`, imported from the module
  named after the rule's file: rule `eqtl` in rules/eqtl.smk runs
  `hapexp.linear.eqtl.run_eqtl`, rule `gather_eqtl` in the same file
  `hapexp.linear.eqtl.run_gather_eqtl`;
- that module exists once in the package and defines the function;
- where the script passes the rule's named inputs, outputs or params as they are
  (`**snakemake.input`, …), the function takes each of those names (a rule and its entry
  point share their names; a file Snakemake only waits for is unnamed);
- no analysis module builds a results/ path: result paths and input functions live in
  rules/common.smk and the rule files.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from tests.test_envs import CODE_RULES, PKG, ROOT, _literal

SCRIPTS = ROOT / "workflow" / "scripts"
SCRIPT_RULES = {name: spec for name, spec in CODE_RULES.items() if "script" in spec}


def _calls_and_imports(path: Path) -> tuple[list[str], dict[str, str]]:
    """Names of the functions a script calls at top level, and imported name -> module."""
    tree = ast.parse(path.read_text())
    imported = {
        alias.asname or alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    calls = [
        node.value.func.id
        for node in tree.body
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
    ]
    return calls, imported


def test_every_script_belongs_to_its_rule():
    assert len(SCRIPT_RULES) >= 20, sorted(SCRIPT_RULES)
    named = {}
    for rule, spec in SCRIPT_RULES.items():
        script = (spec["file"].parent / _literal(spec["script"], "script:", rule)).resolve()
        assert script == SCRIPTS / f"{rule}.py", f"rule {rule} runs {script.name}, not {rule}.py"
        named[script.name] = rule
    orphans = sorted(p.name for p in SCRIPTS.glob("*.py") if p.name not in named)
    assert not orphans, f"scripts no rule runs: {orphans}"


@pytest.mark.parametrize("rule", sorted(SCRIPT_RULES))
def test_script_calls_one_entry_point_of_the_stage_module(rule):
    stage = SCRIPT_RULES[rule]["file"].stem
    calls, imported = _calls_and_imports(SCRIPTS / f"{rule}.py")
    entry = f"run_{rule}"
    package_calls = [
        c for c in calls if imported.get(c, "").startswith("hapexp.") and c != "setup_rule_logging"
    ]
    assert package_calls == [entry], f"{rule}.py calls {package_calls}, not one {entry}"
    module = imported[entry]
    assert module.startswith("hapexp.") and module.rsplit(".", 1)[-1] == stage, (
        f"rule {rule} (rules/{stage}.smk) runs {module}.{entry}: its module must be named {stage}"
    )
    path = PKG.parent / (module.replace(".", "/") + ".py")
    assert path.is_file(), path
    assert [p for p in PKG.rglob(f"{stage}.py")] == [path], f"more than one module named {stage}.py"
    defined = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
    assert entry in defined, f"{module} does not define {entry}"


def _named(rule: str, section: str) -> list[str]:
    """Names of the named items of a rule's section, read from its rule file."""
    text = SCRIPT_RULES[rule]["file"].read_text()
    block = re.search(rf"^rule {rule}:\n(.*?)(?=^\S|\Z)", text, re.M | re.S).group(1)
    body = re.search(rf"^    {section}:\n((?:        .*\n|\s*\n)*)", block, re.M)
    return re.findall(r"^        (\w+)=", body.group(1), re.M) if body else []


@pytest.mark.parametrize("rule", sorted(SCRIPT_RULES))
def test_entry_point_takes_what_the_script_unpacks(rule):
    tree = ast.parse((SCRIPTS / f"{rule}.py").read_text())
    unpacked = {
        kw.value.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg is None and isinstance(kw.value, ast.Attribute)
    }
    _, imported = _calls_and_imports(SCRIPTS / f"{rule}.py")
    entry = f"run_{rule}"
    params = inspect.signature(getattr(importlib.import_module(imported[entry]), entry)).parameters
    for section in sorted(unpacked):
        missing = [n for n in _named(rule, section) if n not in params]
        assert not missing, f"rule {rule}'s {section} {missing} are not parameters of {entry}"


def test_no_analysis_module_builds_result_paths():
    found = [
        f"{p.relative_to(PKG)}:{i}"
        for p in sorted(PKG.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"""f?["']results/""", line)
    ]
    assert not found, f"result paths outside rules/: {found}"
