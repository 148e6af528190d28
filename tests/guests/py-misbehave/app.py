"""Python actions that each behave, or misbehave, in one way; the tests check each ends
in the right status and error code and that the host stays unharmed."""

import hashlib
import os

import floom


@floom.action
def run(inputs: dict) -> dict:
    """Echoes the inputs."""
    return {"ok": True, "inputs": inputs}


@floom.action("stream")
def stream(inputs: dict) -> dict:
    """Emits `count` chunks and a log line per level."""
    count = int(inputs.get("count", 3))
    for i in range(count):
        floom.emit({"i": i})
    floom.log.debug("a debug line")
    floom.log.info("an info line")
    floom.log.warn("a warning")
    floom.log.error("an error line")
    print("to stdout")
    return {"emitted": count}


@floom.action("app-error")
def app_error(inputs: dict) -> None:
    """Fails on purpose, with its own code."""
    raise floom.AppError("bad_thing", "it went wrong on purpose")


@floom.action("raise")
def uncaught(inputs: dict) -> None:
    """Lets an exception escape."""
    return helper_that_fails(inputs.get("key", "missing"))


def helper_that_fails(key: str) -> None:
    """Raises KeyError, two frames down."""
    return {}[key]


@floom.action("secret")
def secret(inputs: dict) -> dict:
    """Reads the secrets named in `names`."""
    return {name: floom.secret(name) for name in inputs.get("names", [])}


@floom.action("not-json")
def not_json(inputs: dict) -> object:
    """Returns something JSON cannot hold."""
    return {1, 2, 3}


@floom.action("spin")
def spin(inputs: dict) -> None:
    """Never ends: the deadline must stop it."""
    while True:
        pass


@floom.action("alloc")
def alloc(inputs: dict) -> int:
    """Grows without bound: the memory limit must stop it."""
    hoard = []
    while True:
        hoard.append(bytearray(1 << 20))


@floom.action("recurse")
def recurse(inputs: dict) -> int:
    """Recurses as deep as `depth` (or forever)."""

    def down(n: int) -> int:
        return n if n == 0 else 1 + down(n - 1)

    return down(int(inputs.get("depth", 10**9)))


@floom.action("fetch")
def fetch(inputs: dict) -> dict:
    """GETs `url` through floom.http and returns the status and body."""
    response = floom.http.get(inputs["url"], headers=inputs.get("headers"))
    return {"status": response.status, "body": response.text()}


@floom.action("files")
def files(inputs: dict) -> dict:
    """Hashes the file at `file` (under /in) and writes artifacts under /out; then,
    with `fill`, tries to write that many bytes more (past the artifact budget)."""
    with open(inputs["file"], "rb") as f:
        data = f.read()
    with open("/out/echo.txt", "w") as out:
        out.write("py saw %d bytes\n" % len(data))
    os.makedirs("/out/py", exist_ok=True)
    with open("/out/py/copy.bin", "wb") as out:
        out.write(data)
    written, error = 0, None
    try:
        with open("/out/fill.bin", "wb") as out:
            for _ in range(int(inputs.get("fill", 0))):
                out.write(b"x" * (1 << 20))
                out.flush()
                written += 1 << 20
    except OSError as e:
        error = "%s: %s" % (type(e).__name__, e.strerror)
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "written": written,
        "error": error,
    }
