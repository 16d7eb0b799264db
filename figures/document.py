"""The results document, rendered from the experiments' headline summaries.

`docs/templates/results.md` is Markdown in which every number a finding quotes is a placeholder
`{{experiment.name}}` or `{{experiment.name:spec}}` (a Python format spec, e.g. `.3f`): the value
`name` in the summary `figures/<experiment>.json` that `cpi figures` wrote (see
`cpi.experiments.summaries`), or under `paper` a number about the paper from `docs/paper.toml`,
which gives each its source. `render` fills them in; `cpi figures --docs` writes the result to
docs/results.md, and a test fails when the committed document differs from what the committed
summaries render. Nothing here imports JAX or the simulator.
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

TEMPLATE = Path("docs/templates/results.md")
DOCUMENT = Path("docs/results.md")
SUMMARIES = Path("figures")
PAPER = Path("docs/paper.toml")

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w]*)\.([A-Za-z_][\w.]*)\s*(?::([^}]*))?\}\}")
HEADER = (
    "<!-- Rendered by `cpi figures --docs` from docs/templates/results.md and the summaries in "
    "figures/*.json; edit the template, not this file. -->\n\n"
)


class RenderError(ValueError):
    """A placeholder names a summary or a number that does not exist, or a bad format spec."""


def load_paper(path: str | Path = PAPER) -> dict:
    """{name: value} of the numbers about the paper in `path` (each table has `value` and
    `source`; a number without its source is refused)."""
    path = Path(path)
    with path.open("rb") as f:
        table = tomllib.load(f)
    out = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or "value" not in entry or not entry.get("source"):
            raise RenderError(f"{path}: [{name}] needs a value and its source")
        out[name] = entry["value"]
    return out


def _format(value, spec: str | None, where: str) -> str:
    if spec is None:
        if isinstance(value, float):
            raise RenderError(f"{where}: a float needs a format spec (e.g. :.3f)")
        return str(value)
    if spec == "pct":
        return f"{100 * value:.0f}%"
    try:
        return format(value, spec)
    except (ValueError, TypeError) as exc:
        raise RenderError(f"{where}: format spec {spec!r} does not apply to {value!r} ({exc})") from None


def render(template: str, summaries: dict[str, dict], paper: dict | None = None) -> str:
    """The template with every placeholder replaced by its number (RenderError naming every
    missing summary or number and every bad format spec)."""
    sources = dict(summaries)
    if paper is not None:
        sources["paper"] = paper
    errors: list[str] = []

    def fill(match: re.Match) -> str:
        try:
            return _fill(match)
        except RenderError as exc:
            errors.append(str(exc))
            return match.group(0)

    def _fill(match: re.Match) -> str:
        experiment, name, spec = match.group(1), match.group(2), match.group(3)
        where = match.group(0)
        if experiment not in sources:
            raise RenderError(f"no summary for {experiment!r} (figures/{experiment}.json)")
        numbers = sources[experiment]
        if name not in numbers:
            raise RenderError(f"{where}: {experiment!r} has no number {name!r} (has: {', '.join(sorted(numbers))})")
        if numbers[name] is None:
            raise RenderError(f"{where}: {experiment!r} has no value for {name!r} in these data (null)")
        return _format(numbers[name], spec, where)

    text = PLACEHOLDER.sub(fill, template)
    if errors:
        raise RenderError("; ".join(dict.fromkeys(errors)))
    return HEADER + reflow(text)


WIDTH = 100
_KEEP = re.compile(r"^\s*(?:```|\||#|!\[|<!--)")


def reflow(text: str, width: int = WIDTH) -> str:
    """Markdown prose re-wrapped to `width` columns (numbers are shorter than the placeholders
    they replace): each paragraph or list item is joined and wrapped again, with a list item's
    continuation indented under its text. Headings, tables, images, comments and fenced code
    keep their lines."""
    out: list[str] = []
    block: list[str] = []
    fenced = False

    def flush():
        if not block:
            return
        first = block[0]
        indent = len(first) - len(first.lstrip())
        bullet = re.match(r"\s*(?:[-*]|\d+\.)\s+", first)
        lead = first[: bullet.end()] if bullet else " " * indent
        rest = " " * len(lead)
        words = " ".join(line.strip() for line in block)
        words = words[len(lead.strip()):].strip() if bullet else words
        out.extend(textwrap.wrap(words, width=width, initial_indent=lead, subsequent_indent=rest,
                                 break_long_words=False, break_on_hyphens=False))
        block.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            flush()
            fenced = not fenced
            out.append(line)
        elif fenced or not line.strip() or _KEEP.match(line):
            flush()
            out.append(line)
        elif re.match(r"\s*(?:[-*]|\d+\.)\s+", line):
            flush()
            block.append(line)
        else:
            block.append(line)
    flush()
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def placeholders(template: str) -> list[tuple[str, str]]:
    """(experiment, name) of every placeholder, in order."""
    return [(m.group(1), m.group(2)) for m in PLACEHOLDER.finditer(template)]


_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_NOT_RESULTS = re.compile(
    r"(§\s*[\d.]+|(?:section|sections|eq\.|eqs\.|Figure|Figures|Fig\.|Lemma|appendix|A\.)\s*[\d.]+[a-z]?"
    r"|\]\([^)]*\))", re.I
)
_DECIMAL = re.compile(r"\d\.\d")


def typed_numbers(template: str) -> list[str]:
    """Decimal numbers written into the template's prose instead of named from a summary
    (code spans, placeholders, links and references to sections, equations and figures aside).
    The results document quotes no such number: each must come from data."""
    text = PLACEHOLDER.sub(" ", template)
    text = _CODE.sub(" ", text)
    text = _NOT_RESULTS.sub(" ", text)
    found = []
    for line in text.splitlines():
        if _DECIMAL.search(line):
            found.append(line.strip())
    return found


def render_document(
    template: str | Path = TEMPLATE, summaries: str | Path = SUMMARIES, paper: str | Path = PAPER
) -> str:
    """docs/results.md's text from the template, the summaries folder and the paper's numbers."""
    from cpi.experiments.summaries import load_summaries

    return render(Path(template).read_text(encoding="utf-8"), load_summaries(summaries), load_paper(paper))
