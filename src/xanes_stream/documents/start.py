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
from xanes_stream.documents.identifiers import check_name
from xanes_stream.documents.limits import Limits
from xanes_stream.errors import XanesStreamError
from xanes_stream.pipeline.settings import AnalysisSettings
from xanes_stream.profiles import Profile
from xanes_stream.profiles.overrides import run_overrides

__all__ = ["StartReading", "check_frame_shape", "read_start", "short"]


def short(value, n: int = 40) -> str:
    """A document's value for a log line or a reason: as text, cut to ``n`` characters."""
    text = value if isinstance(value, str | int) and not isinstance(value, bool) else repr(value)
    text = str(text)
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass
class StartReading:
    """The keys, units, streams, mode, settings, references and announced frames of one
    run."""

    image_key: str
    energy_key: str
    i0_key: str | None
    energy_scale: float
    stream_kind: dict  # stream name -> primary | dark | flat
    mode: str
    settings: AnalysisSettings
    references: list[str] = field(default_factory=list)
    expected: int | None = None  # frames announced (None: not said)
    failure: str | None = None  # why the start cannot be used
    event_image: str = "auto"  # what a 3-D image of an event is (profile.frames.event_image)


def read_start(start: dict, md: dict, profile: Profile, limits: Limits) -> StartReading:
    """The profile's defaults, with what ``md`` (the start's ``xanes``) overrides: validated
    by :func:`~xanes_stream.profiles.overrides.run_overrides` (keys, choices, analysis
    parameters), with names that could be paths and oversized announcements refused."""
    try:
        run, failure = run_overrides(profile, md), None
    except XanesStreamError as exc:  # bad overrides: the run keeps the profile's, and a reason
        run, failure = run_overrides(profile, {}), str(exc)
    reading = StartReading(
        image_key=run.image_key,
        energy_key=run.energy_key,
        i0_key=run.i0_key,
        energy_scale=1000.0 if run.energy_units == "keV" else 1.0,
        stream_kind={getattr(run.streams, k): k for k in ("primary", "dark", "flat")},
        mode=run.mode,
        settings=run.settings,
        failure=failure,
        event_image=profile.frames.event_image,
    )
    try:
        reading.references = [check_name(r, "reference") for r in run.references]
        if md.get("series") is not None:
            check_name(md["series"], "md['xanes']['series']")
        reading.expected = _announced(start, md, limits)
    except (DocumentError, KeyError, TypeError, ValueError, AttributeError) as exc:
        reading.failure = reading.failure or f"unusable start document: {exc}"
    return reading


def _announced(start: dict, md: dict, limits: Limits) -> int | None:
    """The energies a start announces: ``num_points``, else ``md['xanes']['energies']``, else
    FXI's ``num_eng`` or its ``eng_list``; None if none of them is usable."""
    expected = _count(start.get("num_points")) or _count(_length(md.get("energies")))
    expected = expected or _count(start.get("num_eng")) or _count(_length(start.get("eng_list")))
    if expected is None:
        return None
    if expected > limits.max_frames:
        raise DocumentError(
            f"it announces {expected} energies, more than the {limits.max_frames} a scan "
            "may have (max_frames)"
        )
    return expected


def _count(value) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if ok else None


def _length(values) -> int | None:
    """The length of a list of numbers (energies), else None."""
    if not isinstance(values, list | tuple):
        return None
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return len(values) if numbers else None


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
