"""A second module of the probe app, so tracebacks cross modules."""


def fail_deeply(depth: int) -> None:
    if depth == 0:
        raise ValueError("bad value")
    fail_deeply(depth - 1)
