"""Lightning callbacks of mmrun, by job: reporting progress, averaging weights, making runs
resumable, stopping diverged runs, picking the best epoch (ties broken by a second metric).
Config files name them as ``mmrun.callbacks.<Name>``."""

from mmrun.callbacks.averaging import WeightEMA
from mmrun.callbacks.divergence import DivergenceGuard
from mmrun.callbacks.progress import BestValidationTracker, EpochLogger, EpochProgressBar, FirstStepMarker
from mmrun.callbacks.resume import LastCheckpoint, RandomState, TrainingOrder
from mmrun.callbacks.selection import TieBreakCheckpoint, TieBreakEarlyStopping

__all__ = ["BestValidationTracker", "DivergenceGuard", "EpochLogger", "EpochProgressBar", "FirstStepMarker", "LastCheckpoint",
           "RandomState", "TieBreakCheckpoint", "TieBreakEarlyStopping", "TrainingOrder", "WeightEMA"]
