"""Simple, fixed features per modality for the classical baseline.

Each modality kind becomes one *block* of columns; nothing here is learned beyond what is
fitted on the training rows (standardisation, IDF weights, SVD projections):

* ``image [C, H, W]``: adaptive average pooling to at most 8 x 8 per channel, flattened
  (colour and coarse layout, C * 64 columns);
* ``audio [n_mels, frames]`` (log-mel): per band, the mean over each of 4 time chunks and the
  standard deviation over all frames (n_mels * 5 columns);
* ``audio [L]`` (waveform): log power of the magnitude spectrum averaged in at most 64 equal
  frequency bands, plus the log RMS level;
* ``text [T]`` token ids: TF-IDF (term frequency times inverse document frequency, Sparck
  Jones 1972; Salton & Buckley 1988) over the ids, padding (id 0) ignored, sparse;
* ``tabular [F]``: as is;
* ``categorical [K]`` ids in one id space: one-hot over the ids (id 0, unknown, dropped), sparse;
* ``features [D]`` as is; ``[T, D]``: mean and standard deviation over the steps that are not
  padding (all-zero steps);
* anything else: flattened (average-pooled to 256 columns when wider than 512);
* ``present``: the ``[M]`` presence flags, added when some sample lacks a modality.

Dense blocks are standardised (float32) with the mean and standard deviation of the training
rows that have the modality; a sample without the modality, or a non-finite cell, gets zero
there, i.e. the training mean. Sparse blocks keep only the columns seen in training.

Two views join the blocks: ``linear_view`` (sparse when the vocabulary is large) for the
linear models, ``dense_view`` (wide blocks reduced by truncated SVD) for gradient boosting.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

SPLITS = ("train", "val", "test")
IMAGE_GRID = 8
AUDIO_CHUNKS = 4
WAVEFORM_BANDS = 64
WIDE, POOLED = 512, 256
SVD_FIT_ROWS = 5000
CHUNK_ROWS = 2048  # rows featurised at a time, so a large image split never doubles in memory


@dataclass
class Block:
    """One modality's (or the presence flags') columns in every split."""

    name: str
    splits: dict[str, np.ndarray | sp.csr_matrix]

    @property
    def sparse(self) -> bool:
        return sp.issparse(self.splits["train"])

    @property
    def dim(self) -> int:
        return int(self.splits["train"].shape[1])


def _chunks(tensor: torch.Tensor, fn) -> np.ndarray:
    """Apply ``fn`` to row chunks of ``tensor`` (float, on its own device); stack on the CPU."""
    if len(tensor) == 0:  # an empty split: the right number of columns, no rows
        return fn(tensor.new_zeros((1, *tensor.shape[1:])).float()).cpu().numpy()[:0]
    parts = [fn(tensor[i : i + CHUNK_ROWS].float()).cpu() for i in range(0, len(tensor), CHUNK_ROWS)]
    return torch.cat(parts).numpy()


def image_features(images: torch.Tensor) -> np.ndarray:
    """``[N, C, H, W]`` -> ``[N, C * h * w]``: average pooled to ``h, w <= 8``."""
    grid = (min(IMAGE_GRID, images.shape[-2]), min(IMAGE_GRID, images.shape[-1]))
    return _chunks(images, lambda x: F.adaptive_avg_pool2d(x, grid).flatten(1))


def logmel_features(mels: torch.Tensor) -> np.ndarray:
    """``[N, bands, frames]`` -> per band: mean of each of 4 time chunks, then std over frames."""
    mels = mels.reshape(len(mels), -1, mels.shape[-1])
    chunks = min(AUDIO_CHUNKS, mels.shape[-1])

    def stats(x: torch.Tensor) -> torch.Tensor:
        means = F.adaptive_avg_pool1d(x, chunks).flatten(1)
        return torch.cat([means, x.std(-1, unbiased=False)], 1)

    return _chunks(mels, stats)


def waveform_features(waves: torch.Tensor) -> np.ndarray:
    """``[N, L]`` -> log power in at most 64 equal frequency bands, plus the log RMS level."""
    bins = waves.shape[-1] // 2 + 1
    bands = min(WAVEFORM_BANDS, bins)

    def stats(x: torch.Tensor) -> torch.Tensor:
        power = torch.fft.rfft(x, dim=-1).abs().square() / x.shape[-1]
        banded = F.adaptive_avg_pool1d(power.unsqueeze(1), bands).squeeze(1)
        rms = x.square().mean(-1, keepdim=True)
        return torch.log(torch.cat([banded, rms], 1) + 1e-6)

    return _chunks(waves.reshape(len(waves), -1), stats)


def sequence_features(features: torch.Tensor) -> np.ndarray:
    """``[N, D]`` as is; ``[N, T, D]``: mean and std over the steps that are not all zero."""
    if features.dim() <= 2:
        return features.reshape(len(features), -1).float().cpu().numpy()  # standardise() copies

    def stats(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), x.shape[1], -1)
        real = (x != 0).any(-1, keepdim=True).float()  # [n, T, 1]
        count = real.sum(1).clamp(min=1)
        mean = (x * real).sum(1) / count
        var = ((x - mean.unsqueeze(1)).square() * real).sum(1) / count
        return torch.cat([mean, var.sqrt()], 1)

    return _chunks(features, stats)


def flat_features(values: torch.Tensor) -> np.ndarray:
    """Any other tensor: flattened, average-pooled to 256 columns when wider than 512."""
    def flat(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        return F.adaptive_avg_pool1d(x.unsqueeze(1), POOLED).squeeze(1) if x.shape[1] > WIDE else x

    return _chunks(values, flat)


def id_counts(ids: torch.Tensor, vocab_size: int | None) -> sp.csr_matrix:
    """``[N, T]`` integer ids -> sparse ``[N, vocab]`` counts; id 0 (padding / unknown) ignored."""
    ids = ids.reshape(len(ids), -1).long().cpu()
    width = max(int(vocab_size or 0), int(ids.max()) + 1 if ids.numel() else 1)
    rows, cols = torch.nonzero(ids > 0, as_tuple=True)
    values = ids[rows, cols].numpy()
    data = np.ones(len(values), dtype=np.float64)
    counts = sp.csr_matrix((data, (rows.numpy(), values)), shape=(len(ids), width))
    counts.sum_duplicates()
    return counts


def raw_features(kind: str, values: torch.Tensor, vocab_size: int | None) -> np.ndarray | sp.csr_matrix:
    """The unfitted features of one modality kind (see the module docstring)."""
    if kind == "image" and values.dim() == 4:
        return image_features(values)
    if kind == "audio":
        return waveform_features(values) if values.dim() == 2 else logmel_features(values)
    if kind in ("text", "categorical"):
        return id_counts(values, vocab_size)
    if kind in ("tabular", "features"):
        return sequence_features(values)
    return flat_features(values)


def standardise(splits: dict[str, np.ndarray], present: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Centre and scale every column with the training rows that have the modality; absent -> 0.

    Returns new float32 arrays (the inputs, which may share memory with the data, are untouched).
    """
    train = splits["train"] if present["train"].all() else splits["train"][present["train"]]
    if len(train) == 0:
        train = splits["train"]
    if len(train) == 0:
        mean, std = np.float32(0), np.float32(1)
    elif np.isfinite(train).all():
        mean, std = train.mean(0), train.std(0)
    else:  # statistics without the non-finite cells (which become the mean below)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column with no finite cell
            cells = np.where(np.isfinite(train), train, np.nan)
            mean, std = np.nan_to_num(np.nanmean(cells, 0)), np.nan_to_num(np.nanstd(cells, 0))
    std = np.where(std > 1e-6, std, np.float32(1))
    out = {}
    for split, values in splits.items():
        scaled = np.subtract(values, mean, dtype=np.float32)
        scaled /= std
        np.nan_to_num(scaled, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        scaled[~present[split]] = 0.0
        out[split] = scaled
    return out


def fit_sparse(kind: str, splits: dict[str, sp.csr_matrix]) -> dict[str, sp.csr_matrix]:
    """Keep the columns seen in training; TF-IDF weights for text (fitted on the training rows)."""
    seen = np.flatnonzero(splits["train"].getnnz(axis=0))
    kept = {split: m[:, seen].tocsr() for split, m in splits.items()}
    if kind != "text" or kept["train"].shape[1] == 0:
        return kept
    from sklearn.feature_extraction.text import TfidfTransformer

    tfidf = TfidfTransformer().fit(kept["train"])
    return {split: tfidf.transform(m).tocsr() for split, m in kept.items()}


def build_blocks(splits: dict[str, dict[str, torch.Tensor]], spec, train_rows: np.ndarray | None = None) -> list[Block]:
    """Fitted feature blocks for every modality of ``spec`` (plus presence flags when needed).

    Args:
        splits: ``{"train"|"val"|"test": {modality: tensor, "present": [N, M] bool, ...}}``.
        spec: the ``DataSpec`` (modalities in the order of the ``present`` columns).
        train_rows: indices of the training rows to use (all when None).
    """
    def rows(split: str, tensor: torch.Tensor) -> torch.Tensor:
        if split == "train" and train_rows is not None:
            return tensor[torch.as_tensor(train_rows, device=tensor.device)]
        return tensor

    present = {s: rows(s, splits[s]["present"]).bool().cpu().numpy().reshape(-1, len(spec.modalities))
               for s in SPLITS}
    blocks = []
    for column, modality in enumerate(spec.modalities):
        raw = {s: raw_features(modality.kind, rows(s, splits[s][modality.name]), modality.vocab_size) for s in SPLITS}
        if sp.issparse(raw["train"]):
            width = max(m.shape[1] for m in raw.values())  # ids beyond the training rows' maximum
            raw = {s: sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width)) for s, m in raw.items()}
            fitted = fit_sparse(modality.kind, raw)
        else:
            fitted = standardise(raw, {s: present[s][:, column] for s in SPLITS})
        blocks.append(Block(modality.name, fitted))
    if not all(flags.all() for flags in present.values()):
        flags = {s: present[s].astype(np.float32) for s in SPLITS}
        blocks.append(Block("present", standardise(flags, {s: np.ones(len(f), bool) for s, f in flags.items()})))
    return blocks


def reduce(block: Block, dims: int, seed: int, fit_rows: int = SVD_FIT_ROWS) -> dict[str, np.ndarray]:
    """The block projected on its first ``dims`` truncated-SVD components.

    For a sparse TF-IDF block this is latent semantic analysis (Deerwester et al. 1990); a
    dense block is already centred, so it is principal component analysis. Randomized SVD
    (Halko et al. 2011), fitted on at most ``fit_rows`` training rows (seeded) to bound its cost.
    """
    from sklearn.decomposition import TruncatedSVD

    train = block.splits["train"]
    if train.shape[0] > fit_rows:
        train = train[np.sort(np.random.default_rng(seed).choice(train.shape[0], fit_rows, replace=False))]
    dims = min(dims, block.dim - 1, train.shape[0] - 1)
    svd = TruncatedSVD(n_components=dims, n_iter=3, random_state=seed).fit(train)
    return {s: np.asarray(svd.transform(block.splits[s]), dtype=np.float32) for s in SPLITS}


def linear_view(blocks: list[Block], seed: int, narrow: int = 256, widest: int = 1024,
                dense_dims: int = 256) -> dict[str, np.ndarray | sp.csr_matrix]:
    """All blocks side by side, for the linear models.

    Dense unless a sparse block is wider than ``narrow`` columns (a large vocabulary), where a
    sparse matrix is far cheaper. A dense block wider than ``widest`` columns (e.g. 4096 CNN
    features) is reduced to ``dense_dims`` principal components to bound the fitting time.
    """
    columns = [reduce(b, dense_dims, seed) if not b.sparse and b.dim > widest else b.splits for b in blocks]
    if any(block.sparse and block.dim > narrow for block in blocks):
        return {s: sp.hstack([sp.csr_matrix(c[s]) for c in columns], format="csr", dtype=np.float64) for s in SPLITS}
    return {s: np.hstack([c[s].toarray() if sp.issparse(c[s]) else c[s] for c in columns]).astype(np.float64)
            for s in SPLITS}


def dense_view(blocks: list[Block], seed: int, sparse_dims: int = 32, dense_dims: int = 32,
               widest: int = 64) -> dict[str, np.ndarray]:
    """All blocks as one dense matrix, for gradient boosting (which needs dense input).

    A sparse block wider than 2 * ``sparse_dims`` columns is reduced to ``sparse_dims``
    SVD components, a dense block wider than ``widest`` to ``dense_dims`` (see ``reduce``).
    Boosting time grows with the number of columns, so this keeps it to seconds.
    """
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for block in blocks:
        limit, dims = (2 * sparse_dims, sparse_dims) if block.sparse else (widest, dense_dims)
        if block.dim > limit and block.splits["train"].shape[0] > dims:
            reduced = reduce(block, dims, seed)
        else:
            reduced = {s: block.splits[s].toarray() if block.sparse else block.splits[s] for s in SPLITS}
        for s in SPLITS:
            parts[s].append(np.asarray(reduced[s], dtype=np.float32))
    return {s: np.hstack(parts[s]) for s in SPLITS}
