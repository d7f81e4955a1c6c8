"""mmrun: a config-driven experiment runner for multimodal deep learning."""

__version__ = "0.1.0"
