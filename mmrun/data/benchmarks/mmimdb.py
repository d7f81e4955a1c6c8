"""MM-IMDb: movie genre classification from plot features and poster features.

Reads the release file ``multimodal_imdb.hdf5`` (Arevalo et al., "Gated Multimodal Units
for Information Fusion", ICLR 2017 Workshop, arXiv:1702.01992)::

    features       N x 300    text: mean word2vec vector of the plot
    vgg_features   N x 4096   image: VGG-16 features of the poster
    genres         N x 23     multi-hot genre labels

Splits are index ranges of the release: train 0-15552, validation 15552-18160, test
18160-25959 (``split_bounds``). Both modalities are kind ``features`` (vectors); the task
is multilabel (micro and macro F1, mAP). Needs h5py: ``pip install "mmrun[mmimdb]"``.
"""

from __future__ import annotations


import numpy as np
import torch

from mmrun.data.benchmarks.common import all_present, require_file, required_path, select_modalities
from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.data.tensor_datamodule import SPLITS, TensorDataModule
from mmrun.errors import ConfigError, DataError

# Modality name -> (hdf5 dataset, feature width).
SOURCES = {"text": ("features", 300), "image": ("vgg_features", 4096)}
MODALITIES = tuple(sorted(SOURCES))
NUM_GENRES = 23
RELEASE_BOUNDS = (15552, 18160, 25959)
LAYOUT = "an hdf5 file with datasets features (N x 300), vgg_features (N x 4096), genres (N x 23)"


class MMIMDbDataModule(TensorDataModule):
    """MM-IMDb from the release hdf5 file (see the module docstring).

    Args:
        path: the ``multimodal_imdb.hdf5`` file.
        modalities: which of ``image`` and ``text`` to serve.
        split_bounds: ends of the train, validation and test index ranges.
        batch_size, eval_batch_size, seed: see ``TensorDataModule``.
    """

    def __init__(
        self,
        path: str | None,
        modalities: list[str] | tuple[str, ...] = MODALITIES,
        split_bounds: list[int] | tuple[int, ...] = RELEASE_BOUNDS,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed)
        bounds = list(split_bounds)
        if len(bounds) != 3 or not 0 < bounds[0] < bounds[1] < bounds[2]:
            raise ConfigError(f"dataset.split_bounds={bounds} must be three increasing positive indices, e.g. {list(RELEASE_BOUNDS)}")
        self.path = required_path(path, "dataset.path", "mmimdb", "/path/to/multimodal_imdb.hdf5")
        self.modalities = select_modalities(modalities, MODALITIES, "mmimdb")
        self.bounds = bounds

    def _read(self) -> dict[str, np.ndarray]:
        try:
            import h5py
        except ImportError:
            raise ConfigError("dataset=mmimdb needs h5py; install it with pip install 'mmrun[mmimdb]'") from None
        require_file(self.path, "mmimdb", LAYOUT)
        try:
            handle = h5py.File(self.path, "r")
        except OSError as error:
            raise DataError(f"dataset=mmimdb: cannot open {self.path} as hdf5 ({error}); expected {LAYOUT}") from None
        wanted = {"genres": NUM_GENRES, **{SOURCES[m][0]: SOURCES[m][1] for m in self.modalities}}
        arrays = {}
        with handle:
            for key, width in wanted.items():
                if key not in handle:
                    raise DataError(f"{self.path} has no dataset {key!r}; expected {LAYOUT}")
                shape = handle[key].shape
                if len(shape) != 2 or shape[1] != width or shape[0] < self.bounds[2]:
                    raise DataError(
                        f"{self.path}: {key} has shape {list(shape)}; expected at least {self.bounds[2]} x {width} "
                        f"(rows up to dataset.split_bounds[2])"
                    )
                arrays[key] = np.asarray(handle[key][: self.bounds[2]], dtype=np.float32)
        return arrays

    def build(self) -> tuple[dict[str, dict[str, torch.Tensor]], DataSpec]:
        arrays = self._read()
        genres = arrays["genres"]
        if not np.isin(genres, (0.0, 1.0)).all():
            raise DataError(f"{self.path}: genres must be multi-hot (0 or 1 in every cell)")
        data = {m: torch.from_numpy(arrays[SOURCES[m][0]]) for m in self.modalities}
        data["label"] = torch.from_numpy(genres)
        data["present"] = all_present(len(genres), len(self.modalities))
        starts = (0, *self.bounds[:2])
        splits = {s: {k: v[a:b] for k, v in data.items()} for s, a, b in zip(SPLITS, starts, self.bounds)}
        modalities = tuple(ModalitySpec(m, "features", (SOURCES[m][1],)) for m in self.modalities)
        names = tuple(f"genre{g:02d}" for g in range(NUM_GENRES))
        return splits, DataSpec(modalities, "multilabel", NUM_GENRES, names)
