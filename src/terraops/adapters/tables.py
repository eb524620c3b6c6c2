"""Tables on disk (parquet, CSV): the pipelines hand frames here and never open files.

Whole tables are small enough to write at once and go through the atomic
writer, so a reader never finds half a parquet file. A table too large to
hold (a city's prediction cells) is streamed batch by batch with
:func:`atomic_parquet_rows`, into a temporary sibling that becomes the file
only when every batch is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from terraops.adapters import atomic
from terraops.errors import InvalidInputError, NotFoundError

PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
CSV_SUFFIXES = frozenset({".csv", ".txt"})


def read_parquet_table(path: Path) -> pd.DataFrame:
    """A whole parquet file as a DataFrame."""
    return pd.read_parquet(path)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` (without its index) as parquet at ``path``, in place.

    For files in a private temporary folder (an artifact about to be logged);
    anything a reader may open concurrently goes through :func:`write_parquet_atomic`.
    """
    frame.to_parquet(path, index=False)


def write_parquet_atomic(
    frame: pd.DataFrame,
    path: Path,
    *,
    parents: bool = False,
    row_group_rows: int | None = None,
) -> None:
    """Replace ``path`` with ``frame`` (without its index) as parquet, in one step.

    ``parents`` creates the folder first; ``row_group_rows`` bounds what a
    streaming reader (:func:`iter_parquet_batches`) must hold at once.
    """
    with atomic.atomic_path(path, parents=parents) as staging:
        frame.to_parquet(staging, index=False, row_group_size=row_group_rows)


def write_arrays_atomic(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Replace ``path`` with the named arrays (an uncompressed ``.npz``), in one step."""
    with atomic.atomic_path(path) as staging, open(staging, "wb") as handle:
        np.savez(handle, allow_pickle=False, **arrays)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The named arrays of an ``.npz`` written by :func:`write_arrays_atomic`."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def iter_parquet_batches(
    path: Path, batch_rows: int, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """A parquet file in row-ordered batches of at most ``batch_rows`` rows (some ``columns``).

    Without ``pre_buffer=False`` pyarrow keeps every column chunk it has read
    until the file is closed: memory grows with the file (≈ 0.8 GB over a
    16.7 M-cell table) instead of staying at one batch.
    """
    parquet = pq.ParquetFile(path, pre_buffer=False)
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
        yield batch.to_pandas()


def read_feature_table(path: Path) -> pd.DataFrame:
    """A feature table from parquet or CSV, with a message naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"data file not found: {path}")
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        if path.suffix.lower() in CSV_SUFFIXES:
            return pd.read_csv(path)
    except Exception as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}".splitlines()[0]) from exc
    raise InvalidInputError(f"unsupported data file {path.name}", hint="give .parquet or .csv")


class ParquetRows:
    """A parquet file written batch by batch; the first batch fixes the schema.

    ``attrs`` are stored as pandas stores ``DataFrame.attrs`` (read back by
    :func:`read_parquet_table`); ``row_group_rows`` bounds each row group.
    """

    def __init__(
        self,
        path: Path,
        *,
        attrs: dict[str, Any] | None = None,
        row_group_rows: int | None = None,
    ) -> None:
        self.path = path
        self._writer: Any = None
        self._attrs = attrs
        self._row_group_rows = row_group_rows

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows (its index is dropped)."""
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            if self._attrs:
                metadata = {**(table.schema.metadata or {}), b"PANDAS_ATTRS": _json(self._attrs)}
                table = table.replace_schema_metadata(metadata)
            self._writer = pq.ParquetWriter(self.path, table.schema)
        else:
            table = table.replace_schema_metadata(self._writer.schema.metadata)
        self._writer.write_table(table, row_group_size=self._row_group_rows)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


@contextmanager
def atomic_parquet_rows(
    path: Path,
    *,
    parents: bool = False,
    attrs: dict[str, Any] | None = None,
    row_group_rows: int | None = None,
) -> Iterator[ParquetRows]:
    """Stream batches into a parquet that replaces ``path`` when the block ends.

    An error inside the block leaves ``path`` as it was. A block that writes
    no batch writes no file, and fails like a missing file.
    """
    with atomic.atomic_path(path, parents=parents) as staging:
        rows = ParquetRows(staging, attrs=attrs, row_group_rows=row_group_rows)
        try:
            yield rows
        finally:
            rows.close()
