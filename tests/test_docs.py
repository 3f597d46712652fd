"""The documentation matches the code: generated tables are current, links resolve, the README stays a
front door."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clv.doc_tables import contract_table, render, stale_pages
from clv.ingest.contract import ENTITIES

pytestmark = pytest.mark.fast  # the daily loop: make test-fast

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\((?!https?://|mailto:)([^)#\s]*)(?:#([^)\s]*))?\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_generated_tables_match_their_sources():
    assert stale_pages() == [], "run: python scripts/generate_docs.py"


def test_a_generated_block_is_replaced_and_an_unknown_one_is_an_error():
    page = "intro\n<!-- generated: contract -->\nold table\n<!-- end generated: contract -->\noutro\n"
    assert render(page, {"contract": "new table"}) == page.replace("old table", "new table")
    with pytest.raises(KeyError, match="unknown generated block 'scale'"):
        render(page.replace("contract", "scale"), {"contract": "x"})


def test_the_contract_table_has_a_row_for_every_contract_column():
    table = contract_table()
    for entity in ENTITIES.values():
        for column in entity.columns:
            assert f"| {entity.name} | `{column.name}` |" in table


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target, anchor in LINK.findall(page.read_text()):
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: link to missing {target}"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{page.name}: no heading #{anchor} in {path.name}"


def test_the_readme_is_a_front_door_to_every_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= 20_000
    for page in (REPO / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"README does not link docs/{page.name}"
