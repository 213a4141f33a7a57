"""core.text: a bidi override cannot disguise a file name or message on a page or in a PDF."""

from __future__ import annotations

from django.template import Context, Template

from core.text import visible_controls
from reports.builder import _latin1


def test_controls_are_shown_not_obeyed() -> None:
    disguised = "invoice\u202egpj.exe"
    assert visible_controls(disguised) == "invoice⟦U+202E⟧gpj.exe"
    assert visible_controls("tab\tand\nnewline stay") == "tab\tand\nnewline stay"
    assert visible_controls("\u2066x\u2069\x00\x9b") == "⟦U+2066⟧x⟦U+2069⟧⟦U+0000⟧⟦U+009B⟧"
    assert _latin1(disguised) == "invoice[U+202E]gpj.exe"  # the PDF's text


def test_the_template_filter_escapes_and_marks() -> None:
    rendered = Template("{% load safe_text %}{{ v|visible_controls }}").render(
        Context({"v": "<b>x</b>\u202etxt.exe"})
    )
    assert rendered == "&lt;b&gt;x&lt;/b&gt;⟦U+202E⟧txt.exe"
