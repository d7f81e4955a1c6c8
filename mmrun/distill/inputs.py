"""Who sees which modality: the data serves the union of the teacher's and the student's
modalities; the student's batches carry only its own and the teacher reads only its own.

``mmrun train`` builds the datamodule with ``dataset.modalities`` widened to the union
(``widened``), then ``split_for_student`` rewrites its split tensors once: the student's
modalities keep their names and ``present`` keeps only their columns; the teacher's other
modalities move to ``teacher.<name>`` and the teacher's columns of ``present`` (in the
teacher's order) to ``teacher.present``. Every part of the run that reads the datamodule
(training, validation, testing, the classical baseline, the analysis) sees the student's
data, and every batch cut from it carries the teacher's inputs for the same rows
(``teacher_view``). The teacher is never starved of a modality it was trained on.
"""

from __future__ import annotations

import dataclasses

import torch
from omegaconf import DictConfig, open_dict

from mmrun.data.spec import DataSpec

PREFIX = "teacher."


def student_modalities(data_cfg: DictConfig) -> list[str] | None:
    """The modalities the run's config asks for (``dataset.modalities``); None: all the data has."""
    chosen = data_cfg.get("modalities")
    return None if chosen is None else list(chosen)


def widened(data_cfg: DictConfig, teacher: list[str]) -> DictConfig:
    """The dataset config that also serves the teacher's modalities (unchanged when it serves all)."""
    student = student_modalities(data_cfg)
    if student is None:
        return data_cfg
    wide = data_cfg.copy()
    with open_dict(wide):
        wide.modalities = student + [name for name in teacher if name not in student]
    return wide


def split_for_student(datamodule, student: list[str] | None, teacher: list[str]) -> DataSpec:
    """Rewrite ``datamodule``'s splits for the student (module docstring); return its narrowed spec."""
    spec = datamodule.spec
    data = spec.modality_names
    keep = [name for name in data if student is None or name in student]
    own, taught = [data.index(n) for n in keep], [data.index(n) for n in teacher]
    splits = {}
    for split, tensors in datamodule.splits.items():
        view = {key: value for key, value in tensors.items() if key not in data or key in keep}
        view.update({PREFIX + name: tensors[name] for name in teacher if name not in keep})
        view["present"], view[PREFIX + "present"] = tensors["present"][:, own], tensors["present"][:, taught]
        splits[split] = view
    narrowed = dataclasses.replace(spec, modalities=tuple(m for m in spec.modalities if m.name in keep))
    datamodule.replace_data(splits, narrowed)
    return narrowed


def teacher_view(batch: dict[str, torch.Tensor], teacher: list[str]) -> dict[str, torch.Tensor]:
    """The teacher's batch: its modalities (its own or shared with the student) and its ``present``."""
    view = {name: batch.get(PREFIX + name, batch.get(name)) for name in teacher}
    view["present"], view["label"] = batch[PREFIX + "present"], batch["label"]
    return view
