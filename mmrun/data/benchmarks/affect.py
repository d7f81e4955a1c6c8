"""CMU-MOSI and CMU-MOSEI sentiment from the aligned affect pickles.

Reads the release layout used by MultiBench (Liang et al., NeurIPS 2021 Datasets and
Benchmarks, arXiv:2107.07502) and the Multimodal Transformer (Tsai et al., ACL 2019,
arXiv:1906.00295): one pickle holding ``{'train', 'valid', 'test'}``, each a dict of
``vision``, ``audio`` and ``text`` arrays ``N x 50 x D`` (zero rows are padding),
``labels`` ``N x 1 x 1`` sentiment in [-3, 3], and ``id``.

Tasks (``dataset.task``):

* ``binary``: Acc-2, positive = label > 0. ``drop_zero=true`` drops zero-labelled samples
  from every split (the "positive vs negative" protocol); ``false`` counts them as
  negative (the "negative vs non-negative"-style protocol with zeros kept).
* ``7class``: the label rounded to the nearest integer in -3..3 (Acc-7).
* ``regression``: the raw score, scored by MAE and Pearson correlation.

Each modality is kind ``features`` with shape ``[50, D]``. Non-finite values (present in
the COVAREP audio of the public MOSI file) become 0. With ``standardize`` each feature is
z-scored with the mean and deviation of the real (non-padding) training steps.

The pickle is read with an unpickler that only rebuilds NumPy arrays, lists and dicts,
so a tampered file cannot run code. Zadeh et al., "MOSI: Multimodal Corpus of Sentiment
Intensity and Subjectivity Analysis in Online Opinion Videos", 2016, arXiv:1606.06259;
Zadeh et al., "Multimodal Language Analysis in the Wild: CMU-MOSEI and Dynamic Fusion
Graph", ACL 2018.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrun.data.benchmarks.common import all_present, require_file, required_path, select_modalities
from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.data.tensor_datamodule import SPLITS, TensorDataModule
from mmrun.errors import ConfigError, DataError

MODALITIES = ("audio", "text", "vision")
RELEASE_SPLITS = {"train": "train", "val": "valid", "test": "test"}
TASKS = ("binary", "7class", "regression")
LAYOUT = "{'train','valid','test'} -> {'vision','audio','text': N x T x D, 'labels': N x 1 x 1, 'id'}"
# What the pickle may rebuild: NumPy arrays, dtypes and scalars (module names differ across NumPy versions).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_affect_pickle(path: Path, dataset: str) -> dict[str, Any]:
    """The pickle's ``{split: {key: array}}``, rebuilt without running any code from it."""
    try:
        with path.open("rb") as handle:
            data = _ArrayUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise DataError(f"dataset={dataset}: cannot read {path} as an affect pickle ({error}); expected {LAYOUT}") from None
    if not isinstance(data, dict) or set(RELEASE_SPLITS.values()) - set(data):
        raise DataError(f"dataset={dataset}: {path} does not hold the splits train, valid, test; expected {LAYOUT}")
    return data


class AffectDataModule(TensorDataModule):
    """CMU-MOSI or CMU-MOSEI from the affect pickle (see the module docstring).

    Args:
        path: the pickle (e.g. ``mosi_raw.pkl`` or ``mosei_senti_data.pkl``).
        name: ``mosi`` or ``mosei`` (used in messages).
        task: ``binary``, ``7class`` or ``regression``.
        drop_zero: with ``task=binary``, drop samples labelled exactly 0.
        standardize: z-score each feature with training statistics.
        modalities: which of ``audio``, ``text``, ``vision`` to serve.
        batch_size, eval_batch_size, seed: see ``TensorDataModule``.
    """

    def __init__(
        self,
        path: str | None,
        name: str = "mosi",
        task: str = "binary",
        drop_zero: bool = False,
        standardize: bool = True,
        modalities: list[str] | tuple[str, ...] = MODALITIES,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed)
        if task not in TASKS:
            raise ConfigError(f"dataset.task={task!r} is unknown; use one of {list(TASKS)}")
        self.path = required_path(path, "dataset.path", name, f"/path/to/{name}.pkl")
        self.name = name
        self.task = task
        self.drop_zero = drop_zero
        self.standardize = standardize
        self.modalities = select_modalities(modalities, MODALITIES, name)

    def _split(self, part: dict[str, Any], release: str) -> dict[str, torch.Tensor]:
        missing = [k for k in (*self.modalities, "labels") if k not in part]
        if missing:
            raise DataError(f"{self.path}: split {release!r} lacks {missing}; expected {LAYOUT}")
        scores = np.asarray(part["labels"], dtype=np.float32).reshape(-1)
        data: dict[str, torch.Tensor] = {}
        for name in self.modalities:
            array = np.nan_to_num(np.asarray(part[name], dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            if array.ndim != 3 or len(array) != len(scores):
                raise DataError(
                    f"{self.path}: {release}[{name!r}] has shape {list(array.shape)}; expected N x T x D "
                    f"with N = {len(scores)} labels"
                )
            data[name] = torch.from_numpy(array)
        keep = torch.from_numpy(scores != 0) if self.task == "binary" and self.drop_zero else torch.ones(len(scores), dtype=torch.bool)
        data["label"] = self._labels(torch.from_numpy(scores))
        data["present"] = all_present(len(scores), len(self.modalities))
        return {k: v[keep] for k, v in data.items()}

    def _labels(self, scores: torch.Tensor) -> torch.Tensor:
        if self.task == "binary":
            return (scores > 0).long()
        if self.task == "7class":
            return (scores.clamp(-3, 3).round() + 3).long()
        return scores

    def _standardize(self, splits: dict[str, dict[str, torch.Tensor]]) -> None:
        for name in self.modalities:
            train = splits["train"][name]
            steps = train[train.ne(0).any(-1)]
            mean, std = steps.mean(0).nan_to_num(0.0), steps.std(0).nan_to_num(1.0).clamp_min(1e-6)
            for split in splits.values():
                real = split[name].ne(0).any(-1, keepdim=True)
                split[name] = torch.where(real, (split[name] - mean) / std, torch.zeros(()))

    def build(self) -> tuple[dict[str, dict[str, torch.Tensor]], DataSpec]:
        raw = load_affect_pickle(require_file(self.path, self.name, LAYOUT), self.name)
        splits = {split: self._split(raw[release], release) for split, release in RELEASE_SPLITS.items()}
        for split in SPLITS:
            if len(splits[split]["label"]) == 0:
                raise DataError(f"{self.path}: the {split} split has no samples for task={self.task}")
        if self.standardize:
            self._standardize(splits)
        modalities = tuple(ModalitySpec(m, "features", tuple(splits["train"][m].shape[1:])) for m in self.modalities)
        if self.task == "binary":
            spec = DataSpec(modalities, "binary", 1, ("negative", "positive"))
        elif self.task == "7class":
            spec = DataSpec(modalities, "multiclass", 7, tuple(str(v) for v in range(-3, 4)))
        else:
            spec = DataSpec(modalities, "regression", 1)
        return splits, spec
