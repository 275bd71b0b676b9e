from pathlib import Path

from routing.docs import render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"


def test_the_lifecycle_docs_are_generated_from_the_machine() -> None:
    assert DOCS.read_text(encoding="utf-8") == render(), (
        "run `make docs` and commit docs/lifecycle.md"
    )


def test_every_trigger_appears_in_the_docs() -> None:
    from routing.lifecycle import Lifecycle

    text = render()
    for trigger in Lifecycle().triggers():
        assert f"| `{trigger}` |" in text
