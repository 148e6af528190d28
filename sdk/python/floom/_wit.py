"""The generated bindings of the ``floom:app`` world ``python-app``, in one place.

componentize-py generates the ``wit_world`` package (and ``componentize_py_types``) while
it builds the component, from ``wit/floom-app.wit`` and the WASI packages in
``wit/deps/``; nothing generated is kept in the repository. Every other module of the SDK
reaches the host through the names imported here, so the bindings never show in the
public API and a change in their shape is fixed in this file alone.

This module only imports inside a componentize-py build for ``-w python-app``.
"""

try:
    from componentize_py_types import Err, Ok
    from wit_world.exports import Handler as HandlerProtocol
    from wit_world.exports.handler import AppError as WitAppError
    from wit_world.imports import host, outgoing_handler, poll, streams, types
except ImportError as e:
    raise ImportError(
        "the floom package only works inside a component built by `floom build` "
        f"(componentize-py for the world `python-app` of wit/floom-app.wit): {e}"
    ) from e

__all__ = [
    "Err",
    "HandlerProtocol",
    "Ok",
    "WitAppError",
    "host",
    "outgoing_handler",
    "poll",
    "streams",
    "types",
]
