"""The option pre-check knows the options of the user's config folders (``--config-dir``/``-cd``,
``hydra.searchpath``: ``file://`` and ``pkg://``), refuses typos with a suggestion drawn from
them and mmrun's own, and refuses folders that are not there; DDP workers of a sweep keep them."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from mmrun.cli import with_config_folders
from mmrun.config_check import (check_overrides, conf_dir, config_dir_arg, group_options, searchpath_folder,
                                searchpath_override, user_searchpath)
from mmrun.errors import ConfigError

PRESET = "# @package _global_\n# My experiment.\nseed: 77\n"


@pytest.fixture
def myconf(tmp_path):
    """A user config folder with one experiment preset and one new group."""
    (tmp_path / "myconf" / "experiment").mkdir(parents=True)
    (tmp_path / "myconf" / "experiment" / "mine.yaml").write_text(PRESET)
    (tmp_path / "myconf" / "extras").mkdir()
    (tmp_path / "myconf" / "extras" / "note.yaml").write_text("# @package _global_\nnote_added: true\n")
    return tmp_path / "myconf"


@pytest.mark.parametrize("args", [["--config-dir", "DIR", "seed=1"], ["-cd", "DIR", "seed=1"],
                                  ["--config-dir=DIR", "seed=1"], ["-m", "-cd", "DIR", "seed=1"]])
def test_config_dir_is_read_as_hydra_reads_it(args):
    assert config_dir_arg(args) == ("DIR", ["seed=1"])
    assert config_dir_arg(["--cfg", "job", "seed=1"]) == (None, ["seed=1"])  # -c/--cfg is not -cd


def test_user_options_follow_mmruns_own(myconf):
    groups = group_options(conf_dir(), myconf)
    assert groups["experiment"] == [*group_options()["experiment"], "mine"]
    assert groups["extras"] == ["note"]


def test_an_option_of_the_config_dir_is_accepted(myconf):
    check_overrides(["experiment=mine", "+extras=note"], "train", multirun=False, config_dir=str(myconf))
    check_overrides(["experiment=quick,mine"], "train", multirun=True, config_dir=str(myconf))


def test_an_option_of_a_searchpath_folder_is_accepted(myconf, monkeypatch):
    check_overrides([f"hydra.searchpath=[file://{myconf}]", "experiment=mine"], "train", multirun=False)
    monkeypatch.chdir(myconf.parent)  # a relative file:// path is read from the working folder, as Hydra does
    check_overrides(["hydra.searchpath=[file://myconf]", "experiment=mine"], "train", multirun=False)


def test_a_package_folder_on_the_searchpath_is_read(myconf, monkeypatch):
    (myconf / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(myconf.parent))
    assert searchpath_folder("pkg://myconf") == myconf
    check_overrides(["hydra.searchpath=[pkg://myconf]", "experiment=mine"], "train", multirun=False)


def test_a_typo_is_refused_naming_the_closest_of_all_options(myconf):
    with pytest.raises(ConfigError) as caught:
        check_overrides(["experiment=mien"], "train", multirun=False, config_dir=str(myconf))
    message = str(caught.value)
    assert message.startswith("'mien' is not an option of experiment; did you mean 'mine'?")
    assert "quick" in message and "\n" not in message


def test_without_the_folder_its_option_is_still_refused():
    with pytest.raises(ConfigError, match="'mine' is not an option of experiment"):
        check_overrides(["experiment=mine"], "train", multirun=False)


@pytest.mark.parametrize("config_dir, overrides, fragment", [
    ("missing", [], "--config-dir missing is not a folder"),
    (None, ["hydra.searchpath=[file://missing]"], "hydra.searchpath entry file://missing is not a folder"),
    (None, ["hydra.searchpath=[pkg://no_such_package_here]"], "no installed package 'no_such_package_here'"),
    (None, ["hydra.searchpath=file://x"], "hydra.searchpath must be a list of config folders"),
])
def test_folders_that_are_not_there_are_refused_in_one_line(config_dir, overrides, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=fragment):
        check_overrides([*overrides, "seed=1"], "train", multirun=False, config_dir=config_dir)


def test_config_dir_comes_first_and_the_override_reads_back_unchanged(tmp_path):
    odd = tmp_path / "my conf, (v2)='x'"
    odd.mkdir()
    parsed = OverridesParser.create().parse_overrides(["hydra.searchpath=[pkg://a.b,file:///c]"])
    entries = user_searchpath(str(odd), parsed)
    assert entries == [f"file://{odd}", "pkg://a.b", "file:///c"]
    assert OverridesParser.create().parse_override(searchpath_override(entries)).value() == entries


def test_ddp_workers_of_a_sweep_job_keep_the_config_folders():
    args = ["-m", "-cd", "myconf", "hydra.searchpath=[file:///x]", "experiment=mine,quick"]
    worker = ["experiment=mine", 'hydra.run.dir="sweep/experiment=mine"']  # ddp_child_args: the job's overrides
    assert with_config_folders(worker, args) == [*worker, "--config-dir", "myconf", "hydra.searchpath=[file:///x]"]
    assert with_config_folders(args, args) == args  # not a worker: unchanged
