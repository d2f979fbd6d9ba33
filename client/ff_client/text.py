"""Plain-text formatting shared by the CLI and the status views: human-readable counts, aligned tables."""

from __future__ import annotations


def human(value: float) -> str:
    """1234567 -> '1.23M' (for parameter and token counts)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def aligned(rows: list[tuple[str, ...]]) -> str:
    """Rows of cells as left-aligned columns two spaces apart (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
