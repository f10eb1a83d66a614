"""Strings into LaTeX, Markdown and HTML: each escaped for the format it lands in.

Names come from users' datasets, manifests and configs (a dataset folder, a generator, a
``--normalize`` spec), so any of them may hold a newline, ``%``, ``\\``, ``{``, ``|`` or a backtick.
A line break is a space in every format: it could otherwise end a LaTeX ``%`` comment (making the
rest live LaTeX, ``\\immediate\\write18{...}`` included), a Markdown table row or paragraph.
"""

from __future__ import annotations

import html
import re

_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")  # what str.splitlines splits on

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones that can start markup,
# a table cell (|), raw HTML (<) or an entity (&). An underscore between two letters or digits cannot open or
# close emphasis (CommonMark's flanking rules), so ``roc_auc`` stays as it is.
_MARKDOWN_SPECIALS = re.compile(r"[\\`*\[\]<>|#!~&$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def one_line(text: str) -> str:
    return _LINE_BREAKS.sub(" ", str(text))


def latex_text(text: str) -> str:
    """Text typeset by LaTeX (a table cell): every special character escaped."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in one_line(text))


def latex_comment(text: str) -> str:
    """Text after a ``%``: one line, so nothing after it can leave the comment."""
    return one_line(text)


def markdown_text(text: str) -> str:
    """Markdown text or a pipe-table cell: one line, markup characters backslash-escaped."""
    return _MARKDOWN_SPECIALS.sub(lambda match: "\\" + match.group(), one_line(text))


def markdown_code(text: str) -> str:
    """A Markdown code span that holds ``text`` whatever backticks it has (a longer fence, CommonMark)."""
    text = one_line(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def html_text(text: str) -> str:
    return html.escape(str(text))


def html_code(text: str) -> str:
    return f"<code>{html.escape(str(text))}</code>"
