"""Questions asked of a trained checkpoint (``+analysis=...`` on ``mmrun eval`` and ``mmrun train``).

* ``robustness``: the monitored metric with each modality missing for a fraction p of the
  samples, noisy at level p, and every subset of modalities missing (``robustness.py``);
* ``contribution``: exact Shapley values, leave-one-out drops and permutation scores of the
  modalities (``contribution.py``).

``corruptions.py`` makes the corrupted data, ``evaluation.py`` scores a model on it through the
model's own evaluation path, ``run.py`` runs what the config asks and ``files.py`` / ``plots.py``
write the results.
"""
