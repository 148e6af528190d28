"""Actions, app errors, chunks and secrets: what ``floom`` re-exports at its top level."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar, overload

from floom import _wit

Action = Callable[[dict[str, Any]], Any]
"""An action: takes the run's inputs, returns its output (any JSON value)."""

F = TypeVar("F", bound=Action)

DEFAULT_ACTION = "run"
"""The action an app without ``[actions]`` tables in its manifest is run with."""

# The manifest's rule for action names (`runtime/src/manifest.rs`, `is_action_name`).
_ACTION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

registry: dict[str, Action] = {}
"""The app's actions by name, filled in by ``@action`` while the app's modules are imported
(at build time, so the registry is part of the built component)."""


class AppError(Exception):
    """An error an app raises on purpose: the run fails with ``app_error`` and this code.

    ``code`` is a short machine-readable name of your choosing, such as
    ``invalid_transcript``; ``message`` is for people. Both reach the caller unchanged (the
    host cuts overly long ones). Any other exception that escapes an action fails the run
    too, with code ``internal`` and its traceback in the log.

    Example::

        if not inputs.get("text"):
            raise floom.AppError("empty_text", "text is required")
    """

    code: str
    """The machine-readable code."""
    message: str
    """The human-readable explanation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class EmitError(AppError):
    """A chunk that could not be streamed: code ``invalid_chunk`` when the value is not
    JSON-serialisable, ``chunk_refused`` when the host refused it (larger than the chunk
    cap, 64 KiB by default, or the execution's event cap was reached).

    The run goes on if you catch it; uncaught, the run fails with that code.
    """


@overload
def action(name: F, /) -> F: ...
@overload
def action(name: str | None = None, /) -> Callable[[F], F]: ...
def action(name: str | F | None = None, /) -> F | Callable[[F], F]:
    """Registers a function as one of the app's actions.

    Bare, ``@floom.action`` registers the action ``run``; ``@floom.action("summarize")``
    registers ``summarize``, which the manifest declares as ``[actions.summarize]``. The
    function takes the run's inputs (a dict parsed from the JSON object the caller sent)
    and returns the output: any JSON-serialisable value. It is returned unchanged, so it
    can still be called directly, in tests for instance.

    An app with a single action also answers to ``run``, the action the host asks for when
    the manifest declares none. Names follow the manifest's rule
    (``^[a-z0-9][a-z0-9_-]{0,62}$``) and may be registered once; a broken rule fails the
    build with a ``ValueError``.

    Example::

        @floom.action
        def run(inputs: dict) -> dict:
            return {"words": len(inputs["text"].split())}
    """
    if callable(name):
        return _register(DEFAULT_ACTION, name)
    action_name = DEFAULT_ACTION if name is None else name
    if not isinstance(action_name, str) or not _ACTION_NAME.fullmatch(action_name):
        raise ValueError(
            f"@floom.action({action_name!r}): an action name must match "
            "^[a-z0-9][a-z0-9_-]{0,62}$ (lowercase letters, digits, '_' and '-')"
        )

    def decorate(function: F) -> F:
        return _register(action_name, function)

    return decorate


def _register(name: str, function: F) -> F:
    if not callable(function):
        raise TypeError(f"@floom.action({name!r}) must decorate a function")
    previous = registry.get(name)
    if previous is not None and previous is not function:
        raise ValueError(
            f"the action {name!r} is registered twice: by {_describe(previous)} "
            f"and by {_describe(function)}"
        )
    registry[name] = function
    return function


def _describe(function: Action) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


def emit(value: Any) -> None:
    """Streams one chunk to the caller while the app runs (an SSE ``chunk`` event).

    ``value`` is any JSON-serialisable value (NaN and infinities are not JSON). Raises
    ``EmitError`` with code ``invalid_chunk`` when it cannot be serialised, and with code
    ``chunk_refused`` when the host refuses it: larger than the host's chunk cap (64 KiB by
    default) or past the execution's event cap.

    Example::

        floom.emit({"step": "parsed"})
    """
    try:
        chunk = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise EmitError("invalid_chunk", f"the chunk is not JSON-serialisable: {e}") from None
    try:
        _wit.host.emit(chunk)
    except _wit.Err as refused:
        raise EmitError("chunk_refused", str(refused.value)) from None


def secret(name: str) -> str | None:
    """The value of a secret the app's manifest declares (``secrets = ["NAME"]``).

    ``None`` when the manifest does not declare ``name`` or no value was set for it.

    Example::

        key = floom.secret("OPENAI_API_KEY")
    """
    return _wit.host.secret(name)
