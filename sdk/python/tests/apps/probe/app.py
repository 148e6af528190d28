"""One action per behaviour the SDK tests check (see ../../run_tests.py)."""

import sys

from helpers import fail_deeply

import floom


@floom.action("stream")
def stream(inputs: dict) -> dict:
    for i in range(inputs.get("count", 3)):
        floom.emit({"i": i})
    floom.log.trace("a trace line")
    floom.log.debug("a debug line")
    floom.log.info("an info line")
    floom.log.warn("a warn line")
    floom.log.error("an error line")
    print("a line on stdout")
    return {"count": inputs.get("count", 3), "inputs": inputs}


@floom.action("fail")
def fail(inputs: dict) -> None:
    raise floom.AppError(inputs["code"], inputs["message"])


@floom.action("crash")
def crash(inputs: dict) -> None:
    fail_deeply(inputs.get("depth", 3))


@floom.action("secret")
def secret(inputs: dict) -> dict:
    return {"value": floom.secret(inputs["name"])}


@floom.action("non_json")
def non_json(inputs: dict) -> set[int]:
    return {1, 2}


@floom.action("big_chunk")
def big_chunk(inputs: dict) -> dict:
    try:
        floom.emit("x" * inputs.get("size", 100_000))
    except floom.EmitError as e:
        return {"code": e.code, "message": e.message}
    return {"code": None}


@floom.action("fetch")
def fetch(inputs: dict) -> dict:
    for _ in range(inputs.get("discard", 0)):
        # Responses dropped unread: their resources must go back in order.
        floom.http.get(inputs["url"])
    response = floom.http.request(
        inputs.get("method", "GET"),
        inputs["url"],
        json=inputs.get("json"),
        headers=inputs.get("headers"),
    )
    if inputs.get("raise_for_status"):
        response.raise_for_status()
    if inputs.get("stream"):
        pieces = [len(piece) for piece in response.iter_bytes()]
        return {"status": response.status, "pieces": len(pieces), "bytes": sum(pieces)}
    return {
        "status": response.status,
        "url": response.url,
        "content_type": response.headers.get("Content-Type"),
        "text": response.text(),
    }


@floom.action("spin")
def spin(inputs: dict) -> None:
    while True:
        pass


@floom.action("hoard")
def hoard(inputs: dict) -> int:
    kept = []
    while True:
        kept.append(bytearray(1 << 20))


@floom.action("recurse")
def recurse(inputs: dict) -> int:
    if inputs.get("limit"):
        sys.setrecursionlimit(inputs["limit"])

    def down(n: int) -> int:
        return down(n + 1) + 1

    return down(0)


@floom.action("deep_output")
def deep_output(inputs: dict) -> list:
    nested: list = []
    for _ in range(200_000):
        nested = [nested]
    return nested


@floom.action("lazy_import")
def lazy_import(inputs: dict) -> str:
    import colorsys  # not imported at build time: not in the component

    return str(colorsys.rgb_to_hsv(1, 0, 0))


@floom.action("exit")
def exit_(inputs: dict) -> None:
    sys.exit(3)
