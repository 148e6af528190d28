"""Finds the action items in a meeting transcript and streams each one as it is found.

The Python twin of ``examples/meeting-action-items`` (Rust): the same rules, the same
output. The transcript is a sequence of ``Speaker: words`` turns (on separate lines or run
together). A sentence is an action item when someone commits ("I will ..."), asks someone
("Bob, can you ..."), assigns a third person ("Carol needs to ...") or proposes something
for everyone ("Let us ...", "We should ..."). A due date such as "by Friday", "tomorrow"
or "end of week" is taken out of the task.
"""

from __future__ import annotations

import re
from typing import TypedDict

import floom

MAX_TRANSCRIPT = 512 * 1024
"""The longest transcript accepted, in bytes (UTF-8)."""


class Item(TypedDict):
    """One action item."""

    owner: str
    """Who does it: a speaker's name, or ``team`` for "let us" and "we should"."""
    task: str
    """What to do."""
    due: str | None
    """When it is due, as said in the meeting."""


@floom.action
def run(inputs: dict) -> dict:
    """Extracts the items of ``inputs["transcript"]``, emitting each as it is found."""
    transcript = inputs.get("transcript")
    if not isinstance(transcript, str):
        raise floom.AppError("invalid_input", "transcript must be a string")
    if not transcript.strip():
        raise floom.AppError("invalid_input", "transcript is empty")
    size = len(transcript.encode())
    if size > MAX_TRANSCRIPT:
        raise floom.AppError(
            "invalid_input", f"transcript is {size} bytes; the limit is {MAX_TRANSCRIPT}"
        )
    items = []
    all_turns = turns(transcript)
    for speaker, text in all_turns:
        for sentence in sentences(text):
            item = action_item(speaker, sentence)
            if item is not None:
                # Stream each item the moment it is found.
                floom.emit(item)
                items.append(item)
    floom.log.info(f"found {len(items)} action items in {len(all_turns)} turns")
    return {"items": items}


def turns(transcript: str) -> list[tuple[str, str]]:
    """Splits a transcript into ``(speaker, text)`` turns; text before the first speaker
    belongs to ``unknown``."""
    found: list[tuple[str, str]] = []
    for line in transcript.split("\n"):
        rest = line.strip()
        while rest:
            prefix = speaker_at(rest, 0)
            speaker, text = (prefix[0], rest[prefix[1] :]) if prefix else (None, rest)
            # The turn runs until the next "Name:" that starts a sentence.
            end = next_speaker(text)
            said, rest = text[:end].strip(), text[end:].lstrip()
            if speaker is not None:
                found.append((speaker, said))
            elif found:
                found[-1] = (found[-1][0], f"{found[-1][1]} {said}")
            else:
                found.append(("unknown", said))
    return found


def speaker_at(text: str, start: int) -> tuple[str, int] | None:
    """``Name:`` or ``First Last:`` at ``start`` in ``text``: the name, and where the text
    after the colon starts."""
    colon = text.find(":", start)
    if colon < 0:
        return None
    name = text[start:colon]
    words = name.split(" ")
    if len(words) <= 2 and all(is_name_word(word) for word in words):
        return name, colon + 1
    return None


def is_name_word(word: str) -> bool:
    """A capitalised word of letters, dashes and apostrophes."""
    return word[:1].isupper() and all(c.isalpha() or c in "-'" for c in word)


def next_speaker(text: str) -> int:
    """Where the next speaker's turn starts in ``text`` (a ``Name:`` right after the end of
    a sentence), or its length."""
    for i in range(1, len(text)):
        if text[i - 1] != " ":
            continue
        end = i - 1
        while end > 0 and text[end - 1].isspace():
            end -= 1
        if end > 0 and text[end - 1] in ".!?" and speaker_at(text, i) is not None:
            return i
    return len(text)


def sentences(text: str) -> list[str]:
    """Splits a turn into sentences."""
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


SENTENCE_END = re.compile(r"[.!?;\n]")
"""Compiled at import, that is once, when the app is built: every run starts from that
snapshot, so a pattern compiled inside an action would be compiled again on every run."""


FILLERS = (
    "ok", "okay", "so", "and", "also", "then", "great", "sure", "yes", "alright", "right",
    "well",
)  # fmt: skip
REQUESTS = ("can you", "could you", "would you", "will you", "please")
COMMITMENTS = (
    "i will", "i'll", "i can", "i'm going to", "i am going to", "i need to", "i have to",
    "i should", "let me",
)  # fmt: skip
TEAM = (
    "let us", "let's", "we will", "we'll", "we need to", "we should", "we must",
    "we have to",
)  # fmt: skip
ASSIGNMENTS = ("will", "needs to", "should", "has to", "is going to", "must")
NOTES = ("action item:", "todo:", "to do:")


def action_item(speaker: str, sentence: str) -> Item | None:
    """The action item in ``sentence``, said by ``speaker``, if there is one."""
    owner, task = assignment(speaker, strip_fillers(sentence))
    if task is None:
        return None
    task, due = split_due(task)
    task = tidy(task)
    return Item(owner=owner, task=task, due=due) if task else None


def assignment(speaker: str, sentence: str) -> tuple[str, str | None]:
    """Who ``sentence`` gives a task to, and the task (``None`` when it gives none)."""
    for prefixes, owner in ((NOTES, speaker), (COMMITMENTS, speaker), (TEAM, "team")):
        task = strip_any(sentence, prefixes)
        if task is not None:
            return owner, task
    return addressed(sentence)


def addressed(sentence: str) -> tuple[str, str | None]:
    """The owner and task of a request to anyone ("please ..."), to someone ("Bob, can
    you ...") or about someone ("Carol needs to ..."); no task when it is none of those."""
    task = strip_any(sentence, REQUESTS)
    if task is not None:
        return "unassigned", task
    name, comma, rest = sentence.partition(", ")
    if not comma:
        name, space, rest = sentence.partition(" ")
        if not space:
            return "", None
        task = strip_any(rest, ASSIGNMENTS)
    else:
        task = strip_any(rest, REQUESTS)
    if task is None or single_name(name) is None:
        return "", None
    return name, task


def strip_fillers(sentence: str) -> str:
    """``sentence`` without leading fillers ("Okay, so ...")."""
    while True:
        lower = sentence.lower()
        filler = next(
            (
                f
                for f in FILLERS
                if lower.startswith(f)
                and lower[len(f) : len(f) + 1] in (",", " ")
                and lower[len(f) :].lstrip(", ")
            ),
            None,
        )
        if filler is None:
            return sentence
        sentence = sentence[len(filler) :].lstrip(", ")


def strip_any(text: str, prefixes: tuple[str, ...]) -> str | None:
    """``text`` without the first of ``prefixes`` it starts with (case-insensitively, whole
    words only), stripped; ``None`` when it starts with none."""
    lower = text.lower()
    for prefix in prefixes:
        if not lower.startswith(prefix):
            continue
        rest = lower[len(prefix) :]
        if not rest or rest.startswith(" ") or prefix.endswith(":"):
            return text[len(prefix) :].strip()
    return None


PRONOUNS = ("I", "We", "You", "They", "He", "She", "It", "This", "That")


def single_name(word: str) -> str | None:
    """``word`` if it is a capitalised single word that is not a pronoun."""
    capitalised = word[:1].isupper() and all(c.isalpha() for c in word)
    return word if capitalised and word not in PRONOUNS else None


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
PREPOSITIONS = ("by", "before", "on", "until", "due", "for")


def split_due(task: str) -> tuple[str, str | None]:
    """Takes a due date out of ``task``: the task without it, and the date as said."""
    words = task.split()
    for start in range(len(words)):
        length = date_phrase([bare(w) for w in words[start:]])
        if length is None:
            continue
        cut_from = start - 1 if start > 0 and bare(words[start - 1]) in PREPOSITIONS else start
        due = " ".join(
            capitalise(w) if w.lower() in WEEKDAYS else w
            for w in (trim_non_alphanumeric(w) for w in words[start : start + length])
        )
        return " ".join(words[:cut_from] + words[start + length :]), due
    return task, None


def date_phrase(words: list[str]) -> int | None:
    """How many words at the start of ``words`` (lowercase, bare) form a date."""

    def at(i: int) -> str:
        return words[i] if i < len(words) else ""

    first = at(0)
    if first in WEEKDAYS or first in ("tomorrow", "today", "tonight", "eod", "eow"):
        return 1
    if first in ("next", "this") and (at(1) in ("week", "month") or at(1) in WEEKDAYS):
        return 2
    if first == "end" and at(1) == "of":
        if at(2) in ("day", "week", "month"):
            return 3
        if at(2) == "the" and at(3) in ("day", "week", "month"):
            return 4
        return None
    if first in MONTHS and is_day_number(at(1)):
        return 2
    if is_day_number(first) and at(1) in MONTHS:
        return 2
    return None


def is_day_number(word: str) -> bool:
    """One or two digits, maybe followed by letters ("3rd")."""
    end = len(word)
    while end > 0 and word[end - 1].isalpha():
        end -= 1
    digits = word[:end]
    return 0 < len(digits) <= 2 and all("0" <= c <= "9" for c in digits)


def bare(word: str) -> str:
    """``word`` without surrounding punctuation, lowercased."""
    return trim_non_alphanumeric(word).lower()


def trim_non_alphanumeric(word: str) -> str:
    """``word`` without the characters at either end that are not letters or digits."""
    start, end = 0, len(word)
    while start < end and not word[start].isalnum():
        start += 1
    while end > start and not word[end - 1].isalnum():
        end -= 1
    return word[start:end]


def capitalise(word: str) -> str:
    """``word`` with its first letter uppercased."""
    return word[:1].upper() + word[1:]


def tidy(task: str) -> str:
    """Trims punctuation and a trailing "please", and capitalises the task."""
    task = task.strip().rstrip(",.!? ")
    return capitalise(task.removesuffix(" please").strip())
