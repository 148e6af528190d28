"""Log lines: ``floom.log.info("working")`` writes one line to the execution's log.

Each call is one line at its level, shown live by ``floom exec`` and in the run's SSE
stream, and kept with the execution. A line is cut at the host's chunk cap (64 KiB by
default). ``print()`` works too: in an SDK app each stdout line becomes a log line of the
``stdout`` stream, without a level.
"""

from __future__ import annotations

from floom import _wit

__all__ = ["debug", "error", "info", "trace", "warn"]


def trace(message: object) -> None:
    """Logs ``message`` (turned into text with ``str``) at trace level: very fine detail."""
    _wit.host.log(_wit.host.Level.TRACE, str(message))


def debug(message: object) -> None:
    """Logs ``message`` (turned into text with ``str``) at debug level."""
    _wit.host.log(_wit.host.Level.DEBUG, str(message))


def info(message: object) -> None:
    """Logs ``message`` (turned into text with ``str``) at info level: normal progress."""
    _wit.host.log(_wit.host.Level.INFO, str(message))


def warn(message: object) -> None:
    """Logs ``message`` (turned into text with ``str``) at warn level: something unexpected
    the app survived."""
    _wit.host.log(_wit.host.Level.WARN, str(message))


def error(message: object) -> None:
    """Logs ``message`` (turned into text with ``str``) at error level: a failure."""
    _wit.host.log(_wit.host.Level.ERROR, str(message))
