"""What a run's start document may change of its profile: ``md["xanes"]``, validated.

The document is untrusted (anyone on the beamline network can publish one), so what it may
set is data keys (strings only ever used to look values up in its own events), fixed choices
(``energy_units``, ``mode``), stream names, reference names, the energies it announces and
analysis parameters (:func:`~xanes_stream.pipeline.settings.merge_document_settings`): no
path, no model, no type to trust. Anything else in ``md["xanes"]`` (``sample``, ``series``,
...) is not an override and is left alone here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xanes_stream.errors import SettingsError
from xanes_stream.pipeline.settings import (
    AnalysisSettings,
    describe_validation_error,
    merge_document_settings,
)
from xanes_stream.profiles import Profile, Streams

__all__ = ["RunOverrides", "run_overrides"]

#: The keys of ``md["xanes"]`` that override the profile (``settings`` is merged apart).
OVERRIDES = ("image_key", "energy_key", "i0_key", "energy_units", "mode", "references")


class RunOverrides(BaseModel):
    """A profile's per-run values with the start document's overrides applied."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    image_key: str
    energy_key: str
    i0_key: str | None
    energy_units: Literal["eV", "keV"]
    mode: Literal["transmission", "fluorescence", "absorbance"]
    streams: Streams
    references: list[str]
    energies: list[float] | None = Field(None, description="as announced; None: not announced")
    settings: AnalysisSettings


def run_overrides(profile: Profile, xanes: dict) -> RunOverrides:
    """``profile``'s per-run values overridden by a start document's ``md["xanes"]``.

    Parameters
    ----------
    profile : Profile
        The operator's profile.
    xanes : dict
        The start document's ``md["xanes"]``. Absent keys, and empty ``references``, keep the
        profile's values; ``streams`` overrides stream names one by one.

    Returns
    -------
    RunOverrides

    Raises
    ------
    SettingsError
        If a value is of the wrong kind or ``settings`` names a field a document may not set;
        the message names the key (``md['xanes']: streams.primary: ...``).
    """
    values = profile.model_dump(include={*OVERRIDES, "streams"})
    values.update({key: xanes[key] for key in OVERRIDES if key in xanes})
    if not xanes.get("references"):
        values["references"] = profile.references
    streams = xanes.get("streams")
    if streams is not None:
        if not isinstance(streams, dict):
            raise SettingsError(f"md['xanes']['streams']: must be a mapping, not {_kind(streams)}")
        values["streams"] = {**values["streams"], **streams}
    values["energies"] = xanes.get("energies")
    try:
        checked = RunOverrides.model_validate({**values, "settings": profile.settings})
    except ValidationError as exc:
        raise SettingsError(f"md['xanes']: {describe_validation_error(exc)}") from None
    if xanes.get("settings") is None:
        return checked
    try:
        settings = merge_document_settings(profile.settings, xanes["settings"])
    except SettingsError as exc:
        raise SettingsError(f"md['xanes']['settings']: {exc}") from None
    return checked.model_copy(update={"settings": settings})


def _kind(value: object) -> str:
    return type(value).__name__
