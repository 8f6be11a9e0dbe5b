"""Model files: scikit-learn models in skops format (no pickle: a file from elsewhere loads
only if every type in it is trusted)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xanes_stream.errors import ModelError

#: Types a model made by :func:`xanes_stream.spectra.learn.train` holds beyond skops' default
#: trusted set.
TRUSTED_TYPES = (
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
)


def save_model(model, path: str | Path) -> Path:
    """Write the model in skops format (no pickle)."""
    import skops.io as sio

    path = Path(path)
    sio.dump(model, path)
    return path


def load_model(path: str | Path, trusted: Sequence[str] = ()):
    """Read a skops model. Besides skops' own trusted types, only :data:`TRUSTED_TYPES` and
    the type names in ``trusted`` may occur; anything else raises :class:`ModelError` naming
    them, before any of the file is turned into objects."""
    import skops.io as sio

    path = Path(path)
    try:
        unknown = sio.get_untrusted_types(file=path)
    except FileNotFoundError:
        raise ModelError(f"no model file {path}") from None
    except Exception as exc:  # zip or schema errors: not a skops file
        raise ModelError(f"{path} is not a skops model file: {exc}") from None
    allowed = set(TRUSTED_TYPES) | set(trusted)
    refused = sorted(set(unknown) - allowed)
    if refused:
        raise ModelError(
            f"model {path} holds types that are not trusted: {', '.join(refused)}; pass them "
            "in trusted=... only if you know where the file comes from"
        )
    model = sio.load(path, trusted=list(unknown))
    if not hasattr(model, "predict"):
        raise ModelError(f"{path} holds a {type(model).__name__}, not a model with predict()")
    return model
