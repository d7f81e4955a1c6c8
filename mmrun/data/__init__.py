"""Datasets, data specs and the tensor batch loader."""
