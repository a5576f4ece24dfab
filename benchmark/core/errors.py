"""Exceptions with messages that name the input and what is wrong.

Distinct classes let the pytest layer map problems to outcomes: a ``PipelineError`` is an *error*
(the measurement is broken), never a claim failure.
"""

from __future__ import annotations


class BenchError(Exception):
    """Base class of the suite's own errors."""


class UnknownNameError(BenchError, KeyError):
    """A registry lookup for a name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class WeightsUnavailableError(BenchError):
    """The weights of a model cannot be loaded on this machine (offline, package missing, hash mismatch)."""


class UnsupportedModelError(BenchError):
    """A hub model whose classes do not expose what extraction needs (decoder, audio placeholder...)."""


class ProbeSetError(BenchError):
    """A malformed probe set: names the file, the row and the field."""


class PipelineError(BenchError):
    """The measurement itself is broken (identical latents for distinct inputs, NaN, hook mismatch)."""


class OutOfMemoryError(BenchError):
    """Extraction ran out of memory; the message says the batch size and what to try."""
