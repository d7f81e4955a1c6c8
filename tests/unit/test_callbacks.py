"""EpochLogger's throughput figures: training time per epoch, without the epoch's validation."""

from __future__ import annotations

import time

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
