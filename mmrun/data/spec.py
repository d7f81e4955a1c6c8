"""Facts about the data that the model is built from.

Config holds choices; data holds facts. The datamodule computes a ``DataSpec`` (which
modalities exist, their shapes, the vocabulary size, the task and the class names) and the
model reads every size it needs from it. The spec travels inside each checkpoint as a plain
dict, so evaluation rebuilds exactly the model that was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TASK_TYPES = ("multiclass", "binary", "multilabel", "regression")
MODALITY_KINDS = ("image", "text", "audio", "tabular", "features", "categorical")


@dataclass(frozen=True)
class ModalitySpec:
    """One modality: its name in the batch, its kind (which encoder group builds it) and shape.

    ``shape`` is the per-sample tensor shape: ``[C, H, W]`` for images, ``[T]`` for token ids,
    ``[L]`` for a waveform, ``[F]`` for a numeric vector. ``vocab_size`` is set for text
    (index 0 is padding). Manifest data adds ``[n_mels, frames]`` log-mel audio and
    ``categorical`` ``[K]`` ids (one per column, in one id space of ``vocab_size`` ids,
    0 = unknown).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    vocab_size: int | None = None


@dataclass(frozen=True)
class DataSpec:
    """Everything about a dataset that the model needs to be built."""

    modalities: tuple[ModalitySpec, ...]
    task: str
    num_outputs: int
    class_names: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def modality_names(self) -> list[str]:
        return [m.name for m in self.modalities]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["modalities"] = [dict(asdict(m), shape=list(m.shape)) for m in self.modalities]
        data["class_names"] = list(self.class_names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataSpec":
        modalities = tuple(
            ModalitySpec(**dict(m, shape=tuple(m["shape"]))) for m in data["modalities"]
        )
        return cls(
            modalities=modalities,
            task=data["task"],
            num_outputs=int(data["num_outputs"]),
            class_names=tuple(data.get("class_names", ())),
            extra=dict(data.get("extra", {})),
        )
