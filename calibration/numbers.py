"""Numbers as field files write them: decimal commas, thousands separators, quoted cells."""
import re

_THOUSANDS_GROUPS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+$")


def number_style(values) -> str:
    """'dot' (1,234.5) or 'comma' (1.234,5 / 33,1) decimals for a column, from all its cells.

    A lone comma is a decimal comma (vi-VN spreadsheets) unless the column also has dots
    as decimals, or groups of three after several commas (1,234,567).
    """
    dot = comma = False
    for v in values:
        t = v.strip().replace(" ", "").replace("\u00a0", "")
        if "." in t and "," in t:
            return "dot" if t.rfind(".") > t.rfind(",") else "comma"
        if "," in t:
            if t.count(",") > 1 and _THOUSANDS_GROUPS.match(t):
                return "dot"
            comma = True
        elif "." in t:
            dot = True
    return "dot" if dot or not comma else "comma"


def parse_number(text: str, style: str = "dot") -> float:
    """'33,1', '1.234,5', '1,234.5', '1 234,5' -> float, by the column's decimal style."""
    t = text.strip().replace(" ", "").replace("\u00a0", "").replace("'", "")
    if style == "comma":
        t = t.replace(".", "").replace(",", ".")
    else:
        t = t.replace(",", "")
    return float(t)
