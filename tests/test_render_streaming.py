"""A large run's text is written in chunks, never built as one string: every format but dot
gives an iterator of chunks of bounded size whose concatenation is the text."""
from __future__ import annotations

import pytest

from anondiff.engine import replay
from anondiff.render import RenderOptions, formatter, listing, table
from bench.__main__ import split_mapping


@pytest.fixture(scope="module")
def big_replay():  # type: ignore[no-untyped-def]
    return replay(split_mapping(3000), "split-counters")


@pytest.mark.parametrize("fmt", ["list", "table", "ascii", "json"])
def test_chunks_are_bounded(fmt: str, big_replay, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(listing, "CHUNK_LINES", 256)
    monkeypatch.setattr(table, "CHUNK_LINES", 256)
    out = formatter(fmt).render_run([big_replay], RenderOptions(width=400))
    assert not isinstance(out, str)
    chunks = list(out)
    text = "".join(chunks)
    assert len(chunks) > 4
    assert max(c.count("\n") for c in chunks) <= max(256, text.count("\n") // 4)
    assert text.endswith("\n") and not text.endswith("\n\n")
    # chunked or not, the same text
    monkeypatch.setattr(listing, "CHUNK_LINES", 10**9)
    monkeypatch.setattr(table, "CHUNK_LINES", 10**9)
    assert "".join(formatter(fmt).render_run([big_replay], RenderOptions(width=400))) == text


def test_table_drops_trailing_blank_lines_only() -> None:
    assert "".join(table.render_run([], RenderOptions())) == "\n"
