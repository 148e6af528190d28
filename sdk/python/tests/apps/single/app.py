"""An app with a single named action: it also answers to "run"."""

import floom


@floom.action("summarize")
def summarize(inputs: dict) -> dict:
    return {"summary": inputs.get("text", "")[:10]}
