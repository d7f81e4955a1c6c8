"""mmrun's callbacks: EpochLogger's throughput figures (training time per epoch, without the
epoch's validation), the progress bar's epoch numbers, LastCheckpoint's mid-epoch saves."""

from __future__ import annotations

import time

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from mmrun.callbacks import EpochLogger

VALIDATION_PAUSE_S = 0.5


class SlowValidation(pl.LightningModule):
    """A linear model whose every validation epoch takes at least VALIDATION_PAUSE_S."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.linear(batch["x"]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:
            time.sleep(VALIDATION_PAUSE_S)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_epoch_times_leave_out_validation_and_count_every_sample():
    samples = [{"x": torch.randn(2), "present": torch.ones(1)} for _ in range(12)]
    loader = DataLoader(samples, batch_size=4)
    epochs = EpochLogger()
    trainer = pl.Trainer(max_epochs=2, callbacks=[epochs], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    started = time.perf_counter()
    trainer.fit(SlowValidation(), loader, loader)
    total = time.perf_counter() - started
    assert total > 3 * VALIDATION_PAUSE_S  # sanity check + two epochs' validation
    assert len(epochs.epoch_times) == 2 and all(t < VALIDATION_PAUSE_S for t in epochs.epoch_times)
    assert epochs.samples == 24
    assert epochs.samples_per_second(world_size=1) == round(24 / sum(epochs.epoch_times), 1)


def test_the_progress_bar_counts_epochs_from_one_and_shows_no_unmeasured_speed():
    from types import SimpleNamespace

    from mmrun.callbacks.progress import EpochProgressBar, _MeasuredSpeed

    bar = EpochProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=5)
    assert bar._get_train_description(0).strip() == "Epoch 1/5"
    assert bar._get_train_description(4).strip() == "Epoch 5/5"
    speed = _MeasuredSpeed("white")
    assert speed.render(SimpleNamespace(speed=None)).plain == "" and speed.render(SimpleNamespace(speed=2.0)).plain


def test_last_checkpoint_saves_every_n_steps_within_an_epoch(tmp_path):
    from types import SimpleNamespace

    from mmrun.callbacks import LastCheckpoint
    from mmrun.errors import ConfigError

    saved = []
    strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision)  # one process
    trainer = SimpleNamespace(global_step=0, num_training_batches=10, save_checkpoint=saved.append, strategy=strategy)
    callback = LastCheckpoint(str(tmp_path), every_n_train_steps=3)
    for batch in range(10):
        trainer.global_step = batch + 1
        callback.on_train_batch_end(trainer, None, None, None, batch)
    assert [str(p) for p in saved] == [str(tmp_path / "last.ckpt")] * 3  # steps 3, 6, 9 (the epoch end saves 10)
    callback.on_train_epoch_end(trainer, None)
    assert len(saved) == 4
    timed = LastCheckpoint(str(tmp_path), every_n_minutes=0.5)
    timed.saved_at -= 31
    timed.on_train_batch_end(trainer, None, None, None, 0)
    assert len(saved) == 5
    with pytest.raises(ConfigError, match="every_n_train_steps=0 must be a whole number >= 1"):
        LastCheckpoint(str(tmp_path), every_n_train_steps=0)
