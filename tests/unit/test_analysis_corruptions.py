"""Corruptions of mmrun.analysis: each changes its data at p > 0, never at p = 0, never absent rows."""

import pytest
import torch

from mmrun.analysis.corruptions import generator, missing_rows, noisy, shuffled
from mmrun.data.spec import ModalitySpec

N = 64
CASES = {
    "image": (ModalitySpec("image", "image", (3, 8, 8)), lambda g: torch.randn(N, 3, 8, 8, generator=g)),
    "audio": (ModalitySpec("audio", "audio", (32,)), lambda g: torch.randn(N, 32, generator=g)),
    "mel": (ModalitySpec("mel", "audio", (4, 6)), lambda g: torch.randn(N, 4, 6, generator=g)),
    "tabular": (ModalitySpec("tabular", "tabular", (5,)), lambda g: torch.randn(N, 5, generator=g)),
    "features": (ModalitySpec("features", "features", (3, 5)), lambda g: torch.randn(N, 3, 5, generator=g)),
    "text": (ModalitySpec("text", "text", (10,), vocab_size=50), lambda g: torch.randint(1, 50, (N, 10), generator=g)),
    "categorical": (ModalitySpec("cat", "categorical", (3,), vocab_size=9),
                    lambda g: torch.randint(0, 9, (N, 3), generator=g)),
}


def data(kind):
    spec, make = CASES[kind]
    x = make(torch.Generator().manual_seed(1))
    present = torch.ones(N, dtype=torch.bool)
    present[:8] = False
    x[:8] = 0  # absent rows are zero-filled
    return spec, x, present


@pytest.mark.parametrize("kind", list(CASES))
def test_noise_changes_present_rows_only_and_nothing_at_zero(kind):
    spec, x, present = data(kind)
    assert torch.equal(noisy(spec, x, present, 0.0, generator(0, kind)), x)
    corrupted = noisy(spec, x, present, 0.5, generator(0, kind))
    assert corrupted.shape == x.shape and corrupted.dtype == x.dtype
    assert torch.equal(corrupted[:8], x[:8])  # absent rows stay zero-filled
    changed = (corrupted != x).flatten(1).any(1)
    assert changed[8:].float().mean() > 0.5
    again = noisy(spec, x, present, 0.5, generator(0, kind))
    assert torch.equal(corrupted, again)  # the same condition draws the same corruption
    assert not torch.equal(corrupted, noisy(spec, x, present, 0.5, generator(1, kind)))


@pytest.mark.parametrize("kind", ["image", "tabular", "audio"])
def test_noise_grows_with_the_level(kind):
    spec, x, present = data(kind)
    errors = [(noisy(spec, x, present, p, generator(0, kind)) - x).square().mean() for p in (0.1, 0.5, 1.0)]
    assert errors[0] < errors[1] < errors[2]


def test_feature_noise_follows_each_features_spread():
    spec = CASES["tabular"][0]
    x = torch.randn(4000, 5) * torch.tensor([0.1, 1.0, 10.0, 1.0, 1.0])
    present = torch.ones(4000, dtype=torch.bool)
    noise = noisy(spec, x, present, 1.0, generator(0)) - x
    assert noise.std(0) == pytest.approx(x.std(0), rel=0.1)


def test_audio_noise_is_at_the_snr_of_its_level():
    spec = CASES["audio"][0]
    x = torch.randn(200, 4000) * 3.0
    noise = noisy(spec, x, torch.ones(200, dtype=torch.bool), 0.1, generator(0)) - x
    snr_db = 10 * torch.log10(x.square().mean() / noise.square().mean())
    assert float(snr_db) == pytest.approx(20.0, abs=0.5)  # SNR = -20 log10(0.1) dB


def test_text_noise_never_touches_padding_and_replaces_or_drops_tokens():
    spec = CASES["text"][0]
    x = torch.randint(1, 50, (N, 10), generator=torch.Generator().manual_seed(0))
    x[:, 6:] = 0  # padding
    present = torch.ones(N, dtype=torch.bool)
    corrupted = noisy(spec, x, present, 1.0, generator(0))
    assert torch.equal(corrupted[:, 6:], x[:, 6:])
    assert (corrupted[:, :6] == 0).any() and (corrupted[:, :6] != 0).any()  # dropped and replaced
    assert int(corrupted.max()) < 50
    light = noisy(spec, x, present, 0.1, generator(0))
    assert 0.02 < float((light[:, :6] != x[:, :6]).float().mean()) < 0.2


def test_image_occlusion_covers_about_half_the_level_in_area():
    spec = CASES["image"][0]
    x = torch.randn(N, 3, 8, 8) + 5.0
    present = torch.ones(N, dtype=torch.bool)
    corrupted = noisy(spec, x, present, 1.0, generator(0))
    mean = x.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
    occluded = (corrupted == mean.expand_as(x)).all(1).float().mean()
    assert float(occluded) == pytest.approx(0.5, abs=0.1)


def test_missing_rows_and_shuffles():
    rows = missing_rows(100, 0.3, generator(0, "m"))
    assert rows.sum() == 30 and not missing_rows(100, 0.0, generator(0)).any() and missing_rows(10, 1.0, generator(0)).all()
    assert not torch.equal(rows, missing_rows(100, 0.3, generator(1, "m")))
    x, present = torch.arange(20).view(10, 2), torch.arange(10) % 2 == 0
    mixed, mixed_present = shuffled(x, present, generator(0))
    assert sorted(mixed[:, 0].tolist()) == x[:, 0].tolist() and not torch.equal(mixed, x)
    assert torch.equal(mixed_present, mixed[:, 0] % 4 == 0)  # each row keeps its present flag
