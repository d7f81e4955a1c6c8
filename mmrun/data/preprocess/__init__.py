"""Per-modality preprocessing: decode files once, fit on the training split, transform.

Each module owns one modality kind. File kinds (image, audio) expose ``decode(path)``, whose
results the cache stores; every kind exposes ``fit`` (statistics or vocabulary from the
training rows, as plain JSON-able values saved in the checkpoint) and ``transform``.
A decoding failure raises ``DecodeError`` with a short reason that validation reports per row.
"""


import math


def high_quantile(values: list, q: float):
    """The smallest value that at least a fraction ``q`` of ``values`` do not exceed."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class DecodeError(Exception):
    """A file or cell cannot be turned into a tensor; the message is the reason for the user."""


def make_options(cls, cfg, key: str):
    """Build the options dataclass ``cls`` from ``dataset.<key>``, refusing unknown keys."""
    from mmrun.errors import ConfigError

    cfg = dict(cfg or {})
    fields = list(cls.__dataclass_fields__)
    unknown = sorted(set(cfg) - set(fields))
    if unknown:
        raise ConfigError(f"dataset.{key} has no key(s) {unknown}; its keys are {fields}")
    return cls(**cfg)
