"""The teacher: a trained mmrun model rebuilt from its own checkpoint, frozen, always in eval mode.

It is loaded exactly as ``mmrun eval`` loads a checkpoint (weights-only, its config and data
spec from the file, ``mmrun.checkpoint``), and held in a plain object rather than as a
submodule of the student, so that it never enters the student's module tree: its weights are
not in the student's ``state_dict`` (nor in its checkpoints), its parameters are not trained
or averaged, and Lightning's ``model.train()`` never reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mmrun.data.spec import DataSpec
from mmrun.distill.inputs import teacher_view
from mmrun.errors import CheckpointError, DistillationError


@dataclass
class Outputs:
    """What the losses compare. A prediction model gives its logits and, for feature losses, the
    fused vector before the head; a retrieval model gives ``pairs``: each row's L2-normalised
    ``queries`` and ``targets`` embeddings, whether each side is valid (``query_valid``,
    ``target_valid``), and ``scale``, the model's logit scale of a similarity."""

    logits: torch.Tensor | None = None
    features: torch.Tensor | None = None
    pairs: dict[str, torch.Tensor] | None = None

    def per_row(self) -> dict[str, torch.Tensor]:
        """The tensors with one entry per row (what a cache can store and a batch can carry)."""
        if self.pairs is not None:
            return {key: value for key, value in self.pairs.items() if key in PAIR_ROWS}
        return {key: value for key, value in (("logits", self.logits), ("features", self.features))
                if value is not None}


# A retrieval model's per-row outputs (``mmrun.tasks.two_tower.TwoTowerTask.forward``).
PAIR_ROWS = ("queries", "targets", "query_valid", "target_valid")


def retrieval_outputs(outputs: dict[str, torch.Tensor], scale: torch.Tensor) -> Outputs:
    """``Outputs`` of a retrieval model from its forward pass and its logit scale."""
    return Outputs(pairs={**{key: outputs[key] for key in PAIR_ROWS}, "scale": scale})


class FeatureTap:
    """The last output of a module, kept by a forward hook (the fused vector of a prediction task)."""

    def __init__(self, module: nn.Module) -> None:
        self.value: torch.Tensor | None = None
        module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs, output: torch.Tensor) -> None:
        self.value = output


FAMILIES = ("prediction", "retrieval")  # the task families a teacher and its student may have


def feature_width(task: nn.Module) -> int:
    """The width of a task's compared vector: a prediction task's fused vector, a retrieval embedding."""
    return task.embed_dim if task.family == "retrieval" else task.fusion.out_dim


class Teacher:
    """A frozen ``MultimodalModule`` that reads its own modalities of a student's batch.

    Args:
        model: the rebuilt teacher (``Teacher.load``).
        path: its checkpoint, for messages and reports.
    """

    def __init__(self, model: nn.Module, path: str | Path) -> None:
        self.model = model.eval().requires_grad_(False)
        self.path = str(path)
        self.modalities: list[str] = list(model.spec.modality_names)  # its batches' modalities and present columns
        self.spec: DataSpec = model.spec
        self.tap = FeatureTap(model.task.fusion) if self.family == "prediction" else None

    @classmethod
    def load(cls, path: str) -> Teacher:
        """Rebuild the teacher from ``distill.teacher`` (weights-only; its config and spec are inside)."""
        from mmrun.checkpoint import load_checkpoint, model_from_checkpoint

        file = Path(path).expanduser()
        if not file.is_file():
            raise CheckpointError(f"distill.teacher={path} does not exist; pass the checkpoint of a finished mmrun "
                                  f"train run, e.g. distill.teacher=outputs/<run>/checkpoints/best.ckpt")
        try:
            checkpoint = load_checkpoint(file)
            with torch.random.fork_rng(devices=[]):  # building it must not move the student's initialisation
                model = model_from_checkpoint(checkpoint, file)
        except CheckpointError as error:  # the fix names this key, not mmrun eval's ckpt_path
            raise CheckpointError(f"distill.teacher: {str(error).replace('ckpt_path', 'distill.teacher')}") from None
        return cls(model, file.resolve())

    @property
    def family(self) -> str:
        return self.model.task.family

    @property
    def width(self) -> int:
        """The width of the vector the feature losses compare (the fused vector, or the embedding)."""
        return feature_width(self.model.task)

    @property
    def kind(self) -> str:
        return self.model.task.kind

    def check_family(self, student: str) -> None:
        """Refuse, in one line, a student or a teacher of a task family that is not distilled, or two families."""
        if student not in FAMILIES:
            raise DistillationError(f"+distill compares a prediction model's logits or a retrieval model's "
                                    f"similarities, but the student is a {student} task; distil a prediction or "
                                    f"retrieval student")
        if self.family not in FAMILIES:
            raise DistillationError(f"distill.teacher is a {self.family} model; distillation needs a prediction "
                                    f"or retrieval teacher: train one on this data")
        if self.family != student:
            raise DistillationError(f"distill.teacher is a {self.kind} model but the student is a {student} task; "
                                    f"use a teacher trained for the student's task")

    def check_fits(self, data: DataSpec, student_kind: str) -> None:
        """Refuse, in one line naming the difference, a teacher whose task or inputs the data cannot serve."""
        if self.family == "prediction" and (self.kind != student_kind or self.spec.num_outputs != data.num_outputs):
            raise DistillationError(f"distill.teacher predicts {self.kind} ({self.spec.num_outputs} outputs) but the "
                                    f"student predicts {student_kind} ({data.num_outputs}); use a teacher trained "
                                    f"for the student's task or set task=<the teacher's> for the student")
        if self.family == "prediction" and tuple(self.spec.class_names) != tuple(data.class_names):
            raise DistillationError(f"distill.teacher knows the classes {list(self.spec.class_names)} but the data "
                                    f"has {list(data.class_names)}; use a teacher trained on this data's labels")
        served = {m.name: m for m in data.modalities}
        for modality in self.spec.modalities:
            if modality.name not in served:
                raise DistillationError(f"distill.teacher reads modality {modality.name!r}, which the data lacks (it "
                                        f"has {', '.join(served)}); use data that has it or a teacher without it")
            if served[modality.name] != modality:
                raise DistillationError(f"distill.teacher reads {modality.name!r} as {modality.kind} "
                                        f"{list(modality.shape)} but the data gives {served[modality.name].kind} "
                                        f"{list(served[modality.name].shape)}; prepare the data as the teacher's was")

    def forward(self, batch: dict[str, torch.Tensor]):
        """The teacher model's own output for a student's batch (no gradient, eval mode, on the batch's device)."""
        view = teacher_view(batch, self.modalities)
        device = view["present"].device
        if self.model.device != device:
            self.model.to(device)
        self.model.eval()
        with torch.no_grad():
            return self.model(view)

    def __call__(self, batch: dict[str, torch.Tensor]) -> Outputs:
        """The teacher's ``Outputs`` for a student's batch."""
        outputs = self.forward(batch)
        if self.family == "retrieval":
            return retrieval_outputs(outputs, self.model.task.similarity_scale().detach())
        return Outputs(outputs.float(), self.tap.value.float())

    def __deepcopy__(self, memo: dict) -> Teacher:
        """Shared, not copied: it never changes (the weight average deep-copies the student and what it holds)."""
        return self
