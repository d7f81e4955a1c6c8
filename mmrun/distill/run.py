"""What ``mmrun train`` does for ``+distill=...``: load the teacher, serve both models' data,
attach the loss terms to the student, and write the ``distill`` block of metrics.json.

The block records the teacher's test metrics recomputed on the run's own test split, and, when
``distill.scratch`` names a run of the same student trained without a teacher (``train``, the
default, trains one first: ``mmrun.distill.twin``), the fraction of
the teacher-student gap the distillation recovered: ``(distilled - scratch) / (teacher - scratch)``
on the monitored metric's test value. A sweep (``+sweep=distill``) pairs its scratch and
distilled runs itself (``mmrun.sweep.distill``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from mmrun.data.spec import DataSpec
from mmrun.distill.cache import cache_teacher_outputs
from mmrun.distill.distiller import Distiller
from mmrun.distill.inputs import split_for_student, student_modalities, teacher_view, widened
from mmrun.distill.losses import LOSSES
from mmrun.distill.teacher import Teacher, feature_width
from mmrun.distill.twin import TRAIN
from mmrun.errors import ConfigError, DistillationError, MmrunError
from mmrun.model import task_config

log = logging.getLogger("mmrun")
# Dataset keys that leave the rows and their values unchanged (label_fraction: the student's labels only).
SAME_DATA_KEYS = {"modalities", "batch_size", "eval_batch_size", "seed", "on_device", "device_memory_fraction",
                  "label_fraction", "cache_dir", "caption_column"}


class Distillation:
    """One run's distillation: its config (``cfg.distill``), its teacher and what it measured."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.weights = loss_weights(cfg)
        self.teacher = Teacher.load(cfg.teacher)
        self.data_spec: DataSpec | None = None  # the data's, before it is narrowed to the student's
        self.cache = "off"
        self.metric, self.scratch = "", None
        self.data_differs: list[str] = []

    def build_datamodule(self, data_cfg: DictConfig, task_cfg: DictConfig):
        """The run's datamodule, serving the teacher's modalities too, with splits for the student (``inputs``),
        once the student's task (``task_cfg``) is known to fit the teacher's."""
        self.teacher.check_family(get_class(task_config(task_cfg)._target_).family)
        data = widened(data_cfg, self.teacher.modalities)
        try:
            datamodule = instantiate(data)
            datamodule.setup("fit")
        except Exception as error:  # instantiate wraps the dataset's own refusal
            refusal = error.__cause__ if isinstance(error.__cause__, MmrunError) else error
            if data is data_cfg or not isinstance(refusal, MmrunError):
                raise
            raise DistillationError(f"the data cannot also serve the teacher's modalities "
                                    f"{self.teacher.modalities}: {refusal}") from None
        self.data_spec = datamodule.spec
        self.data_differs = data_differences(OmegaConf.to_container(self.teacher.model.cfg.dataset),
                                             OmegaConf.to_container(data_cfg, resolve=True))
        if self.data_differs:
            log.warning("the teacher was trained on other data (%s): its test metric may count rows it trained on, "
                        "and its soft targets may not fit this data; train the student on the teacher's data",
                        ", ".join(f"dataset.{key}" for key in self.data_differs))
        split_for_student(datamodule, student_modalities(data_cfg), self.teacher.modalities)
        return datamodule

    def attach(self, model, datamodule, monitor: str, device: torch.device, cache_dir: str | None) -> None:
        """Check the pair, give the student its loss terms, cache the teacher's outputs if asked, and read
        the scratch reference (``distill.scratch``) before any training time is spent."""
        family = model.task.family
        self.teacher.check_family(family)
        unfit = [name for name in self.weights if family == "retrieval" and not LOSSES[name].for_retrieval]
        if unfit:
            raise DistillationError(f"distill.losses={list(self.weights)}: {unfit[0]} compares a prediction model's "
                                    f"fused vectors; a retrieval student distils the teacher's similarity "
                                    f"distribution: distill.losses=[kd]")
        self.teacher.check_fits(self.data_spec, model.task.kind)
        if family == "retrieval":
            check_sides(self.teacher.model.task.sides, model.task.sides)
        self.metric = monitor.replace("val/", "test/", 1)
        self.scratch = scratch_value(self.cfg.get("scratch"), self.metric)
        distiller = Distiller(self.teacher, self.weights, model.task.kind, feature_width(model.task),
                              float(self.cfg.alpha), float(self.cfg.temperature))
        model.attach_distiller(distiller)
        if self.cfg.cache_teacher and self.weights:
            self.cache = cache_teacher_outputs(self.teacher, datamodule, cache_dir, device)
        log.info("distilling from %s (%s, reads %s) with %s, alpha %g, temperature %g; teacher outputs: %s",
                 self.teacher.path, self.teacher.kind, ", ".join(self.teacher.modalities),
                 ", ".join(f"{n} x{w:g}" for n, w in self.weights.items()) or "no loss (scratch student)",
                 self.cfg.alpha, self.cfg.temperature, self.teacher_outputs)

    @property
    def teacher_outputs(self) -> str:
        """Where the training steps take the teacher's outputs from: ``per step`` or ``cached (read|computed)``."""
        return "per step" if self.cache == "off" else f"cached ({self.cache})"

    def teacher_test(self, datamodule) -> dict[str, float]:
        """The teacher's test metrics on this run's test split (every rank takes part: the metrics sync):
        per-batch metrics (prediction) and whole-split ones (retrieval's rankings), as its own test would."""
        task, collection = self.teacher.model.task, None
        for batch in datamodule.loader("test"):
            recorded = task.update_metrics(self.teacher.forward(batch), teacher_view(batch, self.teacher.modalities),
                                           "test")
            collection = recorded if recorded is not None else collection
        values = {key: float(value) for key, value in task.epoch_metrics("test").items()}
        if collection is not None:
            values.update({key: float(value) for key, value in collection.compute().items()})
            collection.reset()
        return values

    def summary(self, model, test: dict[str, float], teacher: dict[str, float]) -> dict[str, Any]:
        """The ``distill`` block of metrics.json (module docstring)."""
        metric, scratch = self.metric, self.scratch
        student, taught = test.get(metric), teacher.get(metric)
        block = {
            "role": "distilled" if self.weights else "scratch",
            "teacher": self.teacher.path,
            "teacher_modalities": self.teacher.modalities,
            "teacher_data_differs": [f"dataset.{key}" for key in self.data_differs],
            "student_modalities": list(model.modalities),
            "losses": self.weights,
            "alpha": float(self.cfg.alpha),
            "temperature": float(self.cfg.temperature),
            "teacher_outputs": self.teacher_outputs,
            "metric": metric,
            "teacher_test": teacher,
            "scratch_reference": None if scratch is None else self.cfg.get("scratch"),
            "scratch_test": scratch,
            "gap_recovered": gap_recovered(student, scratch, taught),
        }
        log.info("distillation: student %s %s, teacher %s, scratch %s, gap recovered %s", metric, _shown(student),
                 _shown(taught), _shown(scratch), _shown(block["gap_recovered"]))
        return block


def check_sides(teacher: dict[str, list[str]], student: dict[str, list[str]]) -> None:
    """Refuse a retrieval teacher whose query or target side shares no modality with the student's:
    their similarity distributions would rank different things."""
    for side in ("query", "target"):
        if not set(teacher[side]) & set(student[side]):
            raise DistillationError(f"distill.teacher ranks {teacher['query']} against {teacher['target']} but the "
                                    f"student ranks {student['query']} against {student['target']}; give the student "
                                    f"task.query and task.target that share modalities with the teacher's")


def data_differences(teacher: dict[str, Any], student: dict[str, Any]) -> list[str]:
    """The dataset keys whose values differ between the teacher's run and the student's, but for
    those that only choose modalities or how the same rows are batched, and those one side lacks
    (an option added since the teacher was trained, at its default)."""
    return sorted(key for key in set(teacher) & set(student)
                  if key not in SAME_DATA_KEYS and teacher[key] != student[key])


def loss_weights(cfg: DictConfig) -> dict[str, float]:
    """``{loss: weight}`` for the losses of ``distill.losses``, weighted by ``distill.weights`` (1 when not named)."""
    losses = list(cfg.losses or [])
    unknown = [name for name in losses if name not in LOSSES]
    if unknown:
        raise ConfigError(f"distill.losses names {unknown[0]!r}; choose from {', '.join(LOSSES)}, e.g. "
                          f"distill.losses=[kd,hint]")
    weights = cfg.get("weights") or {}
    return {name: float(weights.get(name, 1.0)) for name in losses}


def gap_recovered(student: float | None, scratch: float | None, teacher: float | None) -> float | None:
    """``(student - scratch) / (teacher - scratch)``: 1 = the teacher's level, 0 = no gain (None without a gap)."""
    if student is None or scratch is None or teacher is None or teacher == scratch:
        return None
    return (student - scratch) / (teacher - scratch)


def scratch_value(reference: Any, metric: str) -> float | None:
    """``distill.scratch``: the test value of a scratch run (its folder or metrics.json), or a number;
    None for ``train`` left on a scratch run itself (``distill.losses=[]``: ``mmrun.distill.twin``)."""
    if reference is None or reference == TRAIN:
        return None
    if isinstance(reference, (int, float)):
        return float(reference)
    path = Path(str(reference)).expanduser()
    file = path / "metrics.json" if path.is_dir() else path
    try:
        value = json.loads(file.read_text())["test"][metric]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"distill.scratch={reference} is not a finished run with {metric} in its metrics.json; "
                          f"pass the folder of a run of this student without +distill, or a number") from None
    return float(value)


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
