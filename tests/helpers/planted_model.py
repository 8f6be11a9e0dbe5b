"""A hostile model file: a skops file whose one "trusted" type is ``builtins.exec``, so that
loading it runs Python code. The code here only creates a marker file, to show that it ran."""

import json
import zipfile
from pathlib import Path

#: The type the file asks its reader to trust.
EXEC = "builtins.exec"


def planted_model(path: Path, marker: Path) -> Path:
    """Write to ``path`` a skops file that, once loaded trusting :data:`EXEC`, creates
    ``marker``; returns ``path``."""
    code = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    text = {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(code), "is_json": True, "__id__": 2}  # fmt: skip
    args = {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
            "content": [text], "__id__": 3}  # fmt: skip
    schema = {"__class__": "exec", "__module__": "builtins",
              "__loader__": "ConstructorFromReduceNode", "content": args, "__id__": 1,
              "protocol": 2, "_skops_version": "0.16.0"}  # fmt: skip
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return path
