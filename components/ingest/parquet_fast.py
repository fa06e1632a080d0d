"""Parquet to tf.Example columns: TFX's Parquet route, zeros kept.

TFX's Parquet route is ``FileBasedExampleGen`` with
``custom_executors.parquet_executor``: Beam's ``ReadFromParquet`` yields
every row as a dict of Python values (``Table.to_pydict``), and
``example_gen.utils.dict_to_example`` turns each into a tf.Example:

* integers (signed or unsigned) and booleans become an ``int64_list``,
  floats a ``float_list`` (float32), strings and UTF-8 binary values a
  ``bytes_list``, one value each;
* a null becomes an empty Feature (no list at all): a missing value;
* list values become lists, and other types (timestamps, decimals,
  structs) make it raise.

Stock also writes every value that Python holds false as an empty Feature
(``if not pyval``): ``0``, ``0.0``, ``False`` and ``''`` become missing
values, so a 0/1 label loses its zeros and a count its most common value
(tensorflow/tfx#6407). Here only nulls and empty strings are missing (an
empty string is what an empty CSV cell is); ``0``, ``0.0`` and ``False``
are values; ``component.dict_to_example`` makes the same change to stock's
conversion for the rows the Beam fallback converts.

``to_columns`` does the flat case column-wise, into ``csv_fast.Column``s
whose cells are present where a value is; ``csv_fast.encode_column`` with
``missing_as_empty_feature`` then writes the missing ones as stock does.
``unsupported`` says what is left to the Beam executor: list and other
column types, duplicate names, unsigned values beyond int64, binary values
that are not UTF-8 (stock fails on those, and so it should here).

No TFX here: the pre-run check reads files with this module too.
"""

from typing import Callable, List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from components.ingest import csv_fast

ColumnType = csv_fast.ColumnType
_INT64_MAX = (1 << 63) - 1
# Why a value in the file is missing in the examples, for messages.
LOST_NOTE = ('an empty string is a missing value, as an empty CSV cell is')


class ParquetInputError(ValueError):
  """A Parquet file cannot be read; the message names the file."""


def _open(path: str, open_fn: Optional[Callable[[str], object]]):
  return path if open_fn is None else open_fn(path)


def read_table(path: str,
               open_fn: Optional[Callable[[str], object]] = None) -> pa.Table:
  """Every column of ``path``, as Beam's ``ReadFromParquet`` reads them
  (``ParquetFile``, not the dataset API: no partition columns from the
  folder names). ``open_fn``, if given, opens a binary file object."""
  source = _open(path, open_fn)
  try:
    return pq.ParquetFile(source).read()
  except (pa.ArrowInvalid, OSError) as e:
    raise ParquetInputError(f'{path}: cannot read as Parquet: {e}') from e
  finally:
    if source is not path:
      source.close()


def uncompressed_bytes(path: str,
                       open_fn: Optional[Callable[[str], object]] = None
                       ) -> int:
  """The data's size in memory, from the file's footer alone."""
  source = _open(path, open_fn)
  try:
    metadata = pq.ParquetFile(source).metadata
    return sum(metadata.row_group(i).total_byte_size
               for i in range(metadata.num_row_groups))
  except (pa.ArrowInvalid, OSError) as e:
    raise ParquetInputError(f'{path}: cannot read as Parquet: {e}') from e
  finally:
    if source is not path:
      source.close()


def _value_type(data_type: pa.DataType) -> pa.DataType:
  return (data_type.value_type if pa.types.is_dictionary(data_type)
          else data_type)


def kind_of(data_type: pa.DataType) -> Optional[ColumnType]:
  """The column type a flat Arrow type gives, or None if it is not flat."""
  t = _value_type(data_type)
  if pa.types.is_null(t):
    return ColumnType.UNKNOWN
  if pa.types.is_integer(t) or pa.types.is_boolean(t):
    return ColumnType.INT
  if pa.types.is_float32(t) or pa.types.is_float64(t):
    return ColumnType.FLOAT
  if (pa.types.is_string(t) or pa.types.is_large_string(t)
      or pa.types.is_binary(t) or pa.types.is_large_binary(t)):
    return ColumnType.STRING
  return None


def _decoded(column) -> pa.Array:
  column = (column.combine_chunks() if isinstance(column, pa.ChunkedArray)
            else column)
  if pa.types.is_dictionary(column.type):
    column = column.dictionary_decode()
  return column


def unsupported(table: pa.Table) -> Optional[str]:
  """Why stock's Beam executor must convert ``table``, or None."""
  names = table.column_names
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    return f'duplicate column names {duplicates}'
  for name, column in zip(names, table.columns):
    if kind_of(column.type) is None:
      return f'column {name!r} is of type {column.type}'
    t = _value_type(column.type)
    if pa.types.is_uint64(t):
      largest = pc.max(column).as_py()
      if largest is not None and largest > _INT64_MAX:
        return f'column {name!r} holds {largest}, beyond int64'
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
      try:
        pc.cast(_decoded(column), pa.large_string())
      except pa.ArrowInvalid:
        return f'column {name!r} holds binary values that are not UTF-8'
  return None


def convert_column(name: str, column) -> csv_fast.Column:
  """One flat column: present where the value is set (and, for text, not
  empty)."""
  column = _decoded(column)
  kind = kind_of(column.type)
  if kind is None:
    raise ParquetInputError(f'column {name!r} is of type {column.type}')
  valid = column.is_valid().to_numpy(zero_copy_only=False)
  if kind == ColumnType.UNKNOWN:
    return csv_fast.Column(name, ColumnType.UNKNOWN, np.zeros(len(valid), bool))
  if kind == ColumnType.STRING:
    values = pc.cast(column, pa.large_binary())
    present = valid & (pc.binary_length(values).fill_null(0).to_numpy(
        zero_copy_only=False) > 0)
  else:
    if pa.types.is_boolean(column.type):
      column = pc.cast(column, pa.int8())
    values = column.fill_null(0).to_numpy(zero_copy_only=False)
    present = valid
  if not present.any():
    return csv_fast.Column(name, ColumnType.UNKNOWN, present)
  if kind == ColumnType.STRING:
    # Null where not present: '' and b'' are no value either.
    values = pc.if_else(pa.array(present), values,
                        pa.scalar(None, pa.large_binary()))
    return csv_fast.Column(name, kind, present, values)
  return csv_fast.numeric_column(name, kind, values, present)


def to_columns(table: pa.Table) -> List[csv_fast.Column]:
  """Every column of ``table`` converted, in the table's order."""
  return [convert_column(name, column)
          for name, column in zip(table.column_names, table.columns)]


def stored(table: pa.Table, name: str) -> np.ndarray:
  """Where the file holds a value (not null) in column ``name``."""
  return table.column(name).combine_chunks().is_valid().to_numpy(
      zero_copy_only=False)
