"""What a run's start document says about its energy scan, read defensively.

The start's ``md['xanes']`` may name the data keys, the units, the streams, the references and
the series; anything unusable (a wrong type, a reference or series name that could be a path,
more energies announced than a scan may have) becomes the run's failure reason rather than an
exception, so the run still gets a record at its stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.identifiers import UnsafeIdentifier, check_name
from xanes_stream.documents.limits import Limits
from xanes_stream.profiles import Profile

__all__ = ["StartReading", "check_frame_shape", "read_start", "short"]


def short(value, n: int = 40) -> str:
    """A document's value for a log line or a reason: as text, cut to ``n`` characters."""
    text = value if isinstance(value, str | int) and not isinstance(value, bool) else repr(value)
    text = str(text)
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass
class StartReading:
    """The keys, units, streams, mode, references and announced frames of one run."""

    image_key: str
    energy_key: str
    i0_key: str | None
    energy_scale: float
    stream_kind: dict  # stream name -> primary | dark | flat
    mode: str
    references: list[str] = field(default_factory=list)
    expected: int | None = None  # frames announced (None: not said)
    failure: str | None = None  # why the start cannot be used


def read_start(start: dict, md: dict, profile: Profile, limits: Limits) -> StartReading:
    """The profile's defaults, with what ``md`` (the start's ``xanes``) overrides."""
    reading = StartReading(
        image_key=profile.image_key,
        energy_key=profile.energy_key,
        i0_key=profile.i0_key,
        energy_scale=1000.0 if profile.energy_units == "keV" else 1.0,
        stream_kind={getattr(profile.streams, k): k for k in ("primary", "dark", "flat")},
        mode=profile.mode,
        references=list(profile.references),
    )
    try:
        _override(reading, md, profile)
        reading.expected = _announced(start, md, limits)
    except (DocumentError, KeyError, TypeError, ValueError, AttributeError) as exc:
        reading.failure = f"unusable start document: {exc}"
    return reading


def _override(reading: StartReading, md: dict, profile: Profile) -> None:
    reading.image_key = md.get("image_key", profile.image_key)
    reading.energy_key = md.get("energy_key", profile.energy_key)
    reading.i0_key = md.get("i0_key", profile.i0_key)
    units = md.get("energy_units", profile.energy_units)
    reading.energy_scale = 1000.0 if units == "keV" else 1.0
    streams = {**profile.streams.model_dump(), **(md.get("streams") or {})}
    reading.stream_kind = {
        streams["primary"]: "primary",
        streams["dark"]: "dark",
        streams["flat"]: "flat",
    }
    reading.mode = md.get("mode", profile.mode)
    references = md.get("references") or profile.references
    if not isinstance(references, list | tuple):
        raise UnsafeIdentifier(f"md['xanes']['references'] is {short(references)}, not a list")
    reading.references = [check_name(r, "reference") for r in references]
    if md.get("series") is not None:
        check_name(md["series"], "md['xanes']['series']")


def _announced(start: dict, md: dict, limits: Limits) -> int | None:
    energies = md.get("energies")
    expected = start.get("num_points") or (
        len(energies) if isinstance(energies, list | tuple) else None
    )
    if not isinstance(expected, int) or isinstance(expected, bool) or expected <= 0:
        return None
    if expected > limits.max_frames:
        raise DocumentError(
            f"it announces {expected} energies, more than the {limits.max_frames} a scan "
            "may have (max_frames)"
        )
    return expected


def check_frame_shape(shape, expected: int | None, limits: Limits) -> None:
    """Refuse a descriptor whose announced frame ``shape`` times the ``expected`` frames
    (float32) would exceed ``limits.max_scan_bytes``; before any frame is held."""
    if not expected or not isinstance(shape, list | tuple) or not shape:
        return
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
        raise DocumentError(f"frame shape {short(shape)} is not a shape")
    size = 4.0 * expected * float(np.prod([float(n) for n in shape]))
    if size > limits.max_scan_bytes:
        raise DocumentError(
            f"{expected} frames of {tuple(shape)} would take {size / 2**20:.0f} MiB, more "
            f"than the {limits.max_scan_bytes / 2**20:.0f} MiB allowed for one scan "
            "(max_scan_bytes)"
        )
