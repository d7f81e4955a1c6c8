"""Malicious checkpoints are refused with one line before anything in them runs.

Each payload writes a sentinel file when Hydra instantiates it (through builtins, pathlib,
numpy, pandas, operator, functools, os, subprocess, OmegaConf resolvers, or a pickle). The
refusal tests assert a ``CheckpointError`` and no sentinel; the control test shows that the
live payloads do create it once the check is switched off, so the sentinel assertions mean
something.
"""

from __future__ import annotations

import contextlib
import copy
import pathlib
import pickle
from pathlib import Path
from typing import Iterator

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from conftest import compose_train, run_mmrun
from mmrun.checkpoint import load_checkpoint, model_from_checkpoint
from mmrun.checkpoint_safety import MAX_DEPTH, config_problem
from mmrun.errors import CheckpointError
from mmrun.eval_data import build_datamodule, dataset_config, split_tensors
from mmrun.model import MultimodalModule

SENTINEL = "pwned"


@contextlib.contextmanager
def as_train_saves(overrides: list[str], run_dir: Path) -> Iterator[DictConfig]:
    """The composed train config, with Hydra's run-time state set so it resolves as when train saves it."""
    from hydra.core.hydra_config import HydraConfig

    from mmrun import resolvers

    resolvers.register()
    cfg = compose_train(overrides, with_hydra=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        HydraConfig.instance().set_config(cfg)  # what ${hydra:...} and mmrun's resolvers read
        del cfg["hydra"]
    try:
        yield cfg
    finally:
        HydraConfig.instance().cfg = None


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """A real mmrun checkpoint of an untrained model on tiny synthetic data, and that model."""
    folder = tmp_path_factory.mktemp("genuine")
    with as_train_saves(["dataset.size=60"], folder) as cfg:
        datamodule = instantiate(cfg.dataset)
        datamodule.setup()
        model = MultimodalModule(cfg, datamodule.spec)
        checkpoint = {"state_dict": model.state_dict()}
        model.on_save_checkpoint(checkpoint)  # what Lightning calls when mmrun train saves
    torch.save(checkpoint, folder / "best.ckpt")
    return folder / "best.ckpt", checkpoint, model.eval()


def open_like_eval(path: Path):
    """What ``mmrun eval`` builds from a checkpoint: the model, then its dataset."""
    checkpoint = load_checkpoint(path)
    model = model_from_checkpoint(checkpoint, path)
    data_cfg, _ = dataset_config(checkpoint["mmrun"]["config"]["dataset"], None)
    return model, build_datamodule(data_cfg, model.spec)


# ----------------------------------------------------------------------------- payloads
def path_node(path: Path) -> dict:
    return {"_target_": "pathlib.Path", "_args_": [str(path)]}


class Touch:
    """Unpickling it creates the file at ``path``: what an attacker's pickle would run instead."""

    def __init__(self, path: Path) -> None:
        self.path = pathlib.Path(path)

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def pickle_then_load(loader: dict, folder: Path) -> dict:
    """The issue's chain: builtins.list runs pathlib (write a text pickle), then ``loader`` unpickles it."""
    pickled = folder / "payload.pkl"
    write = {"_target_": "pathlib.Path.write_text",
             "_args_": [path_node(pickled), pickle.dumps(Touch(folder / SENTINEL), protocol=0).decode("latin1")]}
    return {"_target_": "builtins.list", "_args_": [[write, {**loader, "_args_": [str(pickled)]}]]}


def touch_sorted_by(key: dict, folder: Path) -> dict:
    """``sorted([Path(sentinel)], key=...)``: the key callable, built with ``_partial_``, touches it."""
    return {"_target_": "builtins.sorted", "_args_": [[path_node(folder / SENTINEL)]], "key": key}


PAYLOADS = {
    "builtins-pathlib-numpy.load": lambda d: pickle_then_load({"_target_": "numpy.load", "allow_pickle": True}, d),
    "pandas.read_pickle": lambda d: pickle_then_load({"_target_": "pandas.read_pickle"}, d),
    "pandas.Series.to_csv": lambda d: {"_target_": "pandas.Series.to_csv", "path_or_buf": str(d / SENTINEL),
                                       "self": {"_target_": "pandas.Series", "data": [1]}},
    "numpy.savetxt": lambda d: {"_target_": "numpy.savetxt", "fname": str(d / SENTINEL), "X": [1.0]},
    "pathlib.Path.touch": lambda d: {"_target_": "pathlib.Path.touch", "_args_": [path_node(d / SENTINEL)]},
    "operator.add": lambda d: {"_target_": "pathlib.Path.touch", "_args_": [
        {"_target_": "pathlib.Path", "_args_": [{"_target_": "operator.add", "_args_": [f"{d}/", SENTINEL]}]}]},
    "functools.partial": lambda d: touch_sorted_by(
        {"_target_": "functools.partial", "_args_": [{"_target_": "pathlib.Path.touch", "_partial_": True}]}, d),
    "_partial_": lambda d: touch_sorted_by({"_target_": "pathlib.Path.touch", "_partial_": True}, d),
    "os.makedirs": lambda d: {"_target_": "os.makedirs", "name": str(d / SENTINEL)},
    "os.system": lambda d: {"_target_": "os.system", "_args_": [f"touch {d / SENTINEL}"]},
    "subprocess.run": lambda d: {"_target_": "subprocess.run", "args": ["touch", str(d / SENTINEL)]},
    "oc.create": lambda d: "${oc.create:'{_target_: pathlib.Path.touch, self: {_target_: pathlib.Path, _args_: ["
                           + str(d / SENTINEL) + "]}}'}",
}
# Where each payload is hidden: an extra key of a component that eval instantiates.
HIDDEN_AT = {
    "builtins-pathlib-numpy.load": ("encoder", "text", "extra"),
    "pandas.read_pickle": ("dataset", "extra"),
    "pandas.Series.to_csv": ("encoder", "image", "extra"),
    "numpy.savetxt": ("fusion", "extra"),
    "pathlib.Path.touch": ("encoder", "audio", "extra"),
    "operator.add": ("encoder", "tabular", "extra"),
    "functools.partial": ("dataset", "extra"),
    "_partial_": ("fusion", "extra"),
    "os.makedirs": ("encoder", "text", "extra"),
    "os.system": ("dataset", "extra"),
    "subprocess.run": ("encoder", "text", "extra"),
    "oc.create": ("dataset", "extra"),
}
# Payloads that run through mmrun's rebuild when nothing stops them (Hydra's own blocklist
# stops os.system and subprocess.run; the others get past it).
LIVE = ["oc.create", "builtins-pathlib-numpy.load", "pandas.read_pickle", "pandas.Series.to_csv", "numpy.savetxt",
        "pathlib.Path.touch", "operator.add", "functools.partial", "_partial_", "os.makedirs"]


def crafted(genuine, folder: Path, edit) -> Path:
    """The genuine checkpoint with ``edit(config, folder)`` applied to its stored config, saved in ``folder``."""
    _, checkpoint, _ = genuine
    checkpoint = {**checkpoint, "mmrun": copy.deepcopy(checkpoint["mmrun"])}
    edit(checkpoint["mmrun"]["config"], folder)
    path = folder / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path


def put(keys: tuple, value):
    """An edit that sets the stored config's ``keys`` to ``value`` (or to ``value(folder)``, for a payload)."""

    def edit(config: dict, folder: Path) -> None:
        node = config
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value(folder) if callable(value) else value

    return edit


def assert_refused(path: Path, *fragments: str) -> None:
    """Opening ``path`` as eval does raises one line naming ``fragments``, and nothing ran."""
    with pytest.raises(CheckpointError) as refusal:
        open_like_eval(path)
    message = str(refusal.value)
    assert "\n" not in message and "was not loaded" in message
    for fragment in fragments:
        assert fragment in message
    assert not (path.parent / SENTINEL).exists()


# ------------------------------------------------------------------------------- tests
def test_genuine_checkpoint_loads_and_evaluates(genuine):
    path, _, original = genuine
    model, datamodule = open_like_eval(path)
    tensors, row_ids = split_tensors(datamodule, "test")
    assert len(row_ids) > 0
    with torch.no_grad():
        assert torch.equal(model.eval()(tensors), original(tensors))


def test_a_checkpoint_from_before_task_families_loads_with_its_weights(genuine, tmp_path):
    """Layout 1: fusion and head on the module, no task._target_: renamed on load, same outputs."""
    path, checkpoint, original = genuine
    old = copy.deepcopy(checkpoint)
    old["mmrun"]["schema"] = 1
    del old["mmrun"]["config"]["task"]["_target_"]
    old["state_dict"] = {key.removeprefix("task."): value for key, value in old["state_dict"].items()}
    assert any(key.startswith("head.") for key in old["state_dict"])
    torch.save(old, tmp_path / "old.ckpt")
    model, datamodule = open_like_eval(tmp_path / "old.ckpt")
    tensors, _ = split_tensors(datamodule, "test")
    with torch.no_grad():
        assert torch.equal(model.eval()(tensors), original(tensors))
    newer = copy.deepcopy(checkpoint)
    newer["mmrun"]["schema"] = 99
    with pytest.raises(CheckpointError, match="layout version 99, newer than this mmrun's 2"):
        model_from_checkpoint(newer, "new.ckpt")


def test_a_checkpoint_with_lightnings_own_callbacks_loads(genuine, tmp_path):
    """Earlier releases named Lightning's ModelCheckpoint and EarlyStopping (before the tie-break
    subclasses): their configs are still accepted, and only at those keys."""
    _, checkpoint, _ = genuine
    old = copy.deepcopy(checkpoint)
    callbacks = old["mmrun"]["config"]["callbacks"]
    callbacks["model_checkpoint"]["_target_"] = "pytorch_lightning.callbacks.ModelCheckpoint"
    callbacks["early_stopping"]["_target_"] = "pytorch_lightning.callbacks.EarlyStopping"
    assert config_problem(old["mmrun"]["config"]) is None
    callbacks["learning_rate_monitor"]["_target_"] = "pytorch_lightning.callbacks.EarlyStopping"
    assert "not an mmrun component for that key" in config_problem(old["mmrun"]["config"])


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_hydra_target_chains_are_refused(name, genuine, tmp_path):
    path = crafted(genuine, tmp_path, put(HIDDEN_AT[name], PAYLOADS[name]))
    key = ".".join(HIDDEN_AT[name])
    target = PAYLOADS[name](tmp_path)
    assert_refused(path, key, target["_target_"] if isinstance(target, dict) else "${oc.create:")


@pytest.mark.parametrize("name", LIVE)
@pytest.mark.filterwarnings("ignore:Using '_target_:UserWarning")  # Hydra on the functools.partial payload
def test_without_the_check_the_payloads_would_run(name, genuine, tmp_path, monkeypatch):
    monkeypatch.setattr("mmrun.checkpoint.check_checkpoint", lambda checkpoint, source: None)
    path = crafted(genuine, tmp_path, put(HIDDEN_AT[name], PAYLOADS[name]))
    with pytest.raises(Exception):  # the payload runs, then the component refuses the extra key
        open_like_eval(path)
    assert (tmp_path / SENTINEL).exists()


def nested_lists(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (put(("dataset",), PAYLOADS["numpy.savetxt"]), ("config key dataset ", "numpy.savetxt")),
        (put(("encoder", "text", "_target_"), PAYLOADS["os.system"]),
         ("config key encoder.text ", "not a string (dict)")),
        (put(("fusion", "_target_"), "subprocess.getoutput"), ("config key fusion ", "subprocess.getoutput")),
        (put(("fusion", "_target_"), 42), ("config key fusion ", "not a string (int)")),
        (put(("encoder", "text", "_target_"), "mmrun.data.manifest.ManifestDataModule"),
         ("encoder.text", "ManifestDataModule")),  # mmrun's own, but not an encoder
        (put(("encoder", "text", "extra"), {"_target_": "mmrun.encoders.text.RecurrentTextEncoder"}),
         ("encoder.text.extra", "RecurrentTextEncoder")),  # nested, though registered
        (put(("payload",), PAYLOADS["pathlib.Path.touch"]), ("config key payload ", "pathlib.Path.touch")),
        (put(("callbacks", "ema"), PAYLOADS["pathlib.Path.touch"]), ("callbacks.ema", "pathlib.Path.touch")),
        (put(("encoder", "text", "_args_"), lambda d: [PAYLOADS["pathlib.Path.touch"](d)]), ("encoder.text._args_",)),
        (put(("fusion", "_partial_"), True), ("fusion._partial_",)),
        (put(("dataset", "_recursive_"), False), ("dataset._recursive_",)),
        (put(("dataset", "_convert_"), "all"), ("dataset._convert_",)),  # only the manifest dataset has it
        (put(("dataset", "cache_dir"), "${oc.env:HOME}"), ("dataset.cache_dir", "${oc.env:HOME}")),
        (put(("dataset", "${mmrun.run_name:}"), 1), ("dataset", "${mmrun.run_name:}")),
        (put(("task", "type"), torch.zeros(1)), ("task.type", "Tensor")),
        (put(("fusion", "deep"), nested_lists(MAX_DEPTH)), (f"deeper than {MAX_DEPTH}",)),
    ],
    ids=["dataset-replaced", "target-not-string-payload", "subprocess-target", "target-int", "target-of-another-key",
         "nested-registered-target", "unknown-top-level-key", "callback-payload", "_args_", "_partial_",
         "_recursive_", "_convert_", "oc.env-interpolation", "interpolation-key", "tensor-value", "deep-nesting"],
)
def test_special_keys_interpolations_and_odd_values_are_refused(edit, fragments, genuine, tmp_path):
    assert_refused(crafted(genuine, tmp_path, edit), *fragments)


def test_a_pickle_payload_is_not_unpickled(genuine, tmp_path):
    _, checkpoint, _ = genuine
    path = tmp_path / "pickled.ckpt"
    torch.save({**checkpoint, "mmrun": {"config": Touch(tmp_path / SENTINEL), "spec": {}}}, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        open_like_eval(path)
    assert not (tmp_path / SENTINEL).exists()
    torch.load(path, weights_only=False)  # the control: a full unpickling would have run it
    assert (tmp_path / SENTINEL).exists()


def test_model_from_checkpoint_checks_a_dict_from_anywhere(genuine, tmp_path):
    path = crafted(genuine, tmp_path, put(HIDDEN_AT["pathlib.Path.touch"], PAYLOADS["pathlib.Path.touch"]))
    with pytest.raises(CheckpointError, match="encoder.audio.extra"):
        model_from_checkpoint(torch.load(path, weights_only=True))
    assert not (tmp_path / SENTINEL).exists()


@pytest.mark.parametrize(
    "entry, fragment",
    [({}, "lacks the config or the data spec"), ({"config": {}}, "lacks the config or the data spec"),
     ({"config": "x", "spec": {}}, "lacks the config"), ({"config": {"encoder": {}}, "spec": {}}, "no fusion section"),
     ({"spec": {}, "config": {"encoder": {}, "fusion": {}, "task": {}, "dataset": {}}}, "data spec is incomplete")],
)
def test_an_incomplete_mmrun_entry_is_one_line(entry, fragment, genuine, tmp_path):
    _, checkpoint, _ = genuine
    path = tmp_path / "empty.ckpt"
    torch.save({**checkpoint, "mmrun": entry}, path)
    with pytest.raises(CheckpointError, match=fragment) as refusal:
        open_like_eval(path)
    assert str(path) in str(refusal.value) and "\n" not in str(refusal.value)


def halve(state):
    return dict(list(state.items())[: len(state) // 2])


def grow_first(state):
    first = next(iter(state))
    return {**state, first: torch.zeros(*state[first].shape[:-1], state[first].shape[-1] + 1)}


@pytest.mark.parametrize(
    "change, pattern",
    [(halve, r"\d+ weights missing, e\.g\. \S+"),
     (lambda state: {**state, "encoders.video.weight": torch.zeros(1)},
      "1 weight unexpected, e.g. encoders.video.weight"),
     (grow_first, r"1 weight of the wrong shape, e\.g\. \S+ is \[.*\] in the file, \[.*\] in the model"),
     (lambda state: {**state, next(iter(state)): 3}, "is a int in the file")],
    ids=["half", "unexpected", "wrong-shape", "not-a-tensor"],
)
def test_weights_that_do_not_fit_are_one_line(change, pattern, genuine, tmp_path):
    _, checkpoint, _ = genuine
    path = tmp_path / "weights.ckpt"
    torch.save({**checkpoint, "state_dict": change(checkpoint["state_dict"])}, path)
    with pytest.raises(CheckpointError, match=pattern) as refusal:
        open_like_eval(path)
    assert str(path) in str(refusal.value) and "\n" not in str(refusal.value)
    assert "written by another mmrun version (retrain it with this one" in str(refusal.value)


def test_every_packaged_option_passes_the_check(tmp_path):
    """No false refusals: every option of every group that names targets, resolved as train saves it."""
    from mmrun.config_check import group_options

    groups = {g: o for g, o in group_options().items() if g.split("/")[0] in
              ("encoder", "dataset", "fusion", "optimizer", "scheduler", "trainer", "logger", "callbacks")}
    for i in range(max(len(options) for options in groups.values())):  # option i of each group at once
        overrides = [f"{group}={options[i % len(options)]}" for group, options in groups.items()]
        with as_train_saves(overrides, tmp_path) as cfg:
            assert config_problem(OmegaConf.to_container(cfg, resolve=True)) is None, overrides


def test_mmrun_eval_refuses_a_crafted_checkpoint_in_one_line(genuine, tmp_path):
    name = "builtins-pathlib-numpy.load"
    path = crafted(genuine, tmp_path, put(HIDDEN_AT[name], PAYLOADS[name]))
    result = run_mmrun(["eval", f"ckpt_path={path}", "accelerator=cpu"], tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("mmrun: error:") and "encoder.text.extra" in lines[0]
    assert not (tmp_path / SENTINEL).exists()
