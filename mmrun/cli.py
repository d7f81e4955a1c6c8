"""`mmrun <command> [overrides]`: the command-line entry point. Imports nothing heavy."""

from __future__ import annotations

import difflib
import importlib
import os
import sys

from mmrun.errors import ConfigError, MmrunError

# command -> (module with run(cfg), primary config, one-line help)
COMMANDS = {
    "train": ("mmrun.train", "train", "train one model (or sweep with -m): mmrun train fusion=attention"),
    "eval": ("mmrun.evaluate", "eval", "score a checkpoint: mmrun eval ckpt_path=PATH [split=test|val|train]"),
    "predict": ("mmrun.predict", "predict",
                "predict new rows, labels optional: mmrun predict ckpt_path=PATH dataset.path=new.csv"),
}
# command -> (module with main(args) -> exit code, one-line help); these bypass Hydra.
PLAIN_COMMANDS = {
    "list": ("mmrun.listing", "list a config group's options with descriptions: mmrun list fusion"),
    "compare": ("mmrun.compare", "compare run or sweep folders: mmrun compare DIR [DIR ...] group_by=[fusion]"),
}
HYDRA_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"}
# Info flags that compose the config the overrides describe, so a bad option is refused in one line.
COMPOSING_INFO_FLAGS = {"--cfg", "-c"}
MULTIRUN_FLAGS = {"-m", "--multirun"}
# Hydra runs one of these modes per command line.
EXCLUSIVE_MODES = (MULTIRUN_FLAGS, {"--cfg", "-c"}, {"--info", "-i"}, {"--shell-completion", "-sc"})
# Hydra flags that take a value, so the value is not mistaken for an override.
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp",
               "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}


def usage() -> str:
    from mmrun.config_check import conf_dir, group_options

    lines = [
        "usage: mmrun <command> [overrides] [hydra flags]",
        "",
        "Commands:",
        *(f"  {name:<8}{text}" for name, (_, _, text) in COMMANDS.items()),
        *(f"  {name:<8}{text}" for name, (_, text) in PLAIN_COMMANDS.items()),
        "",
        "Config groups (choose an option with group=option, e.g. fusion=attention encoder/text=lstm):",
    ]
    groups = group_options(conf_dir())
    width = max(len(g) for g in groups) + 2
    lines += [f"  {group:<{width}}{', '.join(options)}" for group, options in groups.items()]
    lines += [
        "",
        "Overrides: any key, e.g. trainer.max_epochs=3 dataset.modalities=[image,text] seed=7",
        "Sweeps:    mmrun train -m fusion=concat,attention seed=1,2,3",
        "Hydra:     mmrun train --cfg job (show the composed config), mmrun train --help",
        "Errors show one line; HYDRA_FULL_ERROR=1 shows the traceback.",
    ]
    return "\n".join(lines)


def overrides_of(args: list[str]) -> list[str]:
    """The positional overrides among Hydra's command-line arguments."""
    result, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in VALUE_FLAGS:
            skip = True
        elif not arg.startswith("-"):
            result.append(arg)
    return result


def with_config_folders(child: list[str], args: list[str]) -> list[str]:
    """A DDP worker of a sweep job runs with its job's overrides only (``ddp_child_args``); add
    back the user's config folders of the command line (``--config-dir``, ``hydra.searchpath``)."""
    from mmrun.config_check import SEARCHPATH, config_dir_arg

    if child == args:
        return args
    config_dir = config_dir_arg(args)[0]
    searchpath = [o for o in overrides_of(args) if o.lstrip("+").split("=", 1)[0] == SEARCHPATH]
    return [*child, *(["--config-dir", config_dir] if config_dir else []), *searchpath]


def quote_paths(args: list[str], multirun: bool) -> list[str]:
    """Quote path values that Hydra's override grammar would misread, so paths paste as they are.

    Sweep job folders are named after their overrides (``fusion=attention,seed=1-00c62586``);
    ``ckpt_path=<that folder>/checkpoints/best.ckpt`` would stop at the second ``=``. Values
    of path keys (``ckpt_path``, ``resume``, ``*.path``, ``*_dir``, ``*.root``) holding ``=``,
    or a comma outside a sweep (where commas list values), are quoted for Hydra.
    """
    positional = set(overrides_of(args))
    quoted = []
    for arg in args:
        key, _, value = arg.partition("=")
        is_path = key.lstrip("+") in ("ckpt_path", "resume") or key.endswith((".path", "_dir", ".dir", ".root"))
        special = "=" in value or ("," in value and not multirun)
        if arg in positional and is_path and special and value[:1] not in ("'", '"', "["):
            mark = "'" if '"' in value else '"'
            arg = f"{key}={mark}{value}{mark}"
        quoted.append(arg)
    return quoted


def check_output_folder(overrides: list[str], multirun: bool) -> None:
    """Refuse a run or sweep folder that cannot be written before any work (default: outputs/)."""
    from mmrun.paths import check_writable

    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = [o.split("=", 1)[1].strip("'\"") for o in overrides if o.split("=", 1)[0] == key]
    check_writable(given[-1] if given else "outputs", key)


def run_command(command: str, args: list[str]) -> int:
    from mmrun.app import run_hydra
    from mmrun.distributed import ddp_child_args
    from mmrun.config_check import check_overrides, conf_dir, config_dir_arg, normalise_overrides

    module_name, config_name, _ = COMMANDS[command]
    modes = [flags for flags in EXCLUSIVE_MODES if flags.intersection(args)]
    if len(modes) > 1:
        shown = " and ".join("/".join(sorted(flags, key=len)) for flags in modes)
        raise ConfigError(f"{shown} cannot be combined (Hydra runs one mode per command); "
                          f"to see a sweep job's config, drop -m and keep its overrides")
    args = with_config_folders(ddp_child_args(args), args)
    if command == "train":
        from mmrun.resume import resume_args

        args = resume_args(args, overrides_of(args))
    args = quote_paths(args, multirun=bool(MULTIRUN_FLAGS.intersection(args)))
    positional = set(overrides_of(args))
    normalised = normalise_overrides([a for a in args], config_name)
    args = [new if old in positional else old for old, new in zip(args, normalised)]
    if not (HYDRA_INFO_FLAGS - COMPOSING_INFO_FLAGS).intersection(args):
        check_overrides(overrides_of(args), config_name, multirun=bool(MULTIRUN_FLAGS.intersection(args)),
                        config_dir=config_dir_arg(args)[0])
    if not HYDRA_INFO_FLAGS.intersection(args):
        check_output_folder(overrides_of(args), multirun=bool(MULTIRUN_FLAGS.intersection(args)))
    module = importlib.import_module(module_name)
    run_hydra(module.run, str(conf_dir()), config_name, args)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] == "--version":
        from mmrun import __version__

        print(f"mmrun {__version__}")
        return 0
    command = args[0]
    known = [*COMMANDS, *PLAIN_COMMANDS]
    if command not in known:
        match = difflib.get_close_matches(command, known, n=1)
        hint = f"; did you mean {match[0]!r}?" if match else ""
        print(f"mmrun: error: unknown command {command!r}{hint} Commands: {', '.join(known)}. "
              f"See mmrun --help", file=sys.stderr)
        return 2
    try:
        if command in PLAIN_COMMANDS:
            return importlib.import_module(PLAIN_COMMANDS[command][0]).main(args[1:])
        return run_command(command, args[1:])
    except MmrunError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"mmrun: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
