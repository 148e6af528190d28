"""Write a Floom app in Python.

An app is a module whose functions are registered as actions with ``@floom.action``; each
takes the run's inputs (a dict) and returns its output (any JSON value)::

    import floom

    @floom.action                       # the action "run"; @floom.action("summarize") names one
    def run(inputs: dict) -> dict:
        floom.emit({"step": "parsed"})  # a streamed chunk (any JSON value)
        floom.log.info("working")       # a log line (trace/debug/info/warn/error)
        key = floom.secret("OPENAI_API_KEY")   # None unless declared and set
        if not inputs.get("text"):
            raise floom.AppError("empty_text", "text is required")
        return {"words": len(inputs["text"].split())}

``floom build`` turns the app into a WebAssembly component with componentize-py; the
host runs it like any SDK app, under the limits of its manifest. ``floom.http`` calls
the hosts the manifest allows. Raising ``floom.AppError`` fails the run with your own
code; any other exception fails it with code ``internal``, its traceback in the log.

This package only works inside such a build: it talks to the host through bindings that
componentize-py generates while it builds (see ``floom._wit``).
"""

from floom import http, log
from floom._app import AppError, EmitError, action, emit, secret

__all__ = ["AppError", "EmitError", "action", "emit", "http", "log", "secret"]
