"""Synthetic CSVs with a known signal, one per task shape, for end-to-end tests.

Each has two numeric columns, one of them with missing values, and one
categorical column; the label depends on all three, plus noise, so that a
regularized model has something real to learn and the trivial predictor
(prior or mean) is clearly beaten. ``signal=0`` makes the label independent
of the features.
"""

import csv
import functools
from typing import List

import numpy as np

FEATURES = {'numeric': ['x0', 'x1'], 'categorical': ['colour']}
COLOURS = ['red', 'green', 'blue', 'grey']


def _features(rng, n):
  x0 = rng.normal(size=n)
  x1 = rng.normal(size=n)
  colour = rng.integers(0, len(COLOURS), size=n)
  return x0, x1, colour


def write_csv(path, header: List[str], rows) -> str:
  """``rows`` under ``header`` into ``path``, as a user's CSV; the path."""
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return str(path)


def _cells(x0, x1, colour, i):
  # Every 10th x1 is missing: the numeric encoding's indicator path.
  return [f'{x0[i]:.4f}', '' if i % 10 == 3 else f'{x1[i]:.4f}',
          COLOURS[colour[i]]]


def multiclass(path, n=1500, seed=0, signal=1.0) -> str:
  """Three classes, named; class scores linear in the features."""
  rng = np.random.default_rng(seed)
  x0, x1, colour = _features(rng, n)
  scores = signal * np.stack([
      2.0 * x0, 2.0 * x1, -1.5 * x0 - 1.5 * x1 + 1.5 * (colour == 2)], axis=1)
  scores += rng.gumbel(size=scores.shape)
  names = np.array(['alpha', 'beta', 'gamma'])[scores.argmax(axis=1)]
  return write_csv(path, ['x0', 'x1', 'colour', 'species'],
                (_cells(x0, x1, colour, i) + [names[i]] for i in range(n)))


def regression(path, n=1500, seed=0, signal=1.0, skewed=False) -> str:
  """A target linear in the features (log-normal with ``skewed``)."""
  rng = np.random.default_rng(seed)
  x0, x1, colour = _features(rng, n)
  mean = signal * (3.0 * x0 - 2.0 * x1 + 2.0 * (colour == 1))
  if skewed:
    y = np.exp(0.4 * mean + 0.3 * rng.normal(size=n) + 2.0)
  else:
    y = 50.0 + 10.0 * (mean + rng.normal(size=n))
  return write_csv(path, ['x0', 'x1', 'colour', 'target'],
                (_cells(x0, x1, colour, i) + [f'{y[i]:.3f}'] for i in range(n)))


def imbalanced(path, n=20000, seed=0, positive_rate=0.03, signal=2.0) -> str:
  """A 0/1 label with about ``positive_rate`` positives."""
  rng = np.random.default_rng(seed)
  x0, x1, colour = _features(rng, n)
  logit = signal * (2.0 * x0 + 1.5 * x1 + 1.0 * (colour == 3))
  # The intercept that puts the mean probability near ``positive_rate``.
  grid = np.linspace(-12, 2, 1401)
  rates = [np.mean(1 / (1 + np.exp(-(logit + b)))) for b in grid]
  bias = grid[int(np.argmin(np.abs(np.array(rates) - positive_rate)))]
  y = (rng.random(n) < 1 / (1 + np.exp(-(logit + bias)))).astype(int)
  return write_csv(path, ['x0', 'x1', 'colour', 'fraud'],
                (_cells(x0, x1, colour, i) + [str(y[i])] for i in range(n)))


# Per task: (writer, label section, task) as a user would configure them.
SHAPES = {
    'multiclass': (multiclass, '{name: species}', 'multiclass'),
    # A skewed, positive target (a price, a duration), fitted in log space.
    'regression': (functools.partial(regression, skewed=True),
                   '{name: target, target_transform: log}', 'regression'),
    'imbalanced': (imbalanced, '{name: fraud}', 'binary'),
}


def overrides(shape: str, data_path: str, root: str, extra=()) -> List[str]:
  """``--set`` values that point the default config at a shape's CSV."""
  _, label, task = SHAPES[shape]
  return [f'task={task}', f'data.path={data_path}',
          f'data.label={label}',
          'data.features={numeric: [x0, x1], categorical: [colour]}',
          f'output.root={root}', f'pipeline_name=synthetic-{shape}', *extra]
