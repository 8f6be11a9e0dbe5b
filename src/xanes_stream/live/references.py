"""Reference spectra by name: the Tiled library's, else the bundled one; each read once."""

from __future__ import annotations

import logging
from collections.abc import Callable

from xanes_stream.errors import XanesStreamError
from xanes_stream.io.references import bundled_reference
from xanes_stream.spectra.references import Reference
from xanes_stream.store.spool import is_outage
from xanes_stream.store.tiled_store import TiledResultStore

__all__ = ["ReferenceCache"]

log = logging.getLogger(__name__)


class ReferenceCache:
    """The references the service fits with, read from ``store()``'s library on first use."""

    def __init__(self, store: Callable[[], TiledResultStore]) -> None:
        self._store = store
        self._references: dict[str, Reference] = {}  # the worker and the page both ask

    def get(self, name: str) -> Reference:
        """Reference ``name``: from the Tiled library, or (if not there, or Tiled is away) the
        bundled one.

        Raises
        ------
        XanesStreamError
            When it is neither in the library nor bundled.
        """
        if name not in self._references:
            self._references[name] = self._load(name)
        return self._references[name]

    def __call__(self, names: list[str]) -> list[Reference]:
        """The references by name, as the analysis uses them."""
        return [self.get(name) for name in names]

    def available(self, names: list[str]) -> tuple[list[Reference], list[str]]:
        """The references of ``names`` that can be found, and the names of those that cannot
        (neither in the Tiled library nor bundled)."""
        found, missing = [], []
        for name in names:
            try:
                found.append(self.get(name))
            except XanesStreamError:
                missing.append(name)
        return found, missing

    def _load(self, name: str) -> Reference:
        try:
            return self._store().reference(name)
        except Exception as exc:  # not in the library, or Tiled away: the bundled one
            if not (isinstance(exc, XanesStreamError) or is_outage(exc)):
                raise
        try:
            reference = bundled_reference(name)
        except XanesStreamError:
            raise XanesStreamError(
                f"reference {name!r} is neither in the Tiled library nor bundled"
            ) from None
        log.info("reference %r not in the Tiled library; using the bundled one", name)
        return reference
