"""What every per-run callback of :class:`~.router.SafeRouter` shares: the run's
:class:`~.job.ScanJob` made from its start document, the classic ``resource``/``datum``
documents (:mod:`.resources`), the guard that turns whatever a document raises into the run's
failure (never into the caller), eviction, and the hand-on at the stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from event_model import DocumentRouter

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.job import Progress, ScanJob
from xanes_stream.documents.limits import Limits
from xanes_stream.documents.resources import ClassicFrames
from xanes_stream.documents.start import StartReading, read_start, short
from xanes_stream.profiles import Profile

__all__ = ["RunCallback"]

log = logging.getLogger(__name__)


class RunCallback(DocumentRouter):
    """One run's documents, collected into ``self.job`` and handed to ``submit`` once.

    Subclasses handle the documents (``event``, ``stop``, ...), call :meth:`_fail` for what
    goes wrong and :meth:`_submit` at the stop, and free what they hold in :meth:`_release`.

    Parameters
    ----------
    start : dict
        The run's start document.
    profile : Profile
        The beamline profile.
    roots : list
        The folders the run's files may be read from.
    submit : callable
        Called once with the run's :class:`ScanJob`.
    progress : callable, optional
        ``progress(job, seen, expected)`` as frames arrive.
    limits : Limits
        Bounds on what one run may hold.
    what : str
        The run's kind in the log (``scan``, ``tomographic scan``).
    """

    def __init__(
        self,
        start: dict,
        profile: Profile,
        roots: list,
        submit: Callable[[ScanJob], None],
        progress: Progress | None = None,
        limits: Limits = Limits(),  # noqa: B008 (frozen)
        what: str = "scan",
    ) -> None:
        super().__init__()
        self.classic = ClassicFrames(roots, max_frames=limits.max_frames)
        self.submit = submit
        self.progress = progress or (lambda job, seen, expected: None)
        self.limits = limits
        self.closed = False  # submitted (stopped or evicted): documents after are ignored
        self.md = start.get("xanes") if isinstance(start.get("xanes"), dict) else {}
        self.reading: StartReading = read_start(start, self.md, profile, limits)
        self.job = ScanJob(
            uid=start["uid"],
            start=start,
            stop=None,
            profile=profile,
            references=self.reading.references,
            received_at=time.time(),
            failure=self.reading.failure,
        )
        self.job.settings = self.reading.settings  # analysis parameters only (run_overrides)
        self.expected = self.reading.expected
        self.label = f"{what} {short(start.get('scan_id'))} ({start['uid'][:8]})"

    def __call__(self, name, doc, validate=False):
        if self.closed or (self.job.failure is not None and name != "stop"):
            return None
        try:
            return super().__call__(name, doc, validate)
        except MemoryError:
            self._fail(f"out of memory on a {name} document: the scan is too large to hold")
        except (DocumentError, KeyError, TypeError, ValueError) as exc:
            self._fail(f"unusable {name} document: {exc}")
        except Exception as exc:  # whatever it was, the run gets a record of it
            self._fail(f"cannot use a {name} document: {type(exc).__name__}: {exc}")
        if name == "stop" and not self.closed:  # a stop that failed still hands the run on
            self._submit()
        return None

    def resource(self, doc):
        self.classic.add_resource(doc)

    def datum(self, doc):
        self.classic.add_datum(doc)

    def datum_page(self, doc):
        self.classic.add_datum_page(doc)

    def _fail(self, reason: str, log_level: int = logging.ERROR) -> None:
        """Fail the run with ``reason`` (the first reason stays), and free what it holds."""
        if self.job.failure is None:
            self.job.failure = reason
            log.log(log_level, "%s: %s", self.label, reason)
        self._release()

    def _release(self) -> None:
        """Give back the memory of what the run holds (its frames)."""

    def evict(self, reason: str) -> None:
        """Give up on this run before its stop (too many runs in flight): fail it with
        ``reason``, drop its frames and hand it on; documents after this are ignored."""
        if self.closed:
            return
        self._fail(reason, log_level=logging.WARNING)
        self.job.stopped_at = time.time()
        self._submit()

    def _submit(self) -> None:
        self.closed = True
        self.submit(self.job)
