"""Building config components with facts known only at run time."""

from __future__ import annotations

import inspect
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from mmrun.errors import ConfigError


def build(cfg: DictConfig, group: str, **runtime: Any) -> Any:
    """Instantiate ``cfg`` with facts known only at run time (spec, dims, params).

    A config key the target does not accept becomes a ``ConfigError`` naming the group and
    the keys it does accept.
    """
    factory = instantiate(cfg, _partial_=True, _convert_="all")
    try:
        return factory(**runtime)
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        accepted = [p for p in inspect.signature(factory.func).parameters if p not in runtime and p != "self"]
        raise ConfigError(f"{group}: {error}; its keys are {', '.join(accepted)}") from None
