"""Per-file metrics as a table: a DataFrame of the headline columns and its markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_COLUMNS = (
    "perplexity",
    "perplexity_std",
    "accuracy",
    "accuracy_std",
    "unigram_perplexity",
    "pseudo_perplexity",
    "nll_per_token",
    "n_tokens",
    "n_sequences",
)


def metrics_table(files: dict[str, dict]) -> pd.DataFrame:
    """One row per file with the headline metrics (columns present in any file)."""
    import pandas as pd

    df = pd.DataFrame.from_dict(files, orient="index")
    df.index.name = "file"
    df = df[[c for c in SUMMARY_COLUMNS if c in df.columns]]
    for col in ("n_tokens", "n_sequences"):
        if col in df.columns:
            df[col] = df[col].astype("int64")
    return df


def format_table(df: pd.DataFrame, digits: int = 4) -> str:
    """Markdown: floats to ``digits`` significant digits, counts as integers."""
    shown = df.copy().astype(object)
    for col in df.columns:
        if df[col].dtype.kind == "f":
            shown[col] = [f"{v:.{digits}g}" if v == v else "" for v in df[col]]
    return shown.to_markdown(disable_numparse=True)
