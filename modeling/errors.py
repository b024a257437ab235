"""The one error a model raises when it cannot be loaded or does not fit its inputs."""

from __future__ import annotations


class ModelError(RuntimeError):
    """A champion is missing, does not load or does not fit the features; the service refuses to start.

    ``reason`` is the message without the registry's address, fit to show over HTTP.
    """

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


class NoChampion(ModelError):
    """The registry holds no champion under a configured name (or no model at all to score with)."""
