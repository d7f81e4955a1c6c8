"""The type and range of every documented config key, checked before anything heavy runs.

``SCHEMA[command]`` maps a dotted key pattern to the ``Rule`` its value must follow; ``*``
stands for part of one key (``encoder.*.dropout``, ``trainer.limit_*_batches``), and a key is
checked by the first pattern that matches it, so specific patterns come before wildcards.
``mmrun.config_check.check_config`` walks the table over the composed config. Keys that a
config does not have are skipped: options differ per dataset, optimizer and encoder.

The option lists repeat those of the modules that use them (``mmrun.encoders.transformer``,
``mmrun.data.preprocess.image``, ...) because those import torch, which this module must not.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable


def shown(value: Any) -> str:
    """A value as it is written on the command line (``null``, ``true``, ``[0.8,0.1,0.1]``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return f"[{','.join(shown(item) for item in value)}]"
    return str(value)


@dataclass(frozen=True)
class Rule:
    """What a key accepts (``accepts``), in words (``wants``), with a valid ``example``."""

    accepts: Callable[[Any], bool]
    wants: str
    example: Any = None

    def __or__(self, other: Rule) -> Rule:
        """Either rule, with the first example (``AUTO`` has none, so ``AUTO | POSITIVE`` shows a number)."""
        return Rule(lambda v: self.accepts(v) or other.accepts(v), f"{self.wants} or {other.wants}",
                    other.example if self.example is None else self.example)

    def pick(self, values: dict[str, Any]) -> Rule:
        """The rule for a config whose resolved leaves are ``values``: this one, whatever they say."""
        return self

    def refusal(self, key: str, value: Any) -> str:
        return f"{key}={shown(value)} must be {self.wants} (e.g. {key}={shown(self.example)})"


@dataclass(frozen=True)
class Depends:
    """The rule of a key whose meaning follows another key's value (``cases``, else ``default``)."""

    key: str
    cases: dict[Any, Rule]
    default: Rule

    def pick(self, values: dict[str, Any]) -> Rule:
        """The rule that fits the value of ``key`` among the config's resolved leaves ``values``."""
        return self.cases.get(values.get(self.key), self.default)


def _plain(x: float) -> str:
    return str(int(x)) if x.is_integer() else f"{x:g}"


def number(interval: str = "(-inf, inf)", example: Any = None, whole: bool = False, what: str | None = None) -> Rule:
    """A number in ``interval`` (``"[0, 1)"``: brackets include the end, parentheses exclude it).

    ``whole``: an int (``2.0`` and ``true`` are refused); ``what`` names it ("a probability").
    """
    low, high = (float(end) for end in interval[1:-1].split(","))
    closed_low, closed_high = interval[0] == "[", interval[-1] == "]"
    kinds = int if whole else (int, float)

    def accepts(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, kinds) or math.isnan(value):
            return False
        return (low <= value if closed_low else low < value) and (value <= high if closed_high else value < high)

    noun = what or ("a whole number" if whole else "a number")
    if high == math.inf and low == 0 and not closed_low:
        wants = noun.replace("a ", "a positive ", 1)
    elif high == math.inf:
        wants = f"{noun} {'>=' if closed_low else '>'} {_plain(low)}" if low > -math.inf else noun
    else:
        wants = f"{noun} in {interval[0]}{_plain(low)}, {_plain(high)}{interval[-1]}"
    return Rule(accepts, wants, example)


def choice(*options: Any) -> Rule:
    """One of ``options`` (of the same type: ``true`` is not ``1``)."""
    return Rule(lambda v: any(v == o and type(v) is type(o) for o in options),
                f"one of {', '.join(map(shown, options))}" if len(options) > 1 else shown(options[0]), options[0])


def text(example: str) -> Rule:
    return Rule(lambda v: isinstance(v, str), "text", example)


def list_of(item: Rule, wants: str, example: list, length: int | None = None) -> Rule:
    """A list whose items each follow ``item`` (of ``length`` items when given)."""
    return Rule(lambda v: isinstance(v, list) and (length is None or len(v) == length) and all(map(item.accepts, v)),
                wants, example)


def nullable(rule: Rule) -> Rule:
    return rule if rule.accepts(None) else rule | Rule(lambda v: v is None, "null")


def _fractions(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(map(UNIT.accepts, value)) and abs(sum(value) - 1) < 1e-6


def _increasing(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and all(map(COUNT.accepts, value))
            and 0 < value[0] < value[1] < value[2])


@lru_cache(maxsize=None)
def _pattern(pattern: str) -> re.Pattern:
    return re.compile("[^.]*".join(map(re.escape, pattern.split("*"))))


def matches(pattern: str, key: str) -> bool:
    """Whether ``key`` fits ``pattern``, where ``*`` matches within one dotted part."""
    return _pattern(pattern).fullmatch(key) is not None


AUTO = Rule(lambda v: v == "auto", "auto")
BOOL = Rule(lambda v: isinstance(v, bool), "true or false", True)
POSITIVE = number("(0, inf)", 1.0)
NON_NEGATIVE = number("[0, inf)", 0.0)
POSITIVE_INT = number("(0, inf)", 1, whole=True)
COUNT = number("[0, inf)", 0, whole=True)
FRACTION = number("[0, 1)", 0.1)
UNIT = number("[0, 1]", 0.5)
PROBABILITY = number("[0, 1]", 0.05, what="a probability")
DROPOUT = number("[0, 1)", 0.1, what="a dropout rate")
SEED = number("[0, 4294967295]", 42, whole=True)  # the range numpy and Lightning accept
MONITOR_MODE = choice("auto", "max", "min")
ACCELERATOR = choice("auto", "cpu", "gpu", "cuda", "mps", "tpu")
PATH = nullable(text("path/to/file"))
BATCH_SIZE = number("(0, inf)", 64, whole=True)
MONITOR = text("val/acc")
THREADS = AUTO | POSITIVE_INT  # mmrun.threads: auto shares the cores among the processes that run at once


def _levels(value: Any) -> bool:
    return (isinstance(value, list) and len(value) >= 2 and all(map(UNIT.accepts, value)) and value[0] == 0
            and value == sorted(set(value)))


# +analysis=robustness|contribution|all (conf/analysis/), on mmrun train and mmrun eval
ANALYSIS: dict[str, Rule | Depends] = {
    **dict.fromkeys(["analysis.robustness", "analysis.contribution"], BOOL),
    "analysis.levels": Rule(_levels, "increasing levels in [0, 1] starting at 0", [0.0, 0.5, 1.0]),
    "analysis.repeats": POSITIVE_INT,
    "analysis.seed": SEED,
    "analysis.baseline": PATH,
}

# +distill=kd|hint|rkd (conf/distill/), on mmrun train; the loss names repeat mmrun.distill.losses.LOSSES
DISTILL: dict[str, Rule | Depends] = {
    "distill.teacher": text("outputs/<run>/checkpoints/best.ckpt"),
    "distill.losses": list_of(choice("kd", "hint", "rkd"), "a list of kd, hint, rkd (or [])", ["kd"]),
    "distill.weights.*": NON_NEGATIVE,
    "distill.alpha": UNIT,
    "distill.temperature": POSITIVE,
    "distill.cache_teacher": BOOL,
    "distill.scratch": nullable(text("train") | number()),  # train, a scratch run's folder, or its test value
}

TRAIN: dict[str, Rule | Depends] = {
    # primary config
    "seed": SEED,
    "monitor": MONITOR,
    "monitor_mode": MONITOR_MODE,
    "monitor_tie_break": nullable(MONITOR),
    "model.compile": BOOL,
    "model.channels_last": BOOL,
    "model.modality_dropout": AUTO | number("[0, 1)", 0.3, what="a rate"),
    "model.modality_dropout.*": number("[0, 1)", 0.3, what="a rate"),
    "baseline": choice("auto", "none"),
    "resume": PATH,
    "progress": choice("auto", "rich", "plain"),
    "threads": THREADS,
    # trainer/ (Lightning's Trainer arguments)
    "trainer.accelerator": ACCELERATOR,
    "trainer.devices": AUTO | POSITIVE_INT | choice(-1) | list_of(COUNT, "a list of device indices", [0]),
    "trainer.num_nodes": POSITIVE_INT,
    "trainer.strategy": text("ddp"),
    "trainer.precision": choice("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
                                "transformer-engine", "transformer-engine-float16", 16, 32, 64, "16", "32", "64", "bf16"),
    # -1: no limit (Lightning's convention), for a run that early stopping ends; 0 would train nothing
    "trainer.max_epochs": number("(0, inf)", 10, whole=True) | choice(-1),
    "trainer.min_epochs": nullable(COUNT),
    "trainer.gradient_clip_val": nullable(NON_NEGATIVE),
    "trainer.accumulate_grad_batches": POSITIVE_INT,
    "trainer.check_val_every_n_epoch": nullable(POSITIVE_INT),
    "trainer.limit_*_batches": nullable(number("[0, 1]", 0.5, what="a fraction")
                                        | number("[0, inf)", 10, whole=True, what="a number of batches")),
    "trainer.fast_dev_run": BOOL | COUNT,
    "trainer.deterministic": BOOL | choice("warn"),
    "trainer.log_every_n_steps": POSITIVE_INT,
    # optimizer/
    "optimizer.lr": AUTO | number("(0, inf)", 0.001),
    "optimizer.weight_decay": NON_NEGATIVE,
    "optimizer.momentum": number("[0, 1)", 0.9),
    "optimizer.nesterov": BOOL,
    "optimizer.fused": AUTO | BOOL,
    # scheduler/
    "scheduler.mode": MONITOR_MODE,
    "scheduler.factor": number("(0, 1)", 0.5),
    "scheduler.patience": COUNT,
    "scheduler.min_lr": NON_NEGATIVE,
    "scheduler.warmup_fraction": FRACTION,
    "scheduler.min_lr_ratio": UNIT,
    "scheduler.max_lr_factor": POSITIVE,
    "scheduler.pct_start": UNIT,
    # callbacks/
    "callbacks.*.monitor": MONITOR,
    "callbacks.*.mode": MONITOR_MODE,
    "callbacks.*.tie_break": nullable(MONITOR),
    "callbacks.model_checkpoint.save_top_k": number("[-1, inf)", 1, whole=True),
    "callbacks.model_checkpoint.save_last": BOOL | choice("link"),
    "callbacks.model_checkpoint.filename": text("best"),
    "callbacks.*.dirpath": text("outputs/my-run/checkpoints"),  # default: ${mmrun.run_path:checkpoints}
    **dict.fromkeys(["callbacks.model_checkpoint.auto_insert_metric_name",
                     "callbacks.model_checkpoint.enable_version_counter"], BOOL),
    "callbacks.last_checkpoint.every_n_train_steps": nullable(number("(0, inf)", 1000, whole=True)),
    "callbacks.last_checkpoint.every_n_minutes": nullable(number("(0, inf)", 30)),
    "callbacks.learning_rate_monitor.logging_interval": nullable(choice("epoch", "step")),
    "callbacks.early_stopping.patience": AUTO | number("[0, inf)", 4, whole=True),
    "callbacks.early_stopping.min_delta": NON_NEGATIVE,
    "callbacks.early_stopping.strict": BOOL,
    "callbacks.weight_averaging.decay": number("(0, 1)", 0.99),
    "callbacks.weight_averaging.max_epochs": POSITIVE,
    # task/
    "task.type": choice("auto", "binary", "multiclass", "multilabel", "regression", "retrieval", "recommendation",
                        "captioning"),
    "task.query": list_of(text("image"), "a list of modality names or kinds", ["image"]),
    "task.target": Depends("task._target_", {"mmrun.tasks.captioning.CaptioningTask": text("caption")},
                           list_of(text("image"), "a list of modality names or kinds", ["image"])),
    # task=captioning
    "task.condition": nullable(list_of(text("image"), "a list of modality names or kinds", ["image", "audio"])),
    "task.memory_dim": POSITIVE_INT,
    "task.max_length": nullable(number("[2, inf)", 16, whole=True)),
    "task.decoding": choice("greedy", "beam"),
    "task.beam_size": POSITIVE_INT,
    "task.length_penalty": number("[0, inf)", 1.0),
    "task.metrics": list_of(choice("bleu", "rouge", "cider", "meteor"), "a list of bleu, rouge, cider, meteor",
                            ["bleu", "rouge", "cider"]),
    "task.user": nullable(list_of(text("user"), "a list of modality names or kinds", ["user", "user_tabular"])),
    "task.item": nullable(list_of(text("title"), "a list of modality names or kinds", ["item", "title"])),
    "task.id_dropout": number("[0, 1)", 0.5, what="a rate"),
    **dict.fromkeys(["task.k", "task.recall_k"], POSITIVE_INT),
    "task.embed_dim": POSITIVE_INT,
    "task.loss": choice("infonce", "siglip"),
    "task.temperature": POSITIVE,
    "task.max_scale": POSITIVE,
    "task.rankings_top_k": POSITIVE_INT,
    "task.head_hidden": POSITIVE_INT,
    "task.dropout": DROPOUT,
    "task.label_smoothing": FRACTION,
    # decoder/ (task=captioning)
    **dict.fromkeys([f"decoder.{key}" for key in ("embed", "hidden", "layers", "heads", "width")], POSITIVE_INT),
    "decoder.dropout": DROPOUT,
    "decoder.positions": choice("learned", "sinusoidal"),
    "decoder.tie_embeddings": BOOL,
    # fusion/
    "fusion.dropout": DROPOUT,
    "fusion.hidden": number("[0, inf)", 128, whole=True),  # 0 = no projection
    "fusion.width": Depends("fusion._target_", {"mmrun.fusion.tensor.LowRankFusion": nullable(POSITIVE_INT)},
                            POSITIVE_INT),  # lowrank: null = no input projection
    **dict.fromkeys([f"fusion.{key}" for key in ("rank", "heads", "layers", "depth", "latents", "self_layers",
                                                 "chunks", "factor", "order", "out", "dim", "core", "embed")],
                    POSITIVE_INT),
    "fusion.combine": choice("mean", "weighted", "poe"),
    "fusion.conditioner": nullable(text("image")),
    "fusion.query": nullable(text("image")),
    "fusion.scoring": choice("joint", "additive"),  # attention: TorchMultimodal or per-modality additive
    "fusion.gate": choice("softmax", "sigmoid"),  # gated: coupled or independent GMU gates
    "fusion.pooling": choice("last", "mean"),  # mult: last real token (MulT) or mean over real tokens
    "fusion.activation": choice("relu", "gelu", "tanh"),  # linear_sum, concat_mlp (mmrun.fusion.mmf)
    "fusion.normalize": BOOL,  # linear_sum: signed sqrt + L2 of the sum
    "fusion.sizes": nullable(list_of(POSITIVE_INT, "a list of layer widths", [256, 128])),  # concat_mlp
    "fusion.gate_init": number("(-inf, inf)", 1.0),  # xattn_gated: initial a of the tanh(a) gates
    "fusion.seed": SEED,
    "fusion.param_budget": nullable(POSITIVE_INT),  # fusion + head parameters (mmrun.fusion.budget)
    # encoder/<kind>/
    "encoder.tabular.hidden": list_of(POSITIVE_INT, "a list of layer widths", [128]),
    "encoder.*.channels": list_of(POSITIVE_INT, "a list of channel counts", [16, 32, 64]),
    "encoder.*.out_dim": nullable(POSITIVE_INT),  # null: the pretrained model's own width (hf)
    "encoder.*.dropout": DROPOUT,
    "encoder.*.lr_mult": NON_NEGATIVE,
    "encoder.*.pooling": choice("cls", "mean"),
    "encoder.*.cell": choice("gru", "lstm"),
    "encoder.*.model_path": PATH,
    **dict.fromkeys(["encoder.*.freeze", "encoder.*.bidirectional"], BOOL),
    **dict.fromkeys([f"encoder.*.{key}" for key in ("hidden", "depth", "heads", "ff_mult", "embed_dim", "width",
                                                    "patch_size", "kernel_size")], POSITIVE_INT),
    # dataset/: keys shared by the datasets
    "dataset.batch_size": BATCH_SIZE,
    "dataset.eval_batch_size": nullable(BATCH_SIZE),
    **dict.fromkeys(["dataset.seed", "dataset.data_seed", "dataset.split_seed"], SEED),
    "dataset.modalities": nullable(list_of(text("image"), "a list of modality names", ["image", "text"])),
    "dataset.splits": Rule(_fractions, "three fractions (train, val, test) summing to 1", [0.8, 0.1, 0.1]),
    "dataset.on_device": AUTO | BOOL,
    "dataset.device_memory_fraction": number("(0, 1]", 0.5),
    **dict.fromkeys(["dataset.path", "dataset.root", "dataset.cache_dir"], PATH),
    # dataset=synthetic, and the task key, whose options differ per dataset
    "dataset.task": Depends("dataset._target_", {
        "mmrun.data.synthetic.SyntheticDataModule": choice("classification", "multilabel", "regression"),
        "mmrun.data.benchmarks.affect.AffectDataModule": choice("binary", "7class", "regression"),
    }, choice("auto", "binary", "multiclass", "multilabel", "regression", "retrieval", "captioning")),
    "dataset.size": number("[30, inf)", 2000, whole=True),
    # dataset=interactions
    **dict.fromkeys(["dataset.num_users", "dataset.num_items"], number("[10, inf)", 1000, whole=True)),
    "dataset.genres": POSITIVE_INT,
    "dataset.interactions_per_user": number("[3, inf)", 16, whole=True),
    "dataset.temperature": POSITIVE,
    "dataset.cold_items": number("[0, 1)", 0.1, what="a fraction"),
    "dataset.num_classes": number("[2, inf)", 4, whole=True),
    "dataset.noise": Depends("dataset.task", {"regression": number("[0, inf)", 0.05, what="a standard deviation"),
                                              # dataset=pairs (no task key): pixel and audio-sample noise
                                              None: number("[0, inf)", 0.3, what="a standard deviation")},
                             PROBABILITY),
    "dataset.missing_rate": number("[0, 1)", 0.3, what="a probability"),
    "dataset.label_fraction": number("(0, 1]", 0.1, what="a fraction"),
    # dataset=pairs
    "dataset.captions_per_item": number("(0, inf)", 5, whole=True),
    "dataset.synonyms": BOOL,
    # dataset=manifest
    "dataset.label_column": text("label"),
    "dataset.split_column": nullable(text("split")),
    "dataset.group_column": nullable(text("image_id")),
    # follows task.target: captioning's caption column (a name), retrieval's target side (a list), else null
    "dataset.caption_column": Depends("task._target_", {"mmrun.tasks.captioning.CaptioningTask": text("caption")},
                                      nullable(list_of(text("image"), "a list of modality names or kinds", ["text"]))),
    "dataset.on_error": choice("raise", "skip"),
    "dataset.cache_check": choice("stat", "content"),
    **dict.fromkeys(["dataset.allow_missing", "dataset.cache", "dataset.*.normalize", "dataset.augment.flip",
                     "dataset.text.lowercase", "dataset.tabular.standardize",
                     "dataset.tabular.missing_flags", "dataset.standardize", "dataset.drop_zero"], BOOL),
    "dataset.image.channels": choice("auto", "rgb", "grayscale"),
    "dataset.image.size": AUTO | number("(0, inf)", 64, whole=True)
                          | list_of(POSITIVE_INT, "[height, width]", [64, 64], length=2),
    "dataset.image.resize": choice("crop", "pad", "stretch"),
    "dataset.augment.crop_padding": COUNT,
    "dataset.augment.noise": number("[0, inf)", 0.1, what="a standard deviation"),
    "dataset.augment.spec_mask": FRACTION,
    "dataset.text.tokenizer": choice("word", "subword", "hf"),
    "dataset.text.vocab_size": number("[3, inf)", 20000, whole=True),
    "dataset.*.min_frequency": POSITIVE_INT,
    "dataset.text.max_length": AUTO | POSITIVE_INT,
    "dataset.text.model_path": PATH,
    **dict.fromkeys(["dataset.audio.sample_rate", "dataset.audio.n_mels", "dataset.audio.hop_length"],
                    AUTO | POSITIVE_INT),
    "dataset.audio.n_fft": AUTO | number("[2, inf)", 400, whole=True),
    "dataset.audio.duration": AUTO | POSITIVE,
    "dataset.audio.f_min": NON_NEGATIVE,
    "dataset.audio.f_max": nullable(POSITIVE),
    # dataset=interactions_manifest (dataset.cold_items: see dataset=interactions)
    "dataset.items": PATH,
    "dataset.users": PATH,
    "dataset.user_column": text("user"),
    "dataset.item_column": text("item"),
    # dataset=avmnist, mmimdb, mosi, mosei
    "dataset.val_size": POSITIVE_INT,
    "dataset.split_bounds": Rule(_increasing, "three increasing positive indices", [15552, 18160, 25959]),
    "dataset.name": choice("mosi", "mosei"),
    # logger/
    "logger.*.log_model": BOOL | choice("all"),
    "logger.*.save_dir": text("outputs/my-run"),  # default: ${mmrun.run_path:}, the run folder
    **dict.fromkeys(["logger.wandb.offline", "logger.tensorboard.default_hp_metric"], BOOL),
    **ANALYSIS,
    **DISTILL,
}

# mmrun eval: its own keys, and the dataset keys it may change (null = the checkpoint's value).
EVAL: dict[str, Rule | Depends] = {
    "ckpt_path": text("outputs/<run>/checkpoints/best.ckpt"),
    "split": choice("auto", "test", "val", "train", "all"),
    "batch_size": nullable(BATCH_SIZE),
    "accelerator": ACCELERATOR,
    "threads": THREADS,
    **{key: nullable(TRAIN[key]) for key in ("dataset.path", "dataset.items", "dataset.users",
                                             "dataset.on_error", "dataset.allow_missing", "dataset.cache",
                                             "dataset.cache_dir", "dataset.cache_check")},
    **ANALYSIS,
}

# mmrun predict takes eval's keys (conf/predict.yaml composes conf/eval.yaml).
SCHEMA: dict[str, dict[str, Rule | Depends]] = {"train": TRAIN, "eval": EVAL, "predict": EVAL}
