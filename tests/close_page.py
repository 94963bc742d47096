"""Reading the close report as a browser's parser sees it (stdlib html.parser): the tables of
each section by its id, as rows of cell texts, and every tag and attribute met."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path


class ClosePage(HTMLParser):
    """Sections (by id) → tables → rows → cell texts; plus the tags and attributes seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.sections: dict[str, list[list[list[str]]]] = {}
        self.text: dict[str, str] = {}
        self._section: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._elements: dict[str, str] = {}
        self._ids: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            self._section = a.get("id")
            self.sections[self._section] = []
            self.text[self._section] = ""
        elif tag == "table" and self._section:
            self.sections[self._section].append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        if "id" in a:
            self._ids.append((tag, a["id"]))
            self._elements[a["id"]] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._section and self.sections[self._section]:
                self.sections[self._section][-1].append(self._row)
            self._row = None
        elif tag == "section":
            self._section = None
        if self._ids and self._ids[-1][0] == tag:
            self._ids.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._section:
            self.text[self._section] += data
        for _, ident in self._ids:
            self._elements[ident] += data

    def element_text(self, ident: str) -> str:
        return self._elements.get(ident, "").strip()

    def table(self, section: str, index: int = 0) -> list[dict[str, str]]:
        """A section's table as dicts keyed by its header row."""
        rows = self.sections[section][index]
        return [dict(zip(rows[0], r)) for r in rows[1:]]


def parse(path: Path) -> ClosePage:
    page = ClosePage()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page
