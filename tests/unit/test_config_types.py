"""Typed config checks: wrong types and out-of-range values are refused in one line naming the
key, before anything heavy; every packaged option passes; manifest label and split advice."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mmrun.cli import main
from mmrun.config_check import check_config, conf_dir, defaults_groups, group_options, leaves
from mmrun.config_schema import SCHEMA, matches
from mmrun.errors import ConfigError, DataError

REFUSED = [
    ("train", ["optimizer.lr=abc"]),
    ("train", ["optimizer.lr=-1"]),
    ("train", ["optimizer.lr=0"]),
    ("train", ["trainer.max_epochs=two"]),
    ("train", ["trainer.max_epochs=0"]),
    ("train", ["trainer.max_epochs=2.5"]),
    ("train", ["seed=1.5"]),
    ("train", ["seed=abc"]),
    ("train", ["seed=true"]),
    ("train", ["dataset.batch_size=0"]),
    ("train", ["dataset.eval_batch_size=-5"]),
    ("train", ["dataset.noise=2"]),
    ("train", ["dataset.missing_rate=1"]),
    ("train", ["dataset.size=abc"]),
    ("train", ["dataset.splits=[0.5,0.5,0.5]"]),
    ("train", ["callbacks.early_stopping.patience=-1"]),
    ("train", ["callbacks.weight_averaging.decay=1"]),
    ("train", ["scheduler.patience=-2"]),
    ("train", ["scheduler=cosine", "scheduler.warmup_fraction=1.5"]),
    ("train", ["task.dropout=1"]),
    ("train", ["task.type=ranking"]),
    ("train", ["fusion=attention", "fusion.dropout=1.5"]),
    ("train", ["fusion=mult", "fusion.heads=0"]),
    ("train", ["fusion=mult", "fusion.pooling=first"]),
    ("train", ["fusion=attention", "fusion.scoring=dot"]),
    ("train", ["fusion=gated", "fusion.gate=tanh"]),
    ("train", ["encoder/text=transformer", "encoder.text.dropout=-0.1"]),
    ("train", ["encoder/image=cnn", "encoder.image.channels=[16,abc]"]),
    ("train", ["trainer.limit_train_batches=1.5"]),
    ("train", ["trainer.devices=0"]),
    ("train", ["optimizer=sgd", "optimizer.momentum=abc"]),
    ("train", ["optimizer.fused=maybe"]),
    ("train", ["monitor_mode=up"]),
    ("train", ["model.compile=yes"]),
    ("train", ["dataset=manifest", "dataset.image.size=[16]"]),
    ("train", ["dataset=manifest", "dataset.on_error=ignore"]),
    ("train", ["dataset=manifest", "dataset.text.max_length=0"]),
    ("train", ["dataset=manifest", "dataset.augment.spec_mask=1"]),
    ("eval", ["batch_size=abc"]),
    ("eval", ["batch_size=0"]),
    ("eval", ["split=everything"]),
    ("eval", ["dataset.on_error=ignore"]),
]

ACCEPTED = [
    ("train", ["trainer.max_epochs=-1"]),  # Lightning's "no limit": early stopping ends the run
    ("train", ["optimizer.lr=auto"]),
    ("train", ["optimizer.lr=1"]),
    ("train", ["dataset.task=regression", "dataset.noise=2"]),  # a standard deviation for regression
    ("train", ["trainer.limit_val_batches=3"]),
    ("train", ["trainer.limit_val_batches=0.25"]),
    ("train", ["trainer.devices=[0,1]"]),
    ("train", ["trainer.fast_dev_run=true"]),
    ("train", ["trainer.precision=bf16-mixed"]),
    ("train", ["fusion=tensor", "fusion.hidden=0"]),
    ("train", ["task.dropout=0"]),
    ("train", ["dataset.modalities=[image,text]"]),
    ("train", ["dataset=manifest", "dataset.image.size=32"]),
    ("train", ["dataset=manifest", "dataset.image.size=[16,24]"]),
    ("train", ["dataset=manifest", "dataset.splits=[1.0,0,0]"]),
    ("eval", ["ckpt_path=run/best.ckpt", "batch_size=32", "split=all", "dataset.path=new.csv"]),
]


def composed(command: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name=command, overrides=overrides)


@pytest.mark.parametrize("command, overrides", REFUSED, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_wrong_type_or_range_is_refused_in_one_line_naming_the_key(command, overrides):
    with pytest.raises(ConfigError) as caught:
        check_config(composed(command, overrides), command)
    message = str(caught.value)
    assert message.startswith(f"{overrides[-1]} must be ") and "\n" not in message
    # The example in the message is itself a valid value.
    example = message.rsplit("(e.g. ", 1)[1].rstrip(")")
    assert example.split("=", 1)[0] == overrides[-1].split("=", 1)[0]
    check_config(composed(command, [*overrides[:-1], example]), command)


@pytest.mark.parametrize("command, overrides", ACCEPTED, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_valid_edge_values_pass(command, overrides):
    check_config(composed(command, overrides), command)


# Keys deliberately without a rule: components, the column mapping, switched-off callbacks,
# tracker names (any text or number).
UNCHECKED = ("*._target_", "*.*._target_", "*._convert_", "dataset.columns", "dataset.user_columns", "callbacks.*",
             "logger.*.name", "logger.*.version", "logger.wandb.project")
SELECTED = defaults_groups("train")
EVERY_OPTION = [("train", f"{'' if group in SELECTED else '+'}{group}={option}")
                for group, options in group_options().items() for option in options]


@pytest.mark.parametrize("command, override", [*EVERY_OPTION, ("eval", None)])
def test_every_packaged_option_passes_and_each_key_has_a_rule(command, override):
    """The schema never refuses a shipped default, and no documented key goes unchecked.

    (eval's ``ckpt_path=???`` is skipped: mmrun eval asks for it in its own words.)
    """
    cfg = composed(command, [override] if override else [])
    check_config(cfg, command)
    unruled = [key for key, _ in leaves(cfg) if not any(matches(p, key) for p in (*SCHEMA[command], *UNCHECKED))]
    assert not unruled, f"no rule in mmrun/config_schema.py for {unruled}"


def test_patterns_match_within_one_dotted_part():
    assert matches("encoder.*.dropout", "encoder.text.dropout")
    assert not matches("encoder.*.dropout", "encoder.text.inner.dropout")
    assert matches("trainer.limit_*_batches", "trainer.limit_val_batches")
    assert not matches("fusion.dropout", "fusion.dropout_rate")


def test_unresolvable_interpolations_are_skipped_and_copies_report_the_source():
    cfg = OmegaConf.create({"seed": 1, "dataset": {"path": "${hydra:runtime.cwd}/a.csv", "seed": "${seed}",
                                                   "batch_size": 0}})
    with pytest.raises(ConfigError, match=r"^dataset\.batch_size=0 must be"):
        check_config(cfg, "train")
    cfg.seed = "abc"
    with pytest.raises(ConfigError, match=r"^seed=abc must be"):  # not dataset.seed, which copies it
        check_config(cfg, "train")


def test_check_config_imports_neither_torch_nor_lightning():
    code = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        "from mmrun.config_check import check_config, conf_dir\n"
        "from mmrun.errors import ConfigError\n"
        "with initialize_config_dir(config_dir=str(conf_dir()), version_base='1.3'):\n"
        "    cfg = compose(config_name='train', overrides=['optimizer.lr=abc'])\n"
        "try:\n"
        "    check_config(cfg, 'train')\n"
        "except ConfigError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('not refused')\n"
        "assert 'torch' not in sys.modules and 'pytorch_lightning' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cfg_with_a_bad_option_is_one_line(capsys):
    assert main(["train", "--cfg", "job", "fusion=nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmrun: error: 'nope' is not an option of fusion") and err.count("\n") == 1


def write_table(path, rows):
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def build_manifest(path, **options):
    from mmrun.data.manifest import ManifestDataModule

    ManifestDataModule(path=str(path), cache=False, **options).setup()


def test_a_label_column_with_one_training_class_is_refused(tmp_path):
    table = write_table(tmp_path / "one.csv", [["x", "target"], *[[i, "a"] for i in range(10)]])
    with pytest.raises(DataError) as caught:
        build_manifest(table, label_column="target")
    message = str(caught.value)
    assert message.startswith("one.csv: the label column 'target' has a single class ('a')")
    assert "dataset.label_column" in message and "\n" not in message


def test_empty_split_advice_without_a_split_column_never_names_one(tmp_path):
    table = write_table(tmp_path / "tiny.csv", [["x", "label"], [1, "a"], [2, "b"], ["zz", "a"], [3, "b"]])
    with pytest.raises(DataError) as caught:
        build_manifest(table, on_error="skip", splits=[1.0, 0.0, 0.0])
    message = str(caught.value)
    assert message.startswith("tiny.csv: no usable rows in the val, test splits (train 3, val 0, test 0)")
    assert "fix the 1 skipped bad row" in message and "dataset.splits" in message
    assert "split_column" not in message and "split=" not in message


def test_empty_split_advice_names_the_split_column(tmp_path):
    rows = [["x", "label", "part"], [1, "a", "train"], [2, "b", "train"], [3, "a", "test"], [4, "b", "test"]]
    with pytest.raises(DataError) as caught:
        build_manifest(write_table(tmp_path / "parts.csv", rows), split_column="part")
    message = str(caught.value)
    assert "no usable rows in the val split" in message
    assert "add rows with part=val" in message and "dataset.split_column=null" in message
