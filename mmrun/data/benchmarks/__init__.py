"""Loaders of public multimodal benchmarks, reading the files exactly as they are released."""
