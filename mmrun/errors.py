"""User-facing errors.

Every mistake a user can make (a bad override, a missing file, a fusion that needs more
modalities than the data has, a broken checkpoint) raises a subclass of ``MmrunError`` whose
message names the problem and the fix. The CLI prints it on one line and exits with
``exit_code``; ``HYDRA_FULL_ERROR=1`` shows the traceback instead.
"""


class MmrunError(Exception):
    """Base class of every error caused by user input rather than by a bug."""

    exit_code = 2


class ConfigError(MmrunError):
    """The composed configuration is invalid (unknown key, bad option, bad value)."""


class DataError(MmrunError):
    """The data cannot be used as configured (missing file, bad row, shape mismatch)."""


class CheckpointError(MmrunError):
    """A checkpoint is missing, unreadable or not an mmrun checkpoint."""


class FusionError(ConfigError):
    """A fusion method cannot work with the modalities it was given."""


class TrainingDiverged(MmrunError):
    """The training loss became NaN or infinite (a learning rate too high, or NaN in the data)."""

    exit_code = 3

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(
            f"training diverged: the loss became {loss} at epoch {epoch}, step {step}; lower optimizer.lr "
            f"(e.g. by 10x), set trainer.gradient_clip_val=1.0, or check the data for NaN or huge values"
        )
        self.epoch, self.step = epoch, step


class AnalysisError(MmrunError):
    """An analysis of a checkpoint (``+analysis=...``) cannot run as asked (task, baseline, options)."""


class DistillationError(MmrunError):
    """A teacher cannot teach this student (``+distill``): another task, other classes, a modality the data lacks."""
