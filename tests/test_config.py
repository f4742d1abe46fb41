"""One source of defaults: the config schema (hapexp.config.schema), the kinds for what
depends on a model's kind (hapexp.models.kind), and a workflow that never writes to `config`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from hapexp.config.schema import SCHEMA, defaults, with_defaults
from hapexp.models.kind import PER_KIND
from hapexp.models.spec import KINDS, model_spec
from tests.workflow_utils import parse_workflow

REPO = Path(__file__).resolve().parents[1]

# One config per kind, as a user writes it (no defaults).
MODELS = {
    "oracle": {"kind": "oracle", "weights": "oracle.pt", "window": 2048},
    "enformer": {"kind": "enformer"},
    "enformer_tiny": {"kind": "enformer_tiny", "hparams": {"depth": 2}, "finetune": {"lora": {"rank": 4}}},
    "borzoi": {"kind": "borzoi", "window": 393216},
    "alphagenome": {"kind": "alphagenome", "outputs": ["cage"]},
    "torchscript": {"kind": "torchscript", "path": "m.pt", "window": 1024, "adapter": {"bin_size": 128}},
    "python": {
        "kind": "python",
        "class": "pkg.mod:Net",
        "window": 1024,
        "adapter": {"bin_size": 64, "crop": 64},
    },
}


def _config(models: dict) -> dict:
    """A whole config with blocks that carry nested defaults (heads entries null and partial,
    download entries, a cohort) around `models`."""
    return {
        "reference": {"fasta": "ref.fa"},
        "genes": {"table": "genes.tsv"},
        "cohorts": {"c": {"vcf": "c.vcf.gz", "expression": "e.tsv", "credible_sets": {"path": "cs.tsv.gz"}}},
        "models": copy.deepcopy(models),
        "heads": {"oracle": None, "enformer_tiny": {"ridge": 2.0}},
        "download": {"fa": {"url": "https://example.org/ref.fa.gz", "decompress": True}},
        "splits": {"genes": {"by": "gene"}},
    }


def _validated(config: dict) -> dict:
    out = copy.deepcopy(config)
    validate(out, str(SCHEMA))
    return out


@pytest.mark.parametrize(
    "path", ["config/config.yaml", "config/geuvadis.yaml", "every kind"], ids=["demo", "geuvadis", "kinds"]
)
def test_with_defaults_fills_as_snakemake_validate(path):
    config = _config(MODELS) if path == "every kind" else yaml.safe_load((REPO / path).read_text())
    before = copy.deepcopy(config)
    assert with_defaults("", config) == _validated(config)
    assert config == before  # a copy: the block given is left alone


def test_a_block_gets_the_defaults_of_its_place():
    """Blocks below the top, entries of user-named mappings included."""
    full = _validated(_config(MODELS))
    assert with_defaults("heads.*", None) == full["heads"]["enformer_tiny"] | {"ridge": 1.0}
    assert with_defaults("heads.anything", {"ridge": 2.0}) == full["heads"]["enformer_tiny"]
    given = MODELS["enformer_tiny"]["finetune"]
    assert with_defaults("models.*.finetune", given) == full["models"]["enformer_tiny"]["finetune"]
    assert defaults("models.*.finetune")["lora"]["rank"] == 8 and given["lora"] == {"rank": 4}
    assert with_defaults("splits", {"genes": {"by": "gene"}}) == full["splits"]
    a = defaults("concordance")
    a["genes_to_plot"].append("G1")  # defaults are copies, not the schema's own objects
    assert defaults("concordance")["genes_to_plot"] == []


def test_no_kind_declares_a_key_the_schema_defaults():
    """Snakemake fills the schema's defaults into models.<name> before model_spec runs and
    the config wins over the kind: a kind default for such a key would never be used."""
    common = set(defaults("models.*"))
    assert common and not common & set(PER_KIND)
    for name, kind in KINDS.items():
        assert not common & set(kind.defaults), name


def test_model_spec_of_a_raw_config_equals_that_of_a_validated_one():
    assert set(MODELS) == set(KINDS), "give every kind a config here"
    validated = _validated(_config(MODELS))["models"]
    for name, cfg in MODELS.items():
        assert validated[name] != cfg  # validate filled something in
        spec = model_spec(cfg, name)
        assert spec == model_spec(validated[name], name), name
        assert spec == model_spec(spec, name), name  # a resolved spec resolves to itself
    assert model_spec(MODELS["enformer"])["weights"] == KINDS["enformer"].defaults["weights"]
    assert model_spec(MODELS["borzoi"])["attention"] == "auto"


# The fine-tuning checkpoint digest (hapexp.training.finetune.config_digest) of the demo's
# enformer_tiny_ft on the people and genes below, computed by the code before the schema held
# the finetune block's defaults and before common.smk stopped writing `weights` into `config`.
DIGEST_BEFORE = "32ae5bf5a9a36b6c"
PEOPLE = {"train": ["S1", "S2", "S3"], "validation": ["S4"], "test": ["S5"]}
GENES = {"train": ["G1", "G2"], "test": ["G3"]}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    """The demo workflow parsed by Snakemake: its `config` afterwards and what the rules get."""
    return parse_workflow(
        tmp_path_factory.mktemp("parse"),
        REPO / "config" / "config.yaml",
        {
            "config": "config",
            "specs": "{m: model_cfg(SimpleNamespace(model=m)) for m in MODELS}",
            "finetune": "{m: finetune_spec(SimpleNamespace(model=m)) for m in FINETUNED}",
        },
    )


def test_parsing_the_workflow_writes_nothing_into_config_but_validate(parsed):
    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert parsed["config"] == json.loads(json.dumps(_validated(raw), default=str))


def test_rules_get_the_derived_weights_and_store_all_tracks(parsed):
    specs = parsed["specs"]
    assert specs["enformer_tiny_ft"]["weights"] == "results/demo/finetune/enformer_tiny_ft/weights.pt"
    assert parsed["config"]["models"]["enformer_tiny_ft"].get("weights") is None
    assert specs["enformer_tiny"]["store_all_tracks"] is True  # listed in heads
    assert parsed["config"]["models"]["enformer_tiny"]["store_all_tracks"] is False
    assert (
        specs["oracle"]["store_all_tracks"] is False
        and specs["oracle"]["weights"] == "resources/demo/oracle.pt"
    )


def test_the_finetuning_checkpoint_digest_is_unchanged(parsed):
    """Rule finetune's spec carries the finetune block as written: checkpoints of earlier
    runs resume, and the demo's checkpoint.pt stays the same file."""
    from hapexp.training.finetune import config_digest, resolve

    cfg = parsed["config"]["models"]["enformer_tiny_ft"]["finetune"]
    spec = parsed["finetune"]["enformer_tiny_ft"]
    assert (
        spec["finetune"]
        == yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"]["enformer_tiny_ft"][
            "finetune"
        ]
    )
    assert config_digest(spec, resolve(cfg, "enformer_tiny_ft"), PEOPLE, GENES) == DIGEST_BEFORE
