"""Checks on the input data before any component runs, over every row.

TFX would fail on these too, but late (after ExampleGen and StatisticsGen)
and in words about TFRecords and Arrow. Here each problem is one
``InputDataError`` that names the file, the row and the column, and nothing
is written anywhere.

``data.path`` may be a file, a folder or a glob of CSV (plain or gzip),
Parquet or TFRecord files (``components.ingest.formats``, which also lists
the files exactly as ExampleGen will match them). Every file is read with
ingestion's own reader and every column gets the type stock's route gives
it (CSV: the same header, Arrow parser and type inference; Parquet: the
values TFX's Parquet executor writes, zeros as missing values included;
TFRecord: the features as TFDV decodes them), so whatever this check accepts
ExampleGen reads identically, and a bad value a million rows in is found
here, not during training. The label and feature checks below see only
that common form, never the format. Nothing here imports TensorFlow or TFX:
the check answers in about a second.
"""

import dataclasses
import math
import re
from typing import List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.ingest import csv_fast
from components.ingest import formats
from core import config as config_lib
from core import tasks

ColumnType = csv_fast.ColumnType


class InputDataError(ValueError):
  """The input data cannot be used; the message says where and why."""


# Above this many numeric features the run says, before it starts, what it
# will cost: on 2 cores and 5,000 rows, 1,000 numeric columns took 6 min
# 12 s and 3.5 GB end to end, Transform 89 s, the Trainer 158 s
# (docs/performance.md, P5 and its notes).
WIDE_NUMERIC_FEATURES = 1000


def wide_warning(config: config_lib.PipelineConfig) -> Optional[str]:
  """A warning when ``config`` has more numeric features than the run was
  measured with, else None."""
  n = len(config.data.features.numeric)
  if n <= WIDE_NUMERIC_FEATURES:
    return None
  return (f'warning: {n} numeric features: 1,000 took 6 min and 3.5 GB on '
          '2 cores and 5,000 rows, and the Trainer and the gate grow with '
          'the column count (docs/performance.md, P5); keep the columns '
          'that matter, or expect a long run')


def spelling_warning(cells: pa.Array, name: str) -> Optional[str]:
  """A warning when text label values differ only in case ('Yes', 'yes'):
  different classes to the pipeline, which compares them as written (spaces
  around them aside), and most likely one class to the user."""
  if not pa.types.is_string(cells.type) and not pa.types.is_large_string(
      cells.type):
    return None
  counts = {c['values']: c['counts'] for c in pc.value_counts(
      pc.utf8_trim_whitespace(cells.drop_null())).to_pylist()}
  groups = {}
  for value in counts:
    groups.setdefault(value.casefold(), []).append(value)
  alike = [sorted(g, key=lambda v: -counts[v]) for g in groups.values()
           if len(g) > 1]
  if not alike:
    return None
  listed = '; '.join(' and '.join(f'{v!r} ({counts[v]} rows)' for v in g)
                     for g in alike[:3]) + ('; ...' if len(alike) > 3 else '')
  return (f'warning: label {name!r}: {listed} differ only in case, and the '
          'pipeline keeps them apart as different classes; if they are one, '
          'write it one way in the data (e.g. pandas: '
          'df[col].str.strip().str.lower())')


@dataclasses.dataclass(frozen=True)
class DataSummary:
  path: str
  columns: List[str]
  rows_total: int  # Those ExampleGen writes (rows_dropped not counted).
  # The configuration with ``data.format`` resolved and ``data.features``
  # inferred when it asked for it (``features: auto``), else the
  # configuration checked.
  config: config_lib.PipelineConfig = None
  inferred: Optional[object] = None  # pipeline.infer.InferredFeatures
  format: str = 'csv'
  files: Tuple[str, ...] = ()
  # What ExampleGen reads: input_base and the split pattern (absolute).
  location: Optional[formats.Location] = None
  # data.label.drop_missing: the rows ExampleGen drops, and the first of them
  # ("row 7 of f.csv"), if any.
  rows_dropped: int = 0
  first_dropped: Optional[str] = None
  warnings: Tuple[str, ...] = ()  # Printed before the run starts.


def _first(mask: np.ndarray) -> Optional[int]:
  hits = np.flatnonzero(mask)
  return int(hits[0]) if hits.size else None


def _lost_note(data: formats.CheckData, names, row: int) -> str:
  """Why a value in the file is missing in the examples, if it is."""
  for name in names:
    if data.lost_at(name, row):
      return (f' (the file holds {data.stored(name, row)!r} in column '
              f'{name!r} there, but {data.lost_note})')
  return ''


def _unlabelled(data: formats.CheckData, label: config_lib.LabelConfig
                ) -> np.ndarray:
  """The rows ExampleGen drops (``data.label.drop_missing``): without a
  value in one of the label's source columns."""
  dropped = np.zeros(data.total, bool)
  for name in label.required_columns:
    dropped |= ~data.cells(name).is_valid().to_numpy(zero_copy_only=False)
  return dropped


def _labels(path: str, data: formats.CheckData, task: tasks.Task,
            label: config_lib.LabelConfig, dropped: np.ndarray) -> None:
  """Reads the label of every row ExampleGen keeps as the task does
  (``task.parse_label``), once per distinct combination of its raw source
  values, and checks the labels together (``task.check_labels``)."""
  sources = list(dict.fromkeys(label.source_columns))
  encoded = [data.cells(c).dictionary_encode() for c in sources]
  indices = [e.indices.fill_null(-1).to_numpy(zero_copy_only=False)
             .astype(np.int64) for e in encoded]
  names = [e.dictionary.to_pylist() + [''] for e in encoded]  # -1 -> ''
  # One code per distinct combination of source values.
  key = np.zeros(data.total, np.int64)
  for index, dictionary in zip(indices, names):
    key = key * len(dictionary) + (index + 1)
  kept = np.flatnonzero(~dropped)
  distinct, first_row, codes = np.unique(key[kept], return_index=True,
                                         return_inverse=True)
  first_row = kept[first_row]
  parsed = [None] * len(distinct)
  for i in np.argsort(first_row):  # The first bad row is the one reported.
    row = int(first_row[i])
    record = {c: dictionary[index[row]]
              for c, index, dictionary in zip(sources, indices, names)}
    try:
      parsed[i] = task.parse_label(record, label)
    except tasks.LabelError as e:
      file, number = data.locate(row)
      empty = not all(str(v).strip() for v in record.values())
      raise InputDataError(
          f'{file}: {data.row_word} {number}: cannot read label '
          f'{label.name!r} for task {task.name}: {e}'
          f'{_lost_note(data, sources, row)}'
          + ('; data.label.drop_missing: true drops the rows without a label'
             if empty and not label.drop_missing else '')) from None
  try:
    task.check_labels([parsed[c] for c in codes], label)
  except tasks.LabelError as e:
    raise InputDataError(f'{path}: {e}') from None


def _numeric(path: str, data: formats.CheckData, name: str,
             inferred_because: Optional[str] = None) -> None:
  """A numeric feature holds numbers, some of them, and finite ones.
  ``inferred_because``: why ``data.features: auto`` typed it numeric, when
  its type alone would not have."""
  column = data.column(name)
  if column.type == ColumnType.UNKNOWN:
    lost = data.lost(name)
    note = ('' if lost is None or not lost.any() else
            f' (the file holds values, but {data.lost_note})')
    raise InputDataError(f'{path}: numeric column {name!r} has no values in '
                         f'any of the {data.total} {data.data_row_word}s'
                         f'{note}')
  if column.type == ColumnType.STRING:
    cells = data.cells(name)
    distinct = cells.unique().drop_null().to_pylist()
    bad = {c for c in distinct
           if csv_fast.infer_value_type(c.encode()) == ColumnType.STRING}
    # A typed file's string column is text even where it looks like numbers.
    row = _first(pc.is_in(cells, value_set=pa.array(sorted(bad))).to_numpy(
        zero_copy_only=False)) if bad else _first(column.present)
    file, number = data.locate(row)
    cell = cells[row].as_py()
    from pipeline import infer  # pylint: disable=g-import-not-at-top
    comma = re.match(infer.COMMA_NUMBER, str(cell))
    raise InputDataError(
        f'{file}: numeric column {name!r} holds {cell!r} at '
        f'{data.data_row_word} {number}'
        + ('' if bad else ' as text') + '; expected numbers (or move it to '
        'data.features.categorical)'
        + ('; a number written with a comma (a thousands separator or a '
           'decimal comma) is text to the CSV reader: write it without '
           'separators and with a decimal point' if comma else '')
        + ('' if inferred_because is None else
           f'. data.features: auto typed it numeric: {inferred_because}; '
           'fix the cell, add the token to data.missing_values if it marks a '
           'missing value, or list data.features'))
  values = np.asarray(column.values, np.float64)
  present = column.present
  if column.type == ColumnType.FLOAT:
    if np.isnan(values[present]).all():
      raise InputDataError(f'{path}: numeric column {name!r} is all NaN')
    row = _first(present & np.isinf(values))
    if row is not None:
      file, number = data.locate(row)
      cell = data.cells(name)[row].as_py()
      raise InputDataError(
          f'{file}: numeric column {name!r} holds {cell!r} at '
          f'{data.data_row_word} {number}; '
          + ('beyond the range of the 32-bit floats a tf.Example holds '
             '(+-3.4e38): rescale the column in the data'
             if _finite_number(cell) else
             'an infinite value cannot be scaled: replace it (or leave the '
             'cell empty, a missing value)'))


def _finite_number(cell) -> bool:
  """Whether ``cell`` (a number, or its text) is a finite float64."""
  try:
    return math.isfinite(float(cell))
  except (TypeError, ValueError):
    return False


def _read(config: config_lib.PipelineConfig
          ) -> Tuple[formats.Found, formats.CheckData]:
  data = config.data
  try:
    return formats.read(data.resolved_path, data.format,
                        missing_values=data.missing_values,
                        delimiter=data.delimiter)
  except (formats.FormatError, formats.InputError) as e:
    raise InputDataError(str(e)) from None


def check_data(config: config_lib.PipelineConfig) -> DataSummary:
  """Raises InputDataError on the first problem; returns a short summary
  and the configuration to run: ``data.format`` resolved and, when
  ``data.features`` is ``auto``, the features inferred from the data."""
  path = config.data.resolved_path
  found, data = _read(config)
  header = data.names
  total = data.total
  if not total:
    raise InputDataError(f'{path}: {data.no_rows}')
  label = config.data.label
  for column in label.source_columns:
    if column not in header:
      what = ('the label column' if column == label.name else
              f'column {column!r}, which label {label.name!r} is derived from')
      raise InputDataError(
          f'{path}: no column {column!r}: expected {what} '
          f'(data.label); columns are {header}')
  features = config.data.features
  missing = [c for c in features.all if c not in header]
  if missing:
    # None of them: the lists of another file (the default configuration
    # lists the taxi sample's).
    other = len(missing) == len(features.all)
    raise InputDataError(
        f'{path}: feature columns {missing} not in {data.header_word} '
        f'(data.features); columns are {header}'
        + ('; none of the listed features is a column: for this data set '
           'data.features: auto to infer them, or write a config for it with '
           f'`python -m pipeline init {path} --label {label.name}`'
           if other else ''))
  slices = [c for c in config.gate.slice_features if c not in header]
  if slices:
    # A slice feature that is no column would leave its per-slice checks
    # with no slice to judge: the gate would pass them by omission.
    raise InputDataError(f'{path}: gate.slice_features {slices} are not '
                         f'columns of the data; columns are {header}')
  for name in dict.fromkeys(label.source_columns + features.all):
    if name in data.unusable:
      raise InputDataError(f'{path}: column {name!r} {data.unusable[name]}')

  dropped = _unlabelled(data, label)
  if dropped.all():
    raise InputDataError(
        f'{path}: no {data.data_row_word} has a value in every one of '
        f'{list(label.required_columns)}, so data.label.drop_missing would '
        'drop them all')
  total -= int(dropped.sum())
  splits = config.data.splits
  train_share = splits.train / (splits.train + splits.eval + splits.test)
  # Training drops the last partial batch, so the train split needs one of
  # the smallest batch the Trainer would use.
  smallest = config.model.batch_size_for(0)
  needed = math.ceil(smallest / train_share)
  if total < needed:
    raise InputDataError(
        f'{path}: {total} {data.data_row_word}s'
        + (' with a label' if dropped.any() else '')
        + f', fewer than one batch in the train split (batch of {smallest} '
        f'rows, train share {train_share:.0%}: at least {needed} rows); the '
        'splits would be '
        'too small to train and judge a model')

  task = tasks.get(config.task)
  _labels(path, data, task, label, dropped)

  config = dataclasses.replace(config, data=dataclasses.replace(
      config.data, format=found.format.name))
  inferred = None
  if features.auto:
    from pipeline import infer  # pylint: disable=g-import-not-at-top
    columns = [data.column(n) for n in header if n not in data.unusable]
    inferred = infer.infer_features(columns, label, data.total)
    config = infer.with_features(config, inferred)
  notes = inferred.notes if inferred is not None else {}
  for name in config.data.features.numeric:
    _numeric(path, data, name, notes.get(name))
  return DataSummary(path=path, columns=header, rows_total=total,
                     config=config, inferred=inferred,
                     format=found.format.name, files=found.files,
                     location=found.location, rows_dropped=int(dropped.sum()),
                     first_dropped=(data.row_name(int(np.flatnonzero(dropped)[0]))
                                    if dropped.any() else None),
                     warnings=tuple(w for w in (
                         _spellings(data, label, dropped),
                         wide_warning(config)) if w))


def _spellings(data: formats.CheckData, label: config_lib.LabelConfig,
               dropped: np.ndarray) -> Optional[str]:
  """``spelling_warning`` for a text label (classes, or a
  ``positive_value``), on the rows ExampleGen keeps."""
  if (label.column is not None
      or data.column(label.name).type != ColumnType.STRING):
    return None
  cells = data.cells(label.name)
  return spelling_warning(
      cells.filter(pa.array(~dropped)) if dropped.any() else cells,
      label.name)


# The entry point's first name, from when data.path was one CSV file.
check_csv = check_data
