"""The project's error types: each says what was wrong with the input and why."""


class XanesStreamError(ValueError):
    """Base of every error xanes-stream raises for bad input; its message is for a person."""


class AnalysisError(XanesStreamError):
    """Input that cannot be analysed."""


class ReferenceError(XanesStreamError):
    """A reference spectrum is unreadable or cannot be used for this scan."""


class NormalizationError(XanesStreamError):
    """The scan's energies do not allow the requested edge normalization."""


class FitError(XanesStreamError):
    """The fit cannot be done as asked."""


class RegistrationError(XanesStreamError):
    """Frames that cannot be registered as asked."""


class SettingsError(XanesStreamError):
    """Settings that do not validate; the message names the field."""


class ModelError(XanesStreamError):
    """A model that cannot be trained, loaded or applied as asked."""


class StackFileError(XanesStreamError):
    """A stack or maps file that is missing, unreadable or of the wrong layout."""


class StackNotKept(XanesStreamError):
    """A scan's frames are no longer in memory (only the last few scans' are kept)."""


class ServiceError(XanesStreamError):
    """A service that does not start, or is asked to start with invalid settings."""
