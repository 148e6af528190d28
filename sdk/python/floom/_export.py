"""The component's export, ``floom:app/handler``: each run goes to one of the app's actions.

componentize-py takes the export from a class named ``Handler`` in the module it builds.
``floom build`` writes that module (``floom_main.py``): it imports the app, whose
``@floom.action`` functions register themselves, and then this module (importing it
after the app matters: see ``_keep_app_sources``)::

    import sys

    sys.dont_write_bytecode = True  # keeps __pycache__ folders out of the sources
    import app
    from floom._export import Handler

Everything runs at build time except ``Handler.run``: componentize-py imports the modules
and snapshots the interpreter, so the sandbox needs no files.

How a run ends:

- the action returns: its value as JSON (any JSON value);
- it raises ``floom.AppError`` (or a subclass, such as ``floom.EmitError`` or
  ``floom.http.HttpError``): ``app_error`` with the error's code and message;
- it raises anything else: ``app_error`` with code ``internal`` and the message
  ``"TypeName: message"``, after the traceback is logged line by line at error level;
- it returns something JSON cannot represent: ``app_error`` with code ``invalid_output``;
- the host asks for an action the app does not have: ``app_error`` with code
  ``unknown_action``, naming the actions it has.

Limits the host enforces (memory, deadline, fuel, stack) still end the run with their
own codes (``memory_limit``, ``timeout``, ...): they are traps, not exceptions.
"""

from __future__ import annotations

import json
import linecache
import os
import sys
import traceback

from floom import _wit
from floom._app import DEFAULT_ACTION, Action, AppError, registry

__all__ = ["Handler"]

INTERNAL = "internal"
"""The app code of a run that ended with an unexpected exception."""

MAX_TRACEBACK_FRAMES = 40
"""Frames of a traceback that are logged, the innermost ones: deep recursion would
otherwise log thousands of lines (each a log event, against the execution's event cap)."""


class Handler(_wit.HandlerProtocol):
    """The ``floom:app/handler`` export componentize-py builds the component around."""

    def run(self, action: str, input: str) -> str:
        """Runs ``action`` on ``input`` (a JSON object) and returns the output as JSON.

        Raises ``Err(app-error)`` for every failure, as the WIT ``result`` requires.
        """
        try:
            return _run(action, input)
        except AppError as e:
            raise _wit.Err(_wit.WitAppError(str(e.code), str(e.message))) from None


def _run(action: str, input: str) -> str:
    name, function = _find(action)
    try:
        inputs = json.loads(input)
    except ValueError as e:
        raise AppError("invalid_input", f"the input is not JSON: {e}") from None
    try:
        output = function(inputs)
    except AppError:
        raise
    except BaseException as e:  # every escape (SystemExit included) ends the run alike
        raise _unexpected(e) from None
    try:
        return json.dumps(output, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise AppError(
            "invalid_output",
            f"the action {name!r} returned a value that is not JSON-serialisable "
            f"({type(e).__name__}: {e})",
        ) from None


def _find(action: str) -> tuple[str, Action]:
    """The action the host asked for; ``run`` finds an app's only action."""
    function = registry.get(action)
    if function is not None:
        return action, function
    if action == DEFAULT_ACTION and len(registry) == 1:
        return next(iter(registry.items()))
    if not registry:
        raise AppError(
            "unknown_action",
            "the app registers no actions: decorate a function with @floom.action",
        )
    raise AppError(
        "unknown_action",
        f"the app has no action {action!r} (it has: {', '.join(sorted(registry))}); "
        "each action the manifest declares needs a function decorated with "
        f'@floom.action("{action}")',
    )


def _unexpected(e: BaseException) -> AppError:
    """Logs the traceback of ``e`` and turns it into the run's error."""
    # The first frame is `_run` itself: the traceback starts in the app's code.
    frames = e.__traceback__.tb_next if e.__traceback__ else None
    try:
        lines = traceback.format_exception(type(e), e, frames, limit=-MAX_TRACEBACK_FRAMES)
    except Exception:  # the run's error must be reported all the same
        lines = [f"{type(e).__name__}: (the traceback could not be formatted)"]
    for line in "".join(lines).splitlines():
        _wit.host.log(_wit.host.Level.ERROR, line)
    try:
        detail = str(e)
    except Exception:  # an exception whose __str__ fails still ends the run cleanly
        detail = "(its message could not be made into text)"
    message = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
    if isinstance(e, ImportError):
        message += (
            " (only modules imported while the app is built exist when it runs: "
            "import them at the top of a module)"
        )
    return AppError(INTERNAL, message)


def _keep_app_sources() -> None:
    """Keeps the source of the app's own modules for the tracebacks logged at run time.

    The sandbox has no files, so without this a traceback names each line of the app but
    cannot show it. Only the folders of the modules that register actions are kept (not
    the standard library or installed packages), in ``linecache`` entries without a
    modification time, which ``linecache.checkcache`` leaves alone.
    """
    roots = set()
    for function in registry.values():
        module = sys.modules.get(getattr(function, "__module__", ""))
        file = getattr(module, "__file__", None)
        if file:
            roots.add(os.path.dirname(file) + os.sep)
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py") or path in linecache.cache:
            continue
        if not any(path.startswith(root) for root in roots):
            continue
        try:
            with open(path, encoding="utf-8") as source:
                lines = source.readlines()
        except (OSError, UnicodeDecodeError):
            continue
        linecache.cache[path] = (sum(map(len, lines)), None, lines, path)


_keep_app_sources()
