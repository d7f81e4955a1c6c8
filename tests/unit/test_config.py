import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from mmrun.config_check import check_overrides, conf_dir, defaults_groups, group_options, normalise_overrides
from mmrun.errors import ConfigError


def test_plus_group_becomes_select_but_key_appends_stay():
    args = ["+fusion=attention", "+fusion.extra=1", "+trainer.foo=2", "fusion=concat", "+experiment=quick"]
    assert normalise_overrides(args, "train") == [
        "fusion=attention", "+fusion.extra=1", "+trainer.foo=2", "fusion=concat", "experiment=quick"
    ]


def test_misspelt_option_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        check_overrides(["optimizer=adamww"], "train", multirun=False)
    message = str(info.value)
    assert "'adamw'" in message and "adam, adamw, sgd" in message


def test_misspelt_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'max_epochs'"):
        check_overrides(["trainer.max_epoch=3"], "train", multirun=False)
    with pytest.raises(ConfigError, match="did you mean 'seed'"):
        check_overrides(["sed=3"], "train", multirun=False)


def test_every_sweep_value_is_checked():
    check_overrides(["fusion=concat,attention", "seed=1,2"], "train", multirun=True)
    with pytest.raises(ConfigError, match="not an option of fusion"):
        check_overrides(["fusion=concat,atention"], "train", multirun=True)


def test_unparsable_override():
    with pytest.raises(ConfigError, match="cannot read override"):
        check_overrides(["trainer.max_epochs=[1,"], "train", multirun=False)


def test_every_option_composes():
    """Every option of every group composes with the primary config (no broken YAML)."""
    selected = defaults_groups("train")
    for group, options in group_options().items():
        plus = "" if group in selected else "+"  # groups outside the defaults (sweep) are appended
        check_overrides([f"{plus}{group}={','.join(options)}"], "train", multirun=True)


def test_a_list_selects_several_options_and_each_is_checked():
    check_overrides(["logger=[csv,tensorboard]"], "train", multirun=False)
    with pytest.raises(ConfigError, match="'tensorbord' is not an option of logger; did you mean 'tensorboard'"):
        check_overrides(["logger=[csv,tensorbord]"], "train", multirun=False)


def test_experiment_presets_are_global():
    for option in group_options()["experiment"]:
        first_line = (conf_dir() / "experiment" / f"{option}.yaml").read_text().splitlines()[0]
        assert first_line == "# @package _global_"


def test_help_lists_groups_without_importing_torch():
    code = (
        "import sys, io, contextlib\n"
        "from mmrun.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out): main(['--help'])\n"
        "assert 'torch' not in sys.modules and 'pytorch_lightning' not in sys.modules\n"
        "print(out.getvalue())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for group, options in group_options().items():
        assert group in result.stdout and ", ".join(options) in result.stdout


def test_trainer_presets_are_valid_lightning_arguments():
    import inspect

    import pytorch_lightning as pl

    accepted = set(inspect.signature(pl.Trainer.__init__).parameters)
    for option in group_options()["trainer"]:
        cfg = OmegaConf.load(conf_dir() / "trainer" / f"{option}.yaml")
        assert set(cfg) - {"defaults", "_target_"} <= accepted


def test_every_option_description_is_a_whole_sentence():
    from mmrun.config_check import conf_dir, description

    for group, options in group_options().items():
        for option in options:
            text = description([conf_dir()], group, option)
            assert text and text.endswith((".", ")")), f"{group}/{option}: {text!r}"
    assert description([conf_dir()], "dataset", "synthetic").endswith("reaches more than ~50% accuracy.")
