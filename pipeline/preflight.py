"""Checks on the input file before any component runs.

TFX would fail on these too, but late (after ExampleGen and StatisticsGen)
and in words about TFRecords and Arrow. Here each problem is one
``InputDataError`` that names the file, the column and what was expected,
and nothing is written anywhere.
"""

import csv
import dataclasses
import math
import os
from typing import Dict, List, Optional

from core import config as config_lib
from core import tasks

SAMPLE_ROWS = 20_000  # Enough to judge types and label balance cheaply.


class InputDataError(ValueError):
  """The input data cannot be used; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class DataSummary:
  path: str
  columns: List[str]
  rows_sampled: int
  rows_total: Optional[int]


def _is_number(text: str) -> bool:
  return tasks.base.number(text) is not None


def check_csv(config: config_lib.PipelineConfig) -> DataSummary:
  """Raises InputDataError on the first problem; returns a short summary."""
  data = config.data
  path = data.resolved_path
  if not os.path.exists(path):
    raise InputDataError(f'{path}: no such file (data.path)')
  if os.path.isdir(path):
    raise InputDataError(f'{path}: is a directory; data.path names a CSV file')
  if os.path.getsize(path) == 0:
    raise InputDataError(f'{path}: the file is empty; expected a CSV header '
                         'and at least one data row')
  try:
    with open(path, newline='', encoding='utf-8') as f:
      reader = csv.reader(f)
      header = next(reader, None)
      rows = []
      for row in reader:
        if row:
          rows.append(row)
        if len(rows) >= SAMPLE_ROWS:
          break
      rest = sum(1 for _ in reader)
  except UnicodeDecodeError as e:
    raise InputDataError(f'{path}: not UTF-8 text (byte {e.start}: '
                         f'{e.object[e.start:e.start + 1]!r}); save the CSV '
                         'as UTF-8') from None
  if not header or not any(h.strip() for h in header):
    raise InputDataError(f'{path}: no header row; expected column names on '
                         'the first line')
  header = [h.strip() for h in header]
  duplicates = sorted({h for h in header if header.count(h) > 1})
  if duplicates:
    raise InputDataError(f'{path}: duplicate column names {duplicates}')
  if not rows:
    raise InputDataError(f'{path}: only a header, no data rows')
  bad_width = next((i for i, r in enumerate(rows) if len(r) != len(header)),
                   None)
  if bad_width is not None:
    raise InputDataError(
        f'{path}: data row {bad_width + 1} has {len(rows[bad_width])} fields, '
        f'the header has {len(header)}')
  total = len(rows) + rest
  splits = data.splits
  train_share = splits.train / (splits.train + splits.eval + splits.test)
  # Training drops the last partial batch, so the train split needs one of
  # the smallest batch the Trainer would use.
  smallest = config.model.batch_size_for(0)
  needed = math.ceil(smallest / train_share)
  if total < needed:
    raise InputDataError(
        f'{path}: {total} data rows, fewer than one batch in the train split '
        f'(batch of {smallest} rows, train share {train_share:.0%}: at least '
        f'{needed} rows); the splits would be too small to train and judge a '
        'model')

  label = data.label
  for column in label.source_columns:
    if column not in header:
      what = ('the label column' if column == label.name else
              f'column {column!r}, which label {label.name!r} is derived from')
      raise InputDataError(
          f'{path}: no column {column!r}: expected {what} '
          f'(data.label); columns are {header}')
  missing = [c for c in data.features.all if c not in header]
  if missing:
    raise InputDataError(f'{path}: feature columns {missing} not in the header '
                         f'(data.features); columns are {header}')

  records = [dict(zip(header, r)) for r in rows]
  task = tasks.get(config.task)
  labels = []
  for i, record in enumerate(records):
    try:
      labels.append(task.parse_label(record, label))
    except tasks.LabelError as e:
      raise InputDataError(f'{path}: row {i + 1}: cannot read label '
                           f'{label.name!r} for task {task.name}: {e}') from None
  try:
    task.check_labels(labels, label)
  except tasks.LabelError as e:
    raise InputDataError(f'{path}: {e}') from None

  for column in data.features.numeric:
    values = [r[column].strip() for r in records]
    present = [v for v in values if v]
    if not present:
      raise InputDataError(f'{path}: numeric column {column!r} has no values '
                           f'in the first {len(values)} rows')
    bad = next((v for v in present if not _is_number(v)), None)
    if bad is not None:
      raise InputDataError(f'{path}: numeric column {column!r} holds {bad!r}; '
                           'expected numbers (or move it to '
                           'data.features.categorical)')
    if all(math.isnan(float(v)) for v in present):
      raise InputDataError(f'{path}: numeric column {column!r} is all NaN')
  return DataSummary(path=path, columns=header, rows_sampled=len(rows),
                     rows_total=total)
