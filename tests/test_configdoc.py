from __future__ import annotations

from pathlib import Path

from collector.config.docgen import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_configuration_doc_is_up_to_date():
    assert DOC.read_text() == render(), "run: python -m collector.config.docgen > docs/configuration.md"


def test_every_tunable_is_documented():
    rows = [line for line in render().splitlines() if line.startswith("| `")]
    assert len(rows) > 50
    undocumented = [r.split("|")[1].strip() for r in rows if r.rstrip().endswith("|  |")]
    assert undocumented == []
