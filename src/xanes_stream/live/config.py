"""The service's settings: keyword arguments, else ``XANES_<FIELD>`` environment variables.

Every field can be set in the environment with the prefix ``XANES_`` (``XANES_STATE_DIR``,
``XANES_RESULTS_DIR``, ``XANES_WEB_PORT``, ...), except the API key, whose variable is the one
the Tiled server and the CLI use too: ``XANES_TILED_API_KEY``. Keyword arguments win over the
environment; empty variables count as unset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from xanes_stream.documents.limits import Limits
from xanes_stream.store.client import API_KEY_ENV
from xanes_stream.store.roots import root_keys

__all__ = ["ServiceConfig"]


class ServiceConfig(BaseSettings):
    """Where the service listens and writes. The API key comes from XANES_TILED_API_KEY."""

    model_config = SettingsConfigDict(
        env_prefix="XANES_", extra="forbid", env_ignore_empty=True, populate_by_name=True
    )
    tiled_uri: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = Field(None, validation_alias=API_KEY_ENV)
    source: Literal["zmq", "tiled"] = Field(
        "zmq",
        description="where documents come from: a 0MQ proxy (zmq_address), or the runs "
        "TiledWriter writes into Tiled (source_uri; the server needs a streaming_cache) "
        "(XANES_SOURCE)",
    )
    source_uri: str | None = Field(
        None,
        description="the Tiled container of the raw runs, e.g. "
        "http://host:8000/api/v1/metadata/fxi/raw: followed with source tiled, and read by the "
        "sweep and the backfill either way (one per beamline where several share a Tiled); "
        "None: the root of tiled_uri (XANES_SOURCE_URI)",
    )
    source_api_key: SecretStr | None = Field(
        None,
        description="the raw runs' Tiled's API key (XANES_SOURCE_API_KEY); None: the results' "
        "key if source_uri is on the same server, else anonymous",
    )
    backfill: bool = Field(
        True,
        description="read a run whose documents came incomplete back from Tiled (the raw "
        "runs' client); False fails it at once with the reason, as replay --file does "
        "(XANES_BACKFILL)",
    )
    dask: str | None = Field(
        None,
        description="a Dask scheduler's address (tcp://host:8786): each scan is analysed on "
        "the cluster, several at once; None: in this process (XANES_DASK)",
    )
    zmq_address: str = "127.0.0.1:5578"
    zmq_prefix: str = ""
    profile: str = "sim"
    results_root: str = Field(
        "xanes",
        description="the Tiled container for the maps: a key, or a path such as fxi/xanes for "
        "one beamline among several in one Tiled (containers made as needed) "
        "(XANES_RESULTS_ROOT)",
    )
    results_dir: str | None = Field(
        None,
        description="folder Tiled can read: maps are written there as one HDF5 file per scan "
        "and registered (one request); None uploads each map (XANES_RESULTS_DIR)",
    )
    allowed_roots: list[str] = Field(default_factory=list)
    # folders model files may be read from, beside the profile's model_roots (XANES_MODEL_ROOTS)
    model_roots: list[str] = Field(default_factory=list)
    allow_pickle: bool = False
    state_dir: str = Field(
        default_factory=lambda: str(Path.home() / ".local" / "state" / "xanes-stream"),
        description="spooled results and status.json (XANES_STATE_DIR)",
    )
    recover_hours: float = Field(
        24.0, ge=0, description="on start and every sweep, analyse scans this recent lacking maps"
    )
    sweep_interval: float = Field(60.0, gt=0, description="s between sweeps for scans lacking maps")
    backfill_timeout: float = Field(
        60.0, gt=0, description="s to wait for TiledWriter to finish a run that must be re-read"
    )
    # the live web page: None = none; 0 = any free port (see XanesService.web.url)
    web_port: int | None = None
    web_host: str = "127.0.0.1"
    kept_stacks: int = Field(default=2, ge=0)  # scans whose frames stay for pixel spectra

    # --- the live page's guard (issue 17) -----------------------------------------------------
    web_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="host names the live page answers to, with its port (a request naming any "
        "other host gets 400: DNS rebinding); empty: web_host, localhost, 127.0.0.1, ::1, and "
        "this machine's name when web_host is 0.0.0.0 or :: (XANES_WEB_ALLOWED_HOSTS, JSON)",
    )

    @field_validator("results_root")
    @classmethod
    def _safe_root(cls, value: str) -> str:
        """Each segment of the results root a safe Tiled key (:func:`root_keys`)."""
        root_keys(value)  # UnsafeIdentifier is a ValueError: pydantic says it as the reason
        return value

    @model_validator(mode="before")
    @classmethod
    def _keyword_key_wins(cls, data: Any) -> Any:
        """``api_key=...`` given as a keyword overrides XANES_TILED_API_KEY (the environment
        source names the field by its variable, the keyword by its name: both would arrive)."""
        if isinstance(data, dict) and "api_key" in data:
            data = {k: v for k, v in data.items() if k != API_KEY_ENV}
        return data

    # --- what a document may make the service hold (documents are untrusted) ----------------
    max_message_bytes: int = Field(
        256 * 2**20, gt=0, description="larger 0MQ messages are refused unread (bytes)"
    )
    max_runs_in_flight: int = Field(
        16, ge=1, description="runs started, not stopped, followed at once; the oldest is failed"
    )
    max_scan_bytes: int = Field(
        8 * 2**30, gt=0, description="memory one scan's frames may take (announced or held)"
    )
    max_frames: int = Field(
        100_000, ge=1, description="frames (energies) a run, or one stream_datum, may announce"
    )

    def limits(self) -> Limits:
        """The router's :class:`~xanes_stream.documents.limits.Limits` from these fields."""
        return Limits(
            max_runs_in_flight=self.max_runs_in_flight,
            max_scan_bytes=self.max_scan_bytes,
            max_frames=self.max_frames,
        )
