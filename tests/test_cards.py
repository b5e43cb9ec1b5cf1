"""Generated files must match the registry: cards in model_cards/ and the README zoo table."""

from __future__ import annotations

from pathlib import Path

import pytest

from encoderzoo import list_encoders
from encoderzoo.cards import README_END, README_START, render_card, zoo_table
from encoderzoo.registry import get_spec

ROOT = Path(__file__).resolve().parents[1]
FIX = "regenerate with `python -m encoderzoo.cards` and commit the result"


@pytest.mark.parametrize("name", list_encoders())
def test_card_matches_registry(name):
    path = ROOT / "model_cards" / f"{name}.md"
    assert path.is_file(), f"model_cards/{name}.md is missing: {FIX}"
    assert path.read_text() == render_card(get_spec(name)), f"model_cards/{name}.md has drifted: {FIX}"


def test_no_orphan_cards():
    orphans = {p.stem for p in (ROOT / "model_cards").glob("*.md")} - set(list_encoders())
    assert not orphans, f"cards without a registry entry: {sorted(orphans)}"


def test_readme_table_matches_registry():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(README_START) + len(README_START) : readme.index(README_END)]
    assert block.strip() == zoo_table().strip(), f"README zoo table has drifted: {FIX}"


def test_card_states_the_facts_users_need():
    card = render_card(get_spec("rad-dino"))
    assert "research, not clinical use" in card
    assert "c3736a62544137a0450cc4fa02c9e37e55f28e32" in card and "MSRLA" in card
    gated = render_card(get_spec("medsiglip-448"))
    assert "gated | yes" in gated and "license: other" in gated
    assert "not pinned" in gated


def test_shipped_parameter_counts_match_the_built_models():
    """`list` and `card` read assets/parameters.json instead of building models: it must not drift."""
    from encoderzoo.cards import PARAMETERS_FILE, parameter_counts_json

    shipped = (ROOT / "encoderzoo" / "assets" / PARAMETERS_FILE).read_text()
    assert shipped == parameter_counts_json(), "run `python -m encoderzoo.cards` to regenerate"
