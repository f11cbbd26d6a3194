"""The one error type meant for a person: the CLI prints its message on one line and exits 2."""

from __future__ import annotations


class SupernasError(ValueError):
    """Bad input or an impossible request, explained in words a user can act on."""
