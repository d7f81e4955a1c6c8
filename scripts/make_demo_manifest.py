"""Write a demo manifest of real files: PNG images, WAV audio, a caption and numbers per row.

    python scripts/make_demo_manifest.py demo --size 3000
    mmrun train dataset=manifest dataset.path=demo/manifest.csv
    mmrun eval ckpt_path=outputs/<run>/checkpoints/best.ckpt dataset.path=demo/other.csv

The samples follow the built-in synthetic dataset (``mmrun.data.synthetic``): each of four
classes (``circle``, ``square``, ``ring``, ``star`` - names only) is shown by every modality
as one *view* bit, so a single modality reaches at most about 50% accuracy and the four
together over 90%. The image and the caption are the synthetic renderers' output; the
audio is one second at 16 kHz of a tone whose pitch (200-2000 Hz) carries the audio view,
so the default log-mel settings resolve it; ``measure`` carries the tabular view and
``batch_no`` is noise. ``other.csv`` holds new samples (another seed) for ``mmrun eval``.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
import soundfile
import torch
from PIL import Image

from mmrun.data.synthetic import VOCABULARY, bit_masks, parity, render_image, render_text

CLASS_NAMES = ("circle", "square", "ring", "star")
SAMPLE_RATE = 16000


def views(size: int, noise: float, g: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Class of every sample and each modality's view value in [0, 1] (as in the synthetic data)."""
    y = torch.randint(0, len(CLASS_NAMES), (size,), generator=g)
    result = {}
    for name, mask in bit_masks(2).items():
        bit = parity(y, mask) ^ (torch.rand(size, generator=g) < noise).long()
        result[name] = 0.5 * bit + 0.05 + 0.4 * torch.rand(size, generator=g)
    return result, y


def tone(s: float, g: torch.Generator) -> np.ndarray:
    """One second of a tone at 200 + 1800 s Hz with random phase and amplitude, plus noise."""
    t = torch.arange(SAMPLE_RATE, dtype=torch.float64) / SAMPLE_RATE
    phase = 2 * math.pi * torch.rand(1, generator=g).item()
    amplitude = 0.2 + 0.2 * torch.rand(1, generator=g).item()
    wave = amplitude * torch.sin(2 * math.pi * (200 + 1800 * s) * t + phase)
    wave = wave + 0.1 * torch.randn(SAMPLE_RATE, generator=g, dtype=torch.float64)
    return wave.clamp(-1, 1).numpy().astype(np.float32)


def write_manifest(folder: Path, name: str, size: int, seed: int, noise: float) -> Path:
    """Render ``size`` samples into ``folder`` (files under ``files/<name>/``) and ``folder/<name>.csv``."""
    g = torch.Generator().manual_seed(seed)
    view, y = views(size, noise, g)
    images = render_image(view["image"], g)
    captions = render_text(view["text"], g)
    measure = 4.0 * (2 * view["tabular"] - 1) + torch.randn(size, generator=g)
    files = folder / "files" / name
    files.mkdir(parents=True, exist_ok=True)
    manifest = folder / f"{name}.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "audio", "caption", "measure", "batch_no", "label"])
        for i in range(size):
            pixels = ((images[i].permute(1, 2, 0) + 0.6) / 2.2 * 255).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(files / f"{i:05d}.png")
            soundfile.write(files / f"{i:05d}.wav", tone(float(view["audio"][i]), g), SAMPLE_RATE, subtype="PCM_16")
            words = " ".join(VOCABULARY[t] for t in captions[i].tolist() if t)
            writer.writerow([f"files/{name}/{i:05d}.png", f"files/{name}/{i:05d}.wav", words,
                             f"{measure[i].item():.4f}", int(torch.randint(1, 9, (1,), generator=g)), CLASS_NAMES[y[i]]])
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size", type=int, default=3000, help="rows of manifest.csv")
    parser.add_argument("--other-size", type=int, default=300, help="rows of other.csv (new samples)")
    parser.add_argument("--noise", type=float, default=0.05, help="probability that a view bit is flipped")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_manifest(args.folder, "manifest", args.size, args.seed, args.noise))
    print(write_manifest(args.folder, "other", args.other_size, args.seed + 1, args.noise))


if __name__ == "__main__":
    main()
