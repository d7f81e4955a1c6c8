"""Per-run figures: ``curves.png`` (loss and monitored metric per epoch) for every run, and
``confusion_matrix.png`` on the test split for classification runs.

Drawn with matplotlib's object API (``Figure``), never ``pyplot``: no global state and no
display backend, so plotting is safe in sweeps, worker processes and on headless machines.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from mmrun.sweep.runs import read_curves


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def curves_png(metrics_csv: Path, monitor: str, path: Path) -> None:
    """Train and validation loss (left) and the monitored metric (right) per epoch."""
    from matplotlib.ticker import MaxNLocator

    name = monitor.split("/", 1)[1]
    series = read_curves(metrics_csv, ["train/loss", "val/loss", f"train/{name}", monitor])
    figure = _figure(9.0, 3.6)
    panels = (("loss", ["train/loss", "val/loss"]), (name, [f"train/{name}", monitor]))
    last = max((e for values in series.values() for e in values), default=0) + 1
    for index, (title, keys) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, 2, index)
        for key in keys:
            if series[key]:
                epochs = sorted(series[key])
                axes.plot([e + 1 for e in epochs], [series[key][e] for e in epochs], marker="o", markersize=3,
                          label=key)
        axes.set_title(title if title != name else f"{title} (monitored: {monitor})", fontsize=9)
        axes.set_xlabel("epoch")
        axes.set_xlim(0.5, last + 0.5)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if axes.lines:
            axes.legend(fontsize=7)
    figure.savefig(path)


def confusion_matrix_png(matrix: torch.Tensor, class_names: list[str], path: Path) -> None:
    """Counts with row-normalised shading (rows: true class, columns: predicted class)."""
    counts = matrix.long().tolist()
    k = len(counts)
    rates = (matrix.float() / matrix.sum(1, keepdim=True).clamp(min=1)).tolist()
    size = min(2.5 + 0.45 * k, 12.0)
    figure = _figure(size + 1.0, size)
    axes = figure.add_subplot()
    image = axes.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                axes.text(j, i, str(counts[i][j]), ha="center", va="center", fontsize=7,
                          color="white" if rates[i][j] > 0.5 else "black")
    names = class_names if len(class_names) == k else [str(i) for i in range(k)]
    axes.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center", fontsize=7)
    axes.set_yticks(range(k), names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    total = sum(map(sum, counts))
    accuracy = sum(counts[i][i] for i in range(k)) / total if total else 0.0
    axes.set_title(f"test split: {total} samples, accuracy {accuracy:.4f}", fontsize=9)
    figure.colorbar(image, ax=axes, label="fraction of the true class")
    figure.savefig(path)


class ConfusionMatrixPlot(pl.Callback):
    """Accumulates test-split predictions of a classification model and draws the matrix.

    Multiclass models predict the arg-max class, binary models a positive logit; other tasks
    are skipped. Under DDP the ranks' counts are summed before rank zero draws.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.matrix: torch.Tensor | None = None

    @staticmethod
    def _classes(pl_module) -> int | None:
        from mmrun.tasks.objectives import BinaryTask, MulticlassTask

        task = getattr(pl_module.task, "objective", None)
        if isinstance(task, MulticlassTask):
            return task.num_outputs
        return 2 if isinstance(task, BinaryTask) else None

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        k = self._classes(pl_module)
        self.matrix = None if k is None else torch.zeros(k, k, dtype=torch.long, device=pl_module.device)

    @torch.no_grad()
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.matrix is None:
            return
        logits = pl_module(batch)
        k = self.matrix.shape[0]
        predicted = logits.argmax(-1) if logits.shape[-1] == k else (logits.reshape(-1) > 0).long()
        index = batch["label"].long().reshape(-1) * k + predicted.reshape(-1)
        self.matrix += torch.bincount(index, minlength=k * k).reshape(k, k)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.matrix is None:
            return
        matrix = trainer.strategy.reduce(self.matrix, reduce_op="sum")
        if trainer.is_global_zero:
            confusion_matrix_png(matrix.cpu(), list(pl_module.spec.class_names), self.path)
