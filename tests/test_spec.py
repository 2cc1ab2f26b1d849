"""docs/spec.md is the spec the code cites: citations resolve, every tag has its oracle, the index is true.

The rules (stated for users in docs/spec.md's preamble):
- every `[S#]` tag (single, list, or range) and every section `§N` cited in a `.py` file of the code folders
  is defined in docs/spec.md, and every tag is written in a form this parser knows;
- every tag not marked "Convention, no equation." has a function or class in `reference/` whose docstring
  cites it;
- the index table has one row per tag; each dotted name in it resolves by import + getattr, each catalogue
  entry name is an entry of `properties.catalogue.CATALOGUE`, and each reference function of an `[S#]` row
  cites that tag in its docstring.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = ROOT / "docs" / "spec.md"
SPEC_NAME = "docs/spec.md"
CODE_DIRS = ("reference", "impl", "properties", "tests", "benchmarks")
# In markdown only [S#] tags and "SPEC §N" are checked: a bare § there may be the paper's numbering.
DOC_FILES = ("README.md", "docs")
CONVENTION_MARK = "*Convention, no equation.*"
KNOWN_FORMS = "[S1], [S1, S2], [S1–S3], [S1]–[S3]"
EMPTY_CELL = "—"

# One tag item inside brackets: S12 or a range S24–S26 (en dash or hyphen); a bracket holds a comma list.
_ITEM = r"S\d+(?:\s*[–-]\s*S\d+)?"
_BRACKET = re.compile(rf"\[({_ITEM}(?:\s*,\s*{_ITEM})*)\]")
_BRACKET_RANGE = re.compile(r"\[S(\d+)\]\s*[–-]\s*\[S(\d+)\]")  # [S29]–[S31]
_ANY_TAG = re.compile(r"\[S\d[^\]\n]*\]?")  # anything that starts like a tag
_SECTION = re.compile(r"§(\d+)(?![.\d])")  # §7; a dotted §3.2 is the paper's numbering
_SPEC_SECTION = re.compile(r"SPEC\s+§(\d+)(?![.\d])")
_DEFINITION = re.compile(r"^- \*\*\[S(\d+)\]\*\*")
_HEADING = re.compile(r"^## §(\d+) ")
_INDEX_HEADING = "## Index"
_TABLE_ROW = re.compile(r"^\|(.+)\|\s*$")
_NAME = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Citation:
    """One citation found in a source file: the tags (`S` numbers) or the sections it names."""

    path: str
    line: int
    raw: str
    tags: tuple[int, ...] = ()
    sections: tuple[int, ...] = ()
    malformed: bool = False


@dataclass(frozen=True)
class IndexRow:
    line: int
    tag: str  # "[S5]" or "§7"
    reference: tuple[str, ...]
    impl: tuple[str, ...]
    catalogue: tuple[str, ...]


@dataclass
class Spec:
    tags: dict[int, int] = field(default_factory=dict)  # tag number → line
    conventions: set[int] = field(default_factory=set)
    sections: dict[int, int] = field(default_factory=dict)  # section number → line
    index: list[IndexRow] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def _expand(item: str) -> list[int]:
    numbers = [int(n) for n in re.findall(r"\d+", item)]
    if len(numbers) == 1:
        return numbers
    low, high = numbers
    return list(range(low, high + 1)) if low <= high else [low, high]


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def find_citations(text: str, path: str, *, bare_sections: bool = True) -> list[Citation]:
    """Every tag and section citation in `text` with its line; tag-like text of unknown form is malformed."""
    found: list[Citation] = []
    covered: list[tuple[int, int]] = []
    for match in _BRACKET_RANGE.finditer(text):
        found.append(
            Citation(path, _line_of(text, match.start()), match.group(0), tags=tuple(_expand(match.group(0))))
        )
        covered.append(match.span())
    for match in _BRACKET.finditer(text):
        if any(start <= match.start() < end for start, end in covered):
            continue  # an end of a bracket range, already read
        tags = tuple(n for item in match.group(1).split(",") for n in _expand(item))
        found.append(Citation(path, _line_of(text, match.start()), match.group(0), tags=tags))
        covered.append(match.span())
    for match in _ANY_TAG.finditer(text):
        if not any(start <= match.start() < end for start, end in covered):
            found.append(Citation(path, _line_of(text, match.start()), match.group(0), malformed=True))
    section_pattern = _SECTION if bare_sections else _SPEC_SECTION
    for match in section_pattern.finditer(text):
        found.append(
            Citation(path, _line_of(text, match.start()), match.group(0), sections=(int(match.group(1)),))
        )
    return sorted(found, key=lambda c: (c.line, c.raw))


def _cells(line: str) -> list[str] | None:
    match = _TABLE_ROW.match(line)
    return [cell.strip() for cell in match.group(1).split("|")] if match else None


def parse_spec(text: str) -> Spec:
    """Tag definitions (`- **[S#]** …` list items), `## §N` sections and the index table of docs/spec.md."""
    spec = Spec()
    in_index = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("## "):
            in_index = line.startswith(_INDEX_HEADING)
        if (definition := _DEFINITION.match(line)) is not None:
            tag = int(definition.group(1))
            if tag in spec.tags:
                spec.duplicates.append(f"{SPEC_NAME}:{number}: [S{tag}] is defined twice")
            spec.tags[tag] = number
            if CONVENTION_MARK in line:
                spec.conventions.add(tag)
        if (heading := _HEADING.match(line)) is not None:
            spec.sections[int(heading.group(1))] = number
        cells = _cells(line) if in_index else None
        if cells is None or len(cells) != 4 or not re.match(r"^(\[S\d+\]|§\d+)$", cells[0]):
            continue
        names = [tuple(_NAME.findall(cell)) for cell in cells[1:]]
        spec.index.append(IndexRow(number, cells[0], names[0], names[1], names[2]))
    return spec


@pytest.fixture(scope="module")
def spec() -> Spec:
    return parse_spec(SPEC_PATH.read_text(encoding="utf-8"))


def _python_files() -> Iterator[Path]:
    for folder in CODE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _markdown_files() -> Iterator[Path]:
    for name in DOC_FILES:
        path = ROOT / name
        files = sorted(path.rglob("*.md")) if path.is_dir() else [path]
        yield from (f for f in files if f != SPEC_PATH and f.is_file())


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def citation_problems(citations: Iterable[Citation], spec: Spec) -> list[str]:
    problems = []
    for c in citations:
        where = f"{c.path}:{c.line}"
        if c.malformed:
            problems.append(f"{where}: {c.raw!r} is not a tag form docs/spec.md knows ({KNOWN_FORMS})")
        problems += [
            f"{where}: {c.raw} cites [S{t}], which {SPEC_NAME} does not define"
            for t in c.tags
            if t not in spec.tags
        ]
        problems += [
            f"{where}: {c.raw} cites §{s}, which {SPEC_NAME} does not have"
            for s in c.sections
            if s not in spec.sections
        ]
    return problems


def test_spec_parses_into_tags_sections_and_index(spec: Spec) -> None:
    assert not spec.duplicates, "\n".join(spec.duplicates)
    gaps = sorted(set(range(1, max(spec.tags) + 1)) - set(spec.tags))
    assert not gaps, f"{SPEC_NAME}: tags are numbered without gaps; missing: {gaps}"
    assert len(spec.tags) >= 31 and len(spec.sections) >= 9 and spec.index


def test_every_citation_in_the_code_is_defined(spec: Spec) -> None:
    citations = [
        c
        for path in _python_files()
        for c in find_citations(path.read_text(encoding="utf-8"), _relative(path))
    ]
    assert len(citations) > 200  # the scan does find the code's citations
    problems = citation_problems(citations, spec)
    assert not problems, "\n".join(problems)


def test_every_citation_in_the_docs_is_defined(spec: Spec) -> None:
    citations = [
        c
        for path in _markdown_files()
        for c in find_citations(path.read_text(encoding="utf-8"), _relative(path), bare_sections=False)
    ]
    problems = citation_problems(citations, spec)
    assert not problems, "\n".join(problems)


def _text_tags(text: str) -> set[int]:
    return {t for c in find_citations(text, "") for t in c.tags}


def _docstring_tags(node: ast.AST) -> set[int]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return _text_tags(ast.get_docstring(node) or "")
    return set()


def test_every_tag_has_a_reference_function_citing_it(spec: Spec) -> None:
    cited: set[int] = set()
    for path in sorted((ROOT / "reference").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            cited |= _docstring_tags(node)
    problems = [
        f"{SPEC_NAME}:{line}: [S{tag}] has no function in reference/ whose docstring cites it "
        f"(mark it {CONVENTION_MARK!r} if it has no equation)"
        for tag, line in sorted(spec.tags.items())
        if tag not in cited and tag not in spec.conventions
    ]
    assert not problems, "\n".join(problems)


def resolve(dotted: str) -> Any:
    """The object a dotted name denotes: the longest importable module prefix, then attribute lookups."""
    parts = dotted.split(".")
    obj: Any = importlib.import_module(parts[0])
    for depth in range(1, len(parts)):
        module_name = ".".join(parts[: depth + 1])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            for attribute in parts[depth:]:
                obj = getattr(obj, attribute)
            return obj
    return obj


def catalogue_entry_names() -> set[str]:
    """Entry names of the property catalogue, whether `properties.catalogue` is a module or a package."""
    catalogue = importlib.import_module("properties.catalogue")
    entries = getattr(catalogue, "CATALOGUE", None)
    if entries is None:
        pytest.fail("properties.catalogue exposes no CATALOGUE: the index cannot check its entry names")
    return {entry.name for entry in entries}


def _tag_of(row: IndexRow) -> tuple[str, int]:
    return ("S", int(row.tag[2:-1])) if row.tag.startswith("[S") else ("§", int(row.tag[1:]))


def test_index_has_one_row_per_tag(spec: Spec) -> None:
    rows = [_tag_of(row) for row in spec.index]
    problems = [
        f"{SPEC_NAME}:{spec.tags[t]}: [S{t}] has no index row" for t in spec.tags if ("S", t) not in rows
    ]
    for row in spec.index:
        kind, number = _tag_of(row)
        if rows.count((kind, number)) > 1:
            problems.append(f"{SPEC_NAME}:{row.line}: {row.tag} has more than one index row")
        if number not in (spec.tags if kind == "S" else spec.sections):
            problems.append(f"{SPEC_NAME}:{row.line}: index row {row.tag} names an undefined tag")
    assert not problems, "\n".join(problems)


def test_index_names_resolve(spec: Spec) -> None:
    entries = catalogue_entry_names()
    problems = []
    for row in spec.index:
        kind, number = _tag_of(row)
        where = f"{SPEC_NAME}:{row.line}: index row {row.tag}"
        if kind == "S" and number not in spec.conventions:
            columns = {"reference": row.reference, "impl": row.impl, "catalogue": row.catalogue}
            problems += [
                f"{where} has an empty {column} cell" for column, names in columns.items() if not names
            ]
        for name in row.reference + row.impl:
            try:
                obj = resolve(name)
            except (ImportError, AttributeError) as error:
                problems.append(f"{where} names {name}, which does not resolve ({error})")
                continue
            cites = number in _text_tags(getattr(obj, "__doc__", None) or "")
            if name in row.reference and kind == "S" and not cites:
                problems.append(f"{where} names {name}, whose docstring does not cite {row.tag}")
        problems += [
            f"{where} names catalogue entry {e!r}, which does not exist"
            for e in row.catalogue
            if e not in entries
        ]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- the parser itself
OPEN = "["  # tags are assembled at run time so that this file cites none of them itself


def test_parser_reads_single_list_and_range_forms() -> None:
    text = f"a {OPEN}S5] b {OPEN}S7, S8]\nc {OPEN}S24–S26] d {OPEN}S29]–{OPEN}S31] (SPEC §7, paper §3.2)"
    citations = find_citations(text, "x.py")
    assert [(c.line, c.tags, c.sections) for c in citations] == [
        (1, (5,), ()),
        (1, (7, 8), ()),
        (2, (24, 25, 26), ()),
        (2, (29, 30, 31), ()),
        (2, (), (7,)),
    ]
    assert not any(c.malformed for c in citations)


def test_parser_flags_unknown_tags_and_forms_with_file_and_line() -> None:
    spec = parse_spec("## §1 One\n- **" + OPEN + "S1]** the only tag\n")
    text = f"ok {OPEN}S1]\nbad {OPEN}S2]\nodd {OPEN}S1a] and §4\n"
    problems = citation_problems(find_citations(text, "pkg/mod.py"), spec)
    assert problems == [
        f"pkg/mod.py:2: {OPEN}S2] cites {OPEN}S2], which {SPEC_NAME} does not define",
        f"pkg/mod.py:3: '{OPEN}S1a]' is not a tag form docs/spec.md knows ({KNOWN_FORMS})",
        f"pkg/mod.py:3: §4 cites §4, which {SPEC_NAME} does not have",
    ]


def test_resolve_follows_modules_then_attributes() -> None:
    assert resolve("reference.process.q_sample").__name__ == "q_sample"
    assert resolve("impl.diffusion.gaussian_diffusion.GaussianDiffusion.q_sample").__qualname__ == (
        "GaussianDiffusion.q_sample"
    )
    with pytest.raises(AttributeError):
        resolve("reference.process.no_such_function")
