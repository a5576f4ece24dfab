"""lalm-bench: per-layer latents of large audio-language models and the paper's claims about them."""

__version__ = "0.1.0"
