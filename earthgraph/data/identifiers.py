"""Text identifiers (station "06260", aircraft "EGLL") stored as float32 codes.

A metadata column of identifiers that float32 cannot hold exactly as numbers is stored
as integer codes, with each code's text in the store's ``codes`` attribute
(:mod:`earthgraph.data.store`). Codes are appended in order of first appearance, so a
store's existing codes never change meaning when rows are added.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

F32_EXACT = 1 << 24  # float32 holds every integer up to 2**24 exactly, and not 2**24 + 1
MAX_CODES = F32_EXACT  # text identifiers are stored as float32 codes


def is_text(column: np.ndarray) -> bool:
    """Whether an identifier column must be kept as text: anything but integers that float32
    holds exactly ("EGLL"; "06260", whose leading zero a number would lose; 16777217, which
    float32 would store as 16777216)."""
    if column.dtype.kind in "biuf":
        numbers = column.astype(np.float64)
        numbers = numbers[np.isfinite(numbers)]
    else:
        present = as_text(column).dropna()
        if not present.str.fullmatch(r"-?(0|[1-9][0-9]*)").all():
            return True
        numbers = present.astype(np.float64).to_numpy()  # magnitudes only: rounding does not matter
    return not (np.all(numbers == np.round(numbers)) and np.all(np.abs(numbers) <= F32_EXACT))


def as_text(column: np.ndarray) -> pd.Series:
    """A metadata column as text, missing entries None; whole numbers without a trailing '.0'."""
    s = pd.Series(column)
    if s.dtype.kind == "f":
        s = s.map(lambda v: None if not np.isfinite(v) else (str(int(v)) if float(v).is_integer() else str(v)))
    s = s.map(lambda v: v.decode() if isinstance(v, bytes) else v)
    return s.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""
                 else str(v).strip())


def encode_text(column: np.ndarray, known: list[str]) -> tuple[np.ndarray, list[str]]:
    """Text identifiers as float32 codes: ``(codes (n,), texts)``, where ``texts`` extends
    ``known`` (the store's codes, kept as they are) by the new identifiers in order of first
    appearance; missing entries get NaN."""
    texts = list(known)
    index = {t: i for i, t in enumerate(texts)}
    strings = as_text(column)
    for t in strings.dropna().unique():
        if t not in index:
            index[t] = len(texts)
            texts.append(t)
    codes = strings.map(index).to_numpy(dtype=np.float64, na_value=np.nan)
    return codes.astype(np.float32), texts
