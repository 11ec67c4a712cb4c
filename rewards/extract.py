"""Code extraction from chat completions: Markdown fenced blocks only.

Rules (in order):
1. A block opens with a line of 3+ backticks (up to 3 spaces of indent) and an optional info string
   whose first word is the language tag; it closes at a line of at least as many backticks and nothing else.
2. Among complete blocks, those tagged with the wanted language win; if there are none, untagged
   blocks are used. Blocks tagged with another language are never taken.
3. The last such block is the answer (models write drafts first, the final program last).
4. Text without a complete block yields ``None`` (reason ``no_code``): unfenced prose is never run.
   An unclosed final block is taken only with ``allow_unclosed=True``; a completion without any fence
   is taken whole only with ``allow_unfenced=True`` (for policies trained to answer with bare code,
   such as the tiny world's).

A line-by-line scan keeps this linear in the completion length (a 1 MB completion costs milliseconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CodeBlock", "find_blocks", "extract_code", "LANGUAGE_TAGS"]

# tags a model may write for each language we run
LANGUAGE_TAGS: dict[str, frozenset[str]] = {
    "python": frozenset({"python", "python3", "py", "py3"}),
    "cpp": frozenset({"cpp", "c++", "cxx", "cc", "hpp"}),
}

# Two simple patterns plus string checks: no nested quantifiers, so no catastrophic backtracking.
_FENCE = re.compile(r" {0,3}(`{3,})(.*)")


@dataclass(frozen=True)
class CodeBlock:
    tag: str  # lower-cased first word of the info string, "" when untagged
    code: str
    closed: bool


def find_blocks(text: str) -> list[CodeBlock]:
    """All fenced blocks in ``text``, in order (the last one may be unclosed)."""
    blocks: list[CodeBlock] = []
    fence = ""
    tag = ""
    body: list[str] = []
    for line in text.split("\n"):
        stripped = line.rstrip("\r")
        m = _FENCE.fullmatch(stripped)
        if not fence:
            if m and "`" not in m.group(2):  # CommonMark: a backtick info string is not a fence
                words = m.group(2).split()
                fence, tag, body = m.group(1), (words[0].lower() if words else ""), []
            continue
        if m and not m.group(2).strip() and len(m.group(1)) >= len(fence):
            blocks.append(CodeBlock(tag, "\n".join(body), True))
            fence = ""
        else:
            body.append(stripped)
    if fence:
        blocks.append(CodeBlock(tag, "\n".join(body), False))
    return blocks


def extract_code(
    text: str, language: str | None = "python", allow_unclosed: bool = False, allow_unfenced: bool = False
) -> str | None:
    """The program a completion answers with, or ``None`` when it has no usable fenced block."""
    found = find_blocks(text)
    if not found and allow_unfenced and text.strip():
        return text.strip("\n") + "\n"
    blocks = [b for b in found if b.closed or allow_unclosed]
    if language is not None:
        tags = LANGUAGE_TAGS.get(language, frozenset({language}))
        tagged = [b for b in blocks if b.tag in tags]
        blocks = tagged or [b for b in blocks if b.tag == ""]
    blocks = [b for b in blocks if b.code.strip()]
    return blocks[-1].code + "\n" if blocks else None
