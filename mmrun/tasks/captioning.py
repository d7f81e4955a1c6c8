"""``task=captioning``: write the text of one modality from the others (conditional generation).

The condition modalities (``task.condition``) are encoded to token sequences and turned into a
decoder *memory* (``CaptionMemory``): every condition modality's tokens, projected to one width,
plus one summary token, the configured fusion of the condition modalities (a single condition
modality's pooled vector). A decoder (``decoder=gru|transformer``, ``mmrun.decoders``) writes the
target text (``task.target``, a text modality of the data) token by token, trained by teacher
forcing with token cross-entropy (padding ignored, optional label smoothing).

Validation decodes greedily (fast); test decodes as ``task.decoding`` says (greedy, or beam
search of ``task.beam_size``). The generated captions are scored over the whole split against
every reference of their item (``mmrun.metrics.captioning``: BLEU-1..4, ROUGE-L, CIDEr-D as
coco-caption computes them): rows with the same ``label`` (the data's group id, e.g.
``dataset.group_column=image_id``, or the built-in ``dataset.captions_per_item``) are the
captions of one item, whose condition is identical, so each item is captioned once. The
monitored metric is ``val/cider``.

Token ids: the data's text ids (0 = padding) plus two more, ``<bos>`` and ``<eos>``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from mmrun.components import build
from mmrun.data.preprocess.text import UNK, detokenize
from mmrun.data.spec import DataSpec
from mmrun.errors import ConfigError, DataError
from mmrun.fusion.budget import build_fusion
from mmrun.fusion.layers import TokenProjection, masked_pooled
from mmrun.tasks.base import TaskFamily
from mmrun.tasks.two_tower import SplitCollector, resolve_side

log = logging.getLogger("mmrun")
DECODINGS = ("greedy", "beam")
METRICS = ("bleu", "rouge", "cider", "meteor")
SCORE_NAMES = {"bleu": ("bleu1", "bleu2", "bleu3", "bleu4"), "rouge": ("rouge_l",), "cider": ("cider",),
               "meteor": ("meteor",)}


class CaptionMemory(nn.Module):
    """The decoder's memory: one summary token (the fusion of the condition modalities, or a single
    modality's pooled vector), then every condition modality's tokens, all projected to ``width``.

    Absent modalities and padded tokens are masked out of the memory (``TokenProjection``); the
    summary token is masked when a sample has none of its condition modalities.

    Args:
        dims: encoder width of each condition modality (tokens and pooled vector share it).
        fusion: the fusion config, used when there are several condition modalities.
        width: the memory's width.
    """

    def __init__(self, dims: dict[str, int], fusion: DictConfig, width: int) -> None:
        super().__init__()
        self.modalities = list(dims)
        self.tokens = TokenProjection(dims, width)
        self.fusion = build_fusion(fusion, dims, lambda out: nn.Linear(out, width)) if len(dims) > 1 else None
        self.summary = nn.Linear(self.fusion.out_dim if self.fusion is not None else next(iter(dims.values())), width)

    def forward(self, encoded: dict[str, Any], present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``memory [B, 1 + sum T_m, width]`` and its mask (True = a real memory token)."""
        tokens, masks = self.tokens(encoded, present)
        if self.fusion is not None:
            pooled = self.fusion(encoded, present)
        else:
            pooled = masked_pooled(encoded, present, self.modalities)[0]
        summary = self.summary(pooled).unsqueeze(1)
        return torch.cat([summary, *tokens], 1), torch.cat([present.any(1, keepdim=True), *masks], 1)


class CaptioningTask(TaskFamily):
    """Condition modalities -> memory -> decoder; teacher forcing; metrics on decoded text.

    Args:
        spec, dims, fusion: see ``mmrun.tasks.base``.
        decoder: the decoder config (``conf/decoder/``), built with the vocabulary size, the
            memory width and the longest caption.
        type: ``captioning`` (the manifest reads groups, not labels, for it).
        condition: the modalities to caption from (names, or kinds: ``image`` = every image
            modality); None: every modality of the data but the target.
        target: the text modality to write.
        memory_dim: width of the decoder's memory.
        max_length: longest generated caption in tokens, the end token included; None: the
            target's padded length + 1. Longer training captions are cut (and counted).
        decoding: ``greedy`` or ``beam`` for the test split (validation is always greedy).
        beam_size: hypotheses kept by beam search.
        length_penalty: beam search ranks finished captions by log-probability / length ** this.
        label_smoothing: of the token cross-entropy (Szegedy et al., CVPR 2016, arXiv:1512.00567).
        metrics: which of bleu, rouge, cider, meteor (meteor needs a Java runtime).
    """

    family = "captioning"
    monitor, monitor_mode = "val/cider", "max"
    uses_decoder = True

    def __init__(self, spec: DataSpec, dims: dict[str, int], fusion: DictConfig, decoder: DictConfig | None = None,
                 type: str = "captioning", condition: list[str] | None = None, target: str = "text",
                 memory_dim: int = 128, max_length: int | None = None, decoding: str = "greedy", beam_size: int = 5,
                 length_penalty: float = 1.0, label_smoothing: float = 0.0,
                 metrics: list[str] = ("bleu", "rouge", "cider")) -> None:
        super().__init__()
        if type != "captioning":
            raise ConfigError(f"task.type={type} does not fit task=captioning; leave it at captioning")
        if decoder is None or "_target_" not in decoder:
            raise ConfigError("task=captioning needs a decoder: decoder=gru or decoder=transformer")
        if decoding not in DECODINGS:
            raise ConfigError(f"task.decoding={decoding} is unknown; use greedy or beam")
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or "cider" not in metrics:
            raise ConfigError(f"task.metrics={list(metrics)} must list some of {', '.join(METRICS)} including cider "
                              f"(the monitored metric), e.g. task.metrics=[bleu,rouge,cider]")
        self.condition, self.target = condition_modalities(condition, target, spec)
        self.tokenizer = text_tokenizer(spec, self.target)
        # Ids never written into a caption's text: padding, and the unknown word of a fitted vocabulary
        # (a generated <unk> would otherwise match a reference's <unk>).
        self.unwritten = {0, *(i for i, word in enumerate(self.tokenizer["vocab"]) if word == UNK)}
        text_length = next(m.shape[0] for m in spec.modalities if m.name == self.target)
        self.max_length = int(max_length) if max_length is not None else text_length + 1
        if self.max_length < 2:
            raise ConfigError(f"task.max_length={max_length} must leave room for a word and the end token (>= 2)")
        data_vocab = next(m.vocab_size for m in spec.modalities if m.name == self.target)
        self.bos, self.eos = data_vocab, data_vocab + 1
        self.columns = [spec.modality_names.index(n) for n in self.condition]
        self.memory = CaptionMemory({n: dims[n] for n in self.condition}, fusion, memory_dim)
        self.decoder = build(decoder, "decoder", vocab_size=data_vocab + 2, memory_dim=memory_dim,
                             max_length=self.max_length)
        self.decoding, self.beam_size, self.length_penalty = decoding, beam_size, length_penalty
        self.label_smoothing = label_smoothing
        self.metrics = tuple(metrics)
        self.collectors = nn.ModuleDict({split: SplitCollector(("generated", "groups", "references"))
                                         for split in ("val", "test")})
        self.outputs: dict[str, Any] = {}  # the last test's captions, kept while record_outputs is set
        self.reports: dict[str, dict[str, Any]] = {}
        self.training_captions: dict[str, int] = {}  # counted by attach_data

    @classmethod
    def modalities_read(cls, task_cfg, spec):
        condition, _ = condition_modalities(task_cfg.get("condition"), task_cfg.get("target", "text"), spec)
        return condition

    def modality_groups(self, read: list[str]) -> list[list[str]]:
        return [list(self.condition)]

    def attach_data(self, datamodule, split: str = "test") -> None:
        """Count the training captions that ``max_length`` cuts, and those that are empty."""
        captions = datamodule.splits.get("train", {}).get(self.target)
        if captions is None or len(captions) == 0:
            return
        lengths = (captions != 0).sum(1)
        cut, empty = int((lengths >= self.max_length).sum()), int((lengths == 0).sum())
        self.training_captions = {"count": len(lengths), "cut": cut, "empty": empty}
        if cut:
            log.warning("%d of %d training captions are longer than task.max_length=%d tokens (with the end token) "
                        "and are cut; raise task.max_length (and dataset.text.max_length) to keep them whole",
                        cut, len(lengths), self.max_length)
        if empty:
            log.warning("%d of %d training rows have no caption (%s) and teach nothing", empty, len(lengths),
                        self.target)

    # ------------------------------------------------------------- training
    def teacher_forcing(self, captions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder inputs ``<bos> w_1 .. w_n`` and targets ``w_1 .. w_n <eos>`` (0-padded), at most
        ``max_length`` long; a caption that does not fit is cut and gets no end token, an empty one
        gets no target at all."""
        lengths = (captions != 0).sum(1)
        width = self.max_length
        words = F.pad(captions, (0, max(0, width - captions.shape[1])))[:, :width]
        bos = torch.full_like(words[:, :1], self.bos)
        inputs = torch.cat([bos, words[:, : width - 1]], 1)
        targets = words.clone()
        fits = (lengths > 0) & (lengths < width)  # an empty caption teaches nothing, not "stop at once"
        targets[fits, lengths[fits]] = self.eos
        return inputs, targets

    def forward(self, encoded, batch) -> dict[str, torch.Tensor]:
        memory, memory_mask = self.memory(encoded, batch["present"][:, self.columns])
        inputs, targets = self.teacher_forcing(batch[self.target])
        logits = self.decoder(memory, memory_mask, inputs)
        return {"logits": logits, "targets": targets, "memory": memory, "memory_mask": memory_mask}

    def loss(self, outputs, batch) -> torch.Tensor:
        logits, targets = outputs["logits"], outputs["targets"]
        if not bool((targets != 0).any()):
            return logits.sum() * 0.0  # no caption in the batch: nothing to learn, keeps the graph
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=0,
                               label_smoothing=self.label_smoothing)

    # -------------------------------------------------------------- metrics
    def generate(self, memory: torch.Tensor, memory_mask: torch.Tensor, decoding: str) -> torch.Tensor:
        """Token ids ``[B, max_length]`` decoded from a memory (end token kept, 0 after it)."""
        from mmrun.decoders.search import beam_search, greedy

        if decoding == "beam":
            return beam_search(self.decoder, memory, memory_mask, self.bos, self.eos, self.max_length,
                               self.beam_size, self.length_penalty)
        return greedy(self.decoder, memory, memory_mask, self.bos, self.eos, self.max_length)

    def split_decoding(self, split: str) -> str:
        return self.decoding if split == "test" else "greedy"

    def update_metrics(self, outputs, batch, split):
        if split not in self.collectors:
            return None
        generated = self.generate(outputs["memory"], outputs["memory_mask"], self.split_decoding(split))
        self.collectors[split].update(generated=generated, groups=batch["label"].long(), references=batch[self.target])
        return None

    def metric_names(self, split: str) -> list[str]:
        return [f"{split}/{name}" for metric in self.metrics for name in SCORE_NAMES[metric]]

    def text(self, ids: torch.Tensor) -> str:
        """A caption's words from its ids (up to the end token; padding, ``<bos>`` and unknown words dropped)."""
        words = []
        for token in ids.tolist():
            if token == self.eos:
                break
            if token not in self.unwritten and token != self.bos:
                words.append(token)
        return detokenize(words, self.tokenizer)

    def epoch_metrics(self, split: str) -> dict[str, torch.Tensor]:
        from mmrun.metrics.captioning import caption_scores, cider_per_sample

        collector = self.collectors[split] if split in self.collectors else None  # noqa: SIM401
        if collector is None or collector.update_count == 0:
            return {}
        data = {key: value.cpu() for key, value in collector.compute().items()}
        collector.reset()
        items = caption_items(data["groups"], data["references"], self.text)
        first, references = items["first"], items["references"]
        candidates = [self.text(data["generated"][row]) for row in first.tolist()]
        scored = [i for i, refs in enumerate(references) if refs]  # items with no caption are only generated
        if split == "val" and not scored:  # validation only happens in training, whose monitor is val/cider
            raise DataError(f"no validation row has a caption ({self.target}), so val/cider, the monitored metric, "
                            f"cannot be computed; give validation rows their captions")
        self.reports[split] = {"captioning": {"decoding": self.decoding_name(split), "items": len(first),
                                              "scored_items": len(scored),
                                              "references": sum(len(r) for r in references),
                                              "training_captions": self.training_captions}}
        per_item: list[float | None] = [None] * len(first)
        scores: dict[str, float] = {}
        if scored:
            chosen_candidates, chosen_references = [candidates[i] for i in scored], [references[i] for i in scored]
            scores = caption_scores(chosen_candidates, chosen_references, self.metrics)
            if self.record_outputs:  # per-item CIDEr-D for captions.csv (its mean is scores["cider"])
                for i, value in zip(scored, cider_per_sample(chosen_candidates, chosen_references), strict=True):
                    per_item[i] = value
        if self.record_outputs:  # rows: positions in the scored split (evaluation loaders keep the order)
            self.outputs = {"rows": first, "candidates": candidates, "references": references, "cider": per_item}
        return {f"{split}/{name}": torch.tensor(float(value)) for name, value in scores.items()}

    def decoding_name(self, split: str) -> str:
        decoding = self.split_decoding(split)
        return f"beam {self.beam_size}" if decoding == "beam" else "greedy"

    def report(self, split: str) -> dict[str, Any]:
        return self.reports.get(split, {})

    def write_outputs(self, scoring) -> Path:
        """``captions.csv``: each scored item's generated caption, its references and its CIDEr-D."""
        from mmrun.captions import write_captions

        if not self.outputs:
            scoring.trainer.test(scoring.model, dataloaders=scoring.loader, verbose=False)
        path = scoring.run_dir / "captions.csv"
        write_captions(path, self.outputs, scoring.row_ids)
        return path


def condition_modalities(condition: Any, target: str, spec: DataSpec) -> tuple[list[str], str]:
    """The condition modalities (spec order) and the target text modality, checked."""
    kinds = {m.name: m.kind for m in spec.modalities}
    if target not in kinds:
        raise ConfigError(f"task.target={target} is not a modality of the data; its modalities are "
                          f"{', '.join(f'{n} ({k})' for n, k in kinds.items())}")
    if kinds[target] != "text":
        raise ConfigError(f"task.target={target} is {kinds[target]}, not text: captioning writes a text column; "
                          f"name a text modality")
    if condition is None:
        condition = [name for name in kinds if name != target]
        if not condition:
            raise ConfigError(f"the data has no modality besides the caption {target} to caption from; "
                              f"captioning needs an image, audio or other column")
    chosen = resolve_side(condition, spec, "task.condition")
    if target in chosen:
        raise ConfigError(f"{target} is both the caption (task.target) and a condition (task.condition); "
                          f"caption from the other modalities")
    return chosen, target


def text_tokenizer(spec: DataSpec, target: str) -> dict:
    """The fitted tokenizer of the target text (``spec.extra["tokenizers"]``), to turn ids back into words."""
    state = (spec.extra.get("tokenizers") or {}).get(target)
    if state is None:
        raise ConfigError(f"task=captioning needs the vocabulary of {target}, which this dataset does not record; "
                          f"use dataset=scenes (built in) or dataset=manifest")
    if state.get("tokenizer") != "word":
        raise ConfigError(f"task=captioning writes the words of a vocabulary fitted on the captions, but {target} "
                          f"is tokenised with dataset.text.tokenizer={state.get('tokenizer')}; use "
                          f"dataset.text.tokenizer=word")
    return state


def caption_items(groups: torch.Tensor, references: torch.Tensor, text) -> dict[str, Any]:
    """The split's items (rows of one group), in order of their first row: that row, and the
    captions of all of the item's rows as its references (rows without a caption left out)."""
    order = torch.argsort(groups, stable=True)
    _, counts = torch.unique_consecutive(groups[order], return_counts=True)
    items = sorted((int(rows.min()), rows.tolist()) for rows in torch.split(order, counts.tolist()))
    return {"first": torch.tensor([first for first, _ in items], dtype=torch.long),
            "references": [[text(references[row]) for row in rows if bool((references[row] != 0).any())]
                           for _, rows in items]}
