"""theory/NOTES.md is the repository's theory document: every section of it that a module, a test,
the README or the notes themselves cite exists, and nothing cites a theory document outside the
repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTES = ROOT / "theory" / "NOTES.md"
FOLDERS = ("core", "theory", "sims", "bridge", "experiments", "figures", "cpi", "benchmarks", "tests", "docs")


def sources() -> list[Path]:
    """Every Python and Markdown file of the repository (the README, the notes, the code, the tests)."""
    files = [ROOT / "README.md"]
    for folder in FOLDERS:
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md")]
    return files


def sections() -> set[str]:
    """The numbers of the notes' sections ("4") and subsections ("0.8")."""
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", NOTES.read_text(), flags=re.M))


def test_every_cited_section_of_the_notes_exists():
    have = sections()
    cited = {}
    for path in sources():
        text = path.read_text()
        if path == NOTES:  # the notes cite themselves as "§N"
            refs = re.findall(r"§(\d+(?:\.\d+)?)", text)
        else:
            refs = re.findall(r"NOTES\.md,? (?:§|section )(\d+(?:\.\d+)?)", text)
            refs += re.findall(r"NOTES\.md §\d+(?:\.\d+)?(?:(?:,| and) §(\d+(?:\.\d+)?))+", text)
        for ref in refs:
            cited.setdefault(ref, []).append(path.relative_to(ROOT).as_posix())
    assert {"0.2", "0.4", "0.8", "0.9", "4", "14"} <= set(cited)  # the citations the code makes
    missing = {ref: where for ref, where in cited.items() if ref not in have}
    assert not missing


def test_nothing_cites_a_theory_document_outside_the_repository():
    outside = "THEORY" + ".md"
    found = [path.relative_to(ROOT).as_posix() for path in sources()
             if path != Path(__file__) and (outside in path.read_text() or "project brief" in path.read_text())]
    assert not found
