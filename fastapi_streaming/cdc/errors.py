"""Errors of change data capture."""

from __future__ import annotations


class CaptureConfigurationError(RuntimeError):
    """The database or the declaration is not set up for change capture.

    Raised at startup, before any client connects; the message names the fix.
    """


class LeaseLost(RuntimeError):
    """This process no longer holds the capture lease of a source; another one may take over."""
