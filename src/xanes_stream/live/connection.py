"""The service's way to Tiled: connected on first use, so the service starts without Tiled."""

from __future__ import annotations

from xanes_stream.live.config import ServiceConfig
from xanes_stream.live.records import ScanTable
from xanes_stream.store.client import tiled_client
from xanes_stream.store.tiled_store import TiledResultStore

__all__ = ["TiledConnection"]


class TiledConnection:
    """The result store of ``config`` (with ``client``, or one made on first use); failures to
    connect go to ``table.last_error``. ``replace_done``: results replace good maps (replay)."""

    def __init__(
        self, config: ServiceConfig, table: ScanTable, client=None, *, replace_done: bool = False
    ) -> None:
        self.config = config
        self.table = table
        self._client = client
        self.replace_done = replace_done
        self._store: TiledResultStore | None = None

    def store(self) -> TiledResultStore:
        """The store; connecting (raising what the client raises) until it once succeeds."""
        if self._store is None:
            if self._client is None:
                key = self.config.api_key.get_secret_value() if self.config.api_key else None
                self._client = tiled_client(self.config.tiled_uri, key)
            self._store = TiledResultStore(
                self._client,
                root=self.config.results_root,
                results_dir=self.config.results_dir,
                replace_done=self.replace_done,
            )
        return self._store

    def store_or_none(self) -> TiledResultStore | None:
        """The store, or None while Tiled cannot be connected to."""
        try:
            return self.store()
        except Exception as exc:
            self.table.last_error = f"Tiled at {self.config.tiled_uri}: {exc}"
            return None
