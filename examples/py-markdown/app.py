"""Renders Markdown to HTML with Python-Markdown (``markdown`` on PyPI, pure Python).

A package from ``requirements.txt`` is installed and bundled by ``floom build``. The
extensions are passed as objects, not by name: naming one makes Python-Markdown import it
while the app runs, and only modules imported while the app is built are in the component.
"""

import floom
import markdown
from markdown.extensions.fenced_code import FencedCodeExtension
from markdown.extensions.tables import TableExtension
from markdown.extensions.toc import TocExtension

MAX_MARKDOWN = 256 * 1024
"""The longest document accepted, in characters."""

RENDERER = markdown.Markdown(extensions=[TableExtension(), FencedCodeExtension(), TocExtension()])
"""Made, and warmed up on a document using every extension, at import: that is once, when
the app is built. Every run starts from that snapshot, with the extensions set up and
their patterns compiled; making the renderer inside the action costs ~20 ms per run."""
RENDERER.convert("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode\n```\n\n*text*")


@floom.action
def run(inputs: dict) -> dict:
    """Renders ``inputs["markdown"]``; returns the HTML and the document's headings."""
    text = inputs.get("markdown")
    if not isinstance(text, str):
        raise floom.AppError("invalid_input", "markdown must be a string")
    if len(text) > MAX_MARKDOWN:
        raise floom.AppError(
            "invalid_input", f"markdown is {len(text)} characters; the limit is {MAX_MARKDOWN}"
        )
    html = RENDERER.reset().convert(text)
    headings = flatten(RENDERER.toc_tokens)
    floom.log.info(f"rendered {len(text)} characters, {len(headings)} headings")
    return {"html": html, "headings": headings}


def flatten(tokens: list[dict]) -> list[dict]:
    """The table of contents' nested tokens as a flat list of headings, in document order."""
    headings = []
    for token in tokens:
        headings.append({"level": token["level"], "id": token["id"], "title": token["name"]})
        headings.extend(flatten(token["children"]))
    return headings
