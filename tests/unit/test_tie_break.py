"""monitor_tie_break: an epoch that ties the best monitored value and has a lower val/loss is better
(mmrun.callbacks.selection), for early stopping, the best checkpoint and the best-validation row."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from conftest import compose_train

from mmrun.callbacks import BestValidationTracker, TieBreakCheckpoint, TieBreakEarlyStopping

# val/acc saturates at epoch 1 (index 1); val/loss goes on falling until epoch 6, then rises.
ACC = [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
LOSS = [0.9, 0.8, 0.6, 0.5, 0.4, 0.35, 0.3, 0.31, 0.32, 0.33, 0.34, 0.35]


class Scripted(pl.LightningModule):
    """Trains a throwaway weight; validation logs the scripted metrics of the epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.weight * batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/acc", ACC[self.current_epoch])
        self.log("val/loss", LOSS[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(2, 1)), batch_size=2)

    val_dataloader = train_dataloader


def fit(tmp_path, tie_break: str | None, min_delta: float = 0.0):
    stopping = TieBreakEarlyStopping(monitor="val/acc", mode="max", patience=2, tie_break=tie_break,
                                     min_delta=min_delta)
    checkpoint = TieBreakCheckpoint(dirpath=tmp_path, filename="best", monitor="val/acc", mode="max",
                                    save_top_k=1, enable_version_counter=False, tie_break=tie_break)
    tracker = BestValidationTracker("val/acc", "max", tie_break)
    trainer = pl.Trainer(max_epochs=len(ACC), callbacks=[stopping, checkpoint, tracker], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         accelerator="cpu")
    trainer.fit(Scripted())
    saved_epoch = torch.load(tmp_path / "best.ckpt", weights_only=False)["epoch"]
    return trainer.current_epoch, saved_epoch, tracker


def test_a_saturated_metric_keeps_training_while_the_loss_falls(tmp_path):
    epochs, saved_epoch, tracker = fit(tmp_path, "val/loss")
    # best at epoch 6 (lowest loss among the ties); two more epochs of patience, then stop.
    assert epochs == 9
    assert saved_epoch == 6 and tracker.best_epoch == 6
    assert tracker.best["val/loss"] == pytest.approx(0.3)


def test_without_a_tie_break_the_first_top_value_wins(tmp_path):
    epochs, saved_epoch, tracker = fit(tmp_path, None)
    assert epochs == 4  # epoch 1 is best, epochs 2 and 3 exhaust the patience
    assert saved_epoch == 1 and tracker.best_epoch == 1


def test_a_minimum_improvement_turns_the_tie_break_off_for_stopping(tmp_path):
    epochs, _, _ = fit(tmp_path, "val/loss", min_delta=0.01)
    assert epochs == 4  # improvements must exceed min_delta; an equal accuracy is none


def test_a_strict_improvement_beats_a_lower_loss():
    tracker = BestValidationTracker("val/acc", "max", "val/loss")

    class Trainer:
        sanity_checking = False
        current_epoch = 0
        callback_metrics: dict = {}

    trainer = Trainer()
    for epoch, (acc, loss) in enumerate([(0.9, 0.2), (0.95, 0.5), (0.9, 0.1), (0.95, 0.4)]):
        trainer.current_epoch = epoch
        trainer.callback_metrics = {"val/acc": torch.tensor(acc), "val/loss": torch.tensor(loss)}
        tracker.on_validation_end(trainer, None)
    assert tracker.best_epoch == 3  # 0.95 beats 0.9 whatever the loss; the second 0.95 has the lower loss


def test_the_tie_break_survives_a_resume():
    stopping = TieBreakEarlyStopping(monitor="val/acc", mode="max", tie_break="val/loss")
    stopping.tie.best = 0.25
    restored = TieBreakEarlyStopping(monitor="val/acc", mode="max", tie_break="val/loss")
    restored.load_state_dict(stopping.state_dict())
    assert restored.tie.best == 0.25


def test_default_config_breaks_ties_by_validation_loss():
    cfg = compose_train([])
    assert cfg.monitor_tie_break == "val/loss"
    assert cfg.callbacks.early_stopping.tie_break == "val/loss"
    assert cfg.callbacks.model_checkpoint.tie_break == "val/loss"
    assert compose_train(["monitor_tie_break=null"]).callbacks.early_stopping.tie_break is None


class Metrics:
    """A stand-in trainer with this epoch's metrics."""

    def __init__(self, **metrics: float) -> None:
        self.callback_metrics = {name.replace("_", "/"): torch.tensor(value) for name, value in metrics.items()}


def test_an_infinite_first_value_never_ties_the_starting_best():
    stopping = TieBreakEarlyStopping(monitor="val/loss_sum", mode="min", tie_break="val/loss")
    assert not stopping.tie.breaks_tie(Metrics(val_loss=0.5), torch.tensor(float("inf")), stopping.best_score)
    assert stopping.tie.breaks_tie(Metrics(val_loss=0.5), torch.tensor(0.9), torch.tensor(0.9))


def test_the_state_is_stored_under_lightnings_key():
    """So that a run checkpointed by Lightning's own EarlyStopping/ModelCheckpoint resumes with its state."""
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    assert (TieBreakEarlyStopping(monitor="val/acc", mode="max", tie_break="val/loss").state_key
            == EarlyStopping(monitor="val/acc", mode="max").state_key)
    assert (TieBreakCheckpoint(monitor="val/acc", mode="max", tie_break="val/loss").state_key
            == ModelCheckpoint(monitor="val/acc", mode="max").state_key)
