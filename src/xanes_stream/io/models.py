"""Model files: scikit-learn models in skops format (no pickle: a file from elsewhere loads
only if every type in it is trusted).

Who may choose a model file and the types it may hold: the operator (a profile, a settings
file, the command line), never a start document (see
:func:`xanes_stream.pipeline.settings.refused_from_documents`). The service reads model files
only inside its model roots (:func:`model_loader`); ``xanes-stream analyze --settings FILE``
reads the file its user names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from xanes_stream.errors import ModelError

__all__ = ["TRUSTED_TYPES", "load_model", "model_loader", "save_model"]

#: Types a model made by :func:`xanes_stream.spectra.learn.train` holds beyond skops' default
#: trusted set.
TRUSTED_TYPES = (
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
)


def save_model(model, path: str | Path) -> Path:
    """Write the model in skops format (no pickle).

    Parameters
    ----------
    model : estimator
        A fitted scikit-learn model.
    path : str or Path
        The file to write.

    Returns
    -------
    Path
    """
    import skops.io as sio

    path = Path(path)
    sio.dump(model, path)
    return path


def _inside(path: Path, roots: Sequence[str | Path]) -> Path:
    """``path`` with symbolic links resolved, if it lies inside one of ``roots``."""
    resolved = path.resolve()
    if any(resolved.is_relative_to(Path(root).resolve()) for root in roots):
        return resolved
    where = ", ".join(str(r) for r in roots) or "none set"
    raise ModelError(
        f"model file {path} is outside the model roots ({where}): the service reads model "
        "files only from the folders in the profile's model_roots or --model-root"
    )


def load_model(
    path: str | Path, trusted: Sequence[str] = (), *, roots: Sequence[str | Path] | None = None
):
    """Read a skops model.

    Besides skops' own trusted types, only :data:`TRUSTED_TYPES` and the type names in
    ``trusted`` may occur; anything else raises :class:`ModelError` naming them, before any
    of the file is turned into objects. The file is read once, so what is checked is what
    is loaded.

    Parameters
    ----------
    path : str or Path
        The skops file.
    trusted : sequence of str
        Further type names to trust: the operator's word that the file is theirs.
    roots : sequence of str or Path, optional
        If given, the file (after resolving symbolic links) must lie inside one of them.

    Returns
    -------
    object
        The model; it has ``predict``.

    Raises
    ------
    ModelError
        If the file is outside ``roots``, missing, not a skops file, holds a type not trusted,
        or holds no model.
    """
    import skops.io as sio

    path = Path(path)
    source = _inside(path, roots) if roots is not None else path
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"no model file {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror}") from None
    try:
        unknown = sio.get_untrusted_types(data=data)
    except Exception as exc:  # zip or schema errors: not a skops file
        raise ModelError(f"{path} is not a skops model file: {exc}") from None
    refused = sorted(set(unknown) - set(TRUSTED_TYPES) - set(trusted))
    if refused:
        raise ModelError(
            f"model {path} holds types that are not trusted: {', '.join(refused)}; pass them "
            "in trusted=... only if you know where the file comes from"
        )
    model = sio.loads(data, trusted=list(unknown))
    if not hasattr(model, "predict"):
        raise ModelError(f"{path} holds a {type(model).__name__}, not a model with predict()")
    return model


def model_loader(roots: Sequence[str | Path]) -> Callable[..., object]:
    """:func:`load_model` confined to ``roots``, as the service reads model files.

    Parameters
    ----------
    roots : sequence of str or Path
        The folders model files may be read from; empty: none may be.

    Returns
    -------
    callable
        ``load(path, trusted)``.
    """
    return partial(load_model, roots=tuple(roots))
