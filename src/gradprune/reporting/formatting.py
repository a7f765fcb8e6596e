"""Number formatting and small table writers (CSV, Markdown, LaTeX) shared by all tables."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd


def _isnan(x) -> bool:
    try:
        return x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x)
    except (TypeError, ValueError):
        return False


def fmt_value(mean: float, std: float | None = None, n: int = 1, decimals: int = 2) -> str:
    """``"78.10"`` for one seed, ``"78.10 ± 0.12"`` for several; ``"–"`` when missing."""
    if _isnan(mean):
        return "–"
    text = f"{mean:.{decimals}f}"
    if n >= 2 and not _isnan(std):
        text += f" ± {std:.{decimals}f}"
    return text


def fmt_signed(x: float, decimals: int = 2) -> str:
    return "–" if _isnan(x) else f"{x:+.{decimals}f}"


def fmt_nnz(millions: float) -> str:
    """NNZ in millions the way the paper prints it: three significant digits (27.1, 4.21, 0.46)."""
    if _isnan(millions):
        return "–"
    if abs(millions) >= 100:
        return f"{millions:.0f}"
    return f"{millions:.3g}"


def fmt_sparsity(s: float) -> str:
    return "–" if _isnan(s) else f"{s * 100:g}%"


def fmt_size(size: float) -> str:
    """Width multipliers keep a decimal (1.0, 0.75); unit counts are integers (1500)."""
    if _isnan(size):
        return "–"
    if float(size).is_integer():
        return f"{int(size)}" if size >= 10 else f"{size:.1f}"
    return f"{size:g}"


def size_header(family: str) -> str:
    return "Width" if family == "vision" else "Units"


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table (no tabulate needed); numeric columns right-aligned."""
    cols = [str(c) for c in df.columns]
    cells = [["" if _isnan(v) else str(v) for v in row] for row in df.itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    right = [
        pd.api.types.is_numeric_dtype(df[c]) or all(_looks_numeric(r[i]) for r in cells)
        for i, c in enumerate(df.columns)
    ]

    def line(values):
        return "| " + " | ".join(
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)
        ) + " |"

    sep = "| " + " | ".join(("-" * (w - 1) + ":") if r else "-" * w
                            for w, r in zip(widths, right)) + " |"
    return "\n".join([line(cols), sep] + [line(r) for r in cells]) + "\n"


def _looks_numeric(text: str) -> bool:
    t = text.replace("±", "").replace("%", "").replace("–", "").replace(" ", "")
    t = t.replace("+", "").replace("-", "").replace(".", "").replace(",", "")
    return t.isdigit() or text == "–"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(df: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """A booktabs table; pandas' ``to_latex`` (jinja2) when available, a small writer otherwise.

    ``±`` becomes ``$\\pm$`` and ``–`` (missing) becomes ``--``.
    """
    text_df = df.astype(object).where(df.notna(), "–").astype(str)
    try:
        body = text_df.to_latex(index=False, escape=True, caption=caption or None,
                                label=label or None, position="htbp")
    except ImportError:  # pragma: no cover - jinja2 ships with torch and snakemake
        align = "l" * len(df.columns)
        lines = [r"\begin{table}[htbp]"]
        if caption:
            lines.append(r"\caption{" + _latex_escape(caption) + "}")
        if label:
            lines.append(r"\label{" + label + "}")
        lines += [r"\begin{tabular}{" + align + "}", r"\toprule",
                  " & ".join(_latex_escape(str(c)) for c in df.columns) + r" \\", r"\midrule"]
        lines += [" & ".join(_latex_escape(v) for v in row) + r" \\"
                  for row in text_df.itertuples(index=False)]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        body = "\n".join(lines) + "\n"
    return body.replace("±", r"$\pm$").replace("–", "--")


def write_table(df_numeric: pd.DataFrame, df_display: pd.DataFrame, out_dir: Path, stem: str,
                caption: str = "") -> list[Path]:
    """Write ``<stem>.csv`` (numeric columns), ``<stem>.md`` and ``<stem>.tex`` (formatted)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.csv", out_dir / f"{stem}.md", out_dir / f"{stem}.tex"]
    df_numeric.to_csv(paths[0], index=False)
    md = (f"**{caption}**\n\n" if caption else "") + to_markdown(df_display)
    paths[1].write_text(md, encoding="utf-8")
    paths[2].write_text(to_latex(df_display, caption=caption, label=f"tab:{stem}"),
                        encoding="utf-8")
    return paths
