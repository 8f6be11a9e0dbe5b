"""The base of every settings section, kept apart so analysis modules can define their own
sections without importing :mod:`xanes_stream.pipeline.settings` (which collects them all)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Window = tuple[float, float]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
