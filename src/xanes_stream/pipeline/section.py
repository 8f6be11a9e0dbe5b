"""The base of every settings section, kept apart so analysis modules can define their own
sections without importing :mod:`xanes_stream.pipeline.settings` (which collects them all).

Also the two markers that say whether a start document may set a field (see
:func:`xanes_stream.pipeline.settings.refused_from_documents`): a field of numbers, booleans and
fixed choices may be set by a document unless marked :data:`OPERATOR_ONLY`; any other field
(a string, a list of strings, a mapping) is the operator's unless marked :data:`FROM_DOCUMENTS`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Window = tuple[float, float]

#: ``Field(..., json_schema_extra=FROM_DOCUMENTS)``: a start document may set this field
#: although its type alone would not allow it (a reference name is a string, but only ever
#: looked up among the references).
FROM_DOCUMENTS = {"from_documents": True}
#: ``Field(..., json_schema_extra=OPERATOR_ONLY)``: only the operator (a profile, a settings
#: file, the command line) may set this field, whatever its type: a path, a type to trust.
OPERATOR_ONLY = {"from_documents": False}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
