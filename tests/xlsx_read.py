"""Reading a workbook as its user's spreadsheet would, with the standard library only
(zipfile + ElementTree): cell values with their type, number formats, frozen panes, filters,
print set-up and hyperlinks — so tests check what the file holds, not what the writer meant."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile

M = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS = {"m": M}
BUILTIN_FORMATS = {0: "General", 1: "0", 2: "0.00", 3: "#,##0", 4: "#,##0.00", 14: "mm-dd-yy", 49: "@"}


def _formats(z: zipfile.ZipFile) -> tuple[list[str], list[str], list[bool]]:
    """(number format code, fill colour, wrapped) of every cell style index."""
    root = ET.fromstring(z.read("xl/styles.xml"))
    codes = dict(BUILTIN_FORMATS)
    nf = root.find("m:numFmts", NS)
    for f in (nf if nf is not None else []):
        codes[int(f.get("numFmtId"))] = f.get("formatCode")
    fills = []
    for fill in root.find("m:fills", NS):
        fg = fill.find(".//m:fgColor", NS)
        fills.append(fg.get("rgb") if fg is not None else None)
    nums, colours, wraps = [], [], []
    for xf in root.find("m:cellXfs", NS):
        nums.append(codes.get(int(xf.get("numFmtId", 0)), "?"))
        colours.append(fills[int(xf.get("fillId", 0))])
        al = xf.find("m:alignment", NS)
        wraps.append(al is not None and al.get("wrapText") == "1")
    return nums, colours, wraps


def read_xlsx(data: bytes) -> dict[str, dict]:
    """sheet name -> {'grid': [{col: value}], 'rows': [{header: value}], 'formats': [{col: code}],
    'fills': [{col: rgb}], 'wrapped': [{col: bool}], 'frozen', 'autofilter', 'formulas', 'landscape', 'fit_width',
    'repeat_header', 'links': [target]} in sheet order. Numbers are floats, text is str."""
    z = zipfile.ZipFile(io.BytesIO(data))
    assert z.testzip() is None
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", NS):
            shared.append("".join(t.text or "" for t in si.iter(f"{{{M}}}t")))
    nums, colours, wraps = _formats(z)
    rels = {r.get("Id"): r.get("Target") for r in ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))}
    book = ET.fromstring(z.read("xl/workbook.xml"))
    defined = {d.get("name") + ":" + d.get("localSheetId", ""): d.text for d in book.iter(f"{{{M}}}definedName")}
    out = {}
    for i, s in enumerate(book.find("m:sheets", NS)):
        root = ET.fromstring(z.read("xl/" + rels[s.get(f"{{{R}}}id")].lstrip("/").removeprefix("xl/")))
        grid, formats, fills, wrapped = [], [], [], []
        for row in root.iter(f"{{{M}}}row"):
            cells, fmt, fill, wrap = {}, {}, {}, {}
            for c in row.findall("m:c", NS):
                col = re.match(r"[A-Z]+", c.get("r")).group()
                style = int(c.get("s", 0))
                fmt[col], fill[col], wrap[col] = nums[style], colours[style], wraps[style]
                v = c.find("m:v", NS)
                if c.find("m:f", NS) is not None:
                    cells[col] = ("FORMULA", v.text if v is not None else None)
                elif v is None:
                    continue
                elif c.get("t") == "s":
                    cells[col] = shared[int(v.text)]
                elif c.get("t") in (None, "n"):
                    cells[col] = float(v.text)
                else:
                    cells[col] = v.text
            grid.append(cells)
            formats.append(fmt)
            fills.append(fill)
            wrapped.append(wrap)
        pane = root.find(".//m:pane", NS)
        header = grid[0] if grid else {}
        setup = root.find("m:pageSetup", NS)
        fit = root.find("m:sheetPr/m:pageSetUpPr", NS)
        out[s.get("name")] = {
            "grid": grid, "formats": formats, "fills": fills, "wrapped": wrapped,
            "rows": [{header.get(k, k): val for k, val in g.items()} for g in grid[1:]],
            "header_cols": {v: k for k, v in header.items() if isinstance(v, str)},
            "frozen": pane is not None and pane.get("state") == "frozen" and pane.get("ySplit") == "1",
            "autofilter": root.find("m:autoFilter", NS) is not None,
            "formulas": sum(1 for g in grid for x in g.values() if isinstance(x, tuple)),
            "landscape": setup is not None and setup.get("orientation") == "landscape",
            "fit_width": (fit is not None and fit.get("fitToPage") == "1" and setup is not None
                          and setup.get("fitToWidth", "1") == "1" and setup.get("fitToHeight") == "0"),
            "repeat_header": "$1:$1" in (defined.get(f"_xlnm.Print_Titles:{i}") or ""),
            "links": [h.get("location") for h in root.iter(f"{{{M}}}hyperlink")],
        }
    return out
