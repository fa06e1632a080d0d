"""P5: Transform on wide tables, ours against the official example's idiom.

Both sides analyze and transform the same synthetic table with tf.Transform
(``tft_beam.AnalyzeAndTransformDataset`` on Beam's DirectRunner, graph mode
as the pipeline's Transform runs it, ``force_tf_compat_v1``): ``--rows``
rows of k Gaussian float columns, 2% of the cells missing (so each column
is a sparse input, as SchemaGen makes a column with missing values), and a
0/1 label.

* Official: the TFX taxi example's ``preprocessing_fn`` idiom for its dense
  float features, per column ``tft.scale_to_z_score(_fill_in_missing(x))``
  (``_fill_in_missing`` imported from the tfx wheel's
  ``taxi_utils_native_keras``): one analyzer per column.
* Ours: ``components.preprocessing.preprocessing_fn`` with the default
  configuration (``numeric_encoding: auto``: mean, variance, quantiles and
  extremes for the robust-or-z-score choice, missing indicators), whose
  analyzers each cover every numeric column.

Each measurement is a fresh process (``python -m bench.p5_wide --side ...``),
so that its peak RSS is its own; timed is the Beam pipeline, from tracing
the graph to the last transformed row (data generation and imports are
not). A side above ``--max-gb`` of resident memory or ``--timeout`` seconds
is stopped and reported as such. Sides alternate per width.

Target: ours no slower than the official idiom at every width, and a
near-linear cost in the column count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence

from bench import common

TITLE = 'P5: Transform on wide tables'
SIDES = ('official', 'ours')
MISSING = 0.02
LABEL = 'target'


def _names(columns: int) -> List[str]:
  return [f'x{i}' for i in range(columns)]


def _write_examples(path: str, columns: int, rows: int) -> None:
  """The table as tf.Examples in one TFRecord file, as ExampleGen writes
  it; a missing cell is an absent feature."""
  import numpy as np
  import tensorflow as tf
  rng = np.random.default_rng(0)
  x = rng.normal(size=(rows, columns)).astype('float32')
  label = (x[:, 0] + x[:, 1] - x[:, 2] + rng.normal(size=rows) > 0)
  missing = rng.random(size=(rows, columns)) < MISSING
  names = _names(columns)
  with tf.io.TFRecordWriter(path) as writer:
    for r in range(rows):
      feature = {n: tf.train.Feature(float_list=tf.train.FloatList(
          value=[x[r, i]])) for i, n in enumerate(names) if not missing[r, i]}
      feature[LABEL] = tf.train.Feature(
          int64_list=tf.train.Int64List(value=[int(label[r])]))
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feature)).SerializeToString())


def _preprocessing_fn(side: str, columns: int):
  import tensorflow_transform as tft
  names = _names(columns)
  if side == 'official':
    from tfx.examples.chicago_taxi_pipeline import taxi_utils_native_keras

    def official(inputs):
      outputs = {f'{n}_xf': tft.scale_to_z_score(
          taxi_utils_native_keras._fill_in_missing(inputs[n])) for n in names}
      outputs[LABEL] = inputs[LABEL]
      return outputs
    return official

  from components import preprocessing
  from core import config as config_lib
  raw = config_lib.load_config(None, [f'data.label={LABEL}']).to_dict()
  raw['data']['features'] = {'numeric': names, 'categorical': [],
                             'log_scale': []}
  custom_config = {'config': {k: raw[k] for k in ('task', 'data')}}
  return lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config)


def measure(side: str, columns: int, rows: int) -> Dict[str, object]:
  """One side at one width, in this process: seconds and peak RSS."""
  import apache_beam as beam
  import tensorflow as tf
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import schema_utils
  from tfx_bsl.public import tfxio

  spec = {n: tf.io.VarLenFeature(tf.float32) for n in _names(columns)}
  spec[LABEL] = tf.io.FixedLenFeature([], tf.int64)
  fn = _preprocessing_fn(side, columns)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'data.tfrecord')
    _write_examples(path, columns, rows)
    # Read as the Transform component reads ExampleGen's output.
    source = tfxio.TFExampleRecord(
        file_pattern=path,
        schema=schema_utils.schema_from_feature_spec(spec))
    start = time.perf_counter()
    with beam.Pipeline() as p, tft_beam.Context(
        temp_dir=os.path.join(tmp, 'tft'), force_tf_compat_v1=True):
      raw = p | source.BeamSource()
      (transformed, _), _ = (
          (raw, source.TensorAdapterConfig())
          | tft_beam.AnalyzeAndTransformDataset(
              fn, output_record_batches=True))
      _ = transformed | beam.combiners.Count.Globally()
    seconds = time.perf_counter() - start
  return {'side': side, 'columns': columns, 'rows': rows,
          'seconds': seconds, 'state': 'done',
          'peak_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                     / 1024 ** 2}


def _rss_gb(pid: int) -> float:
  try:
    with open(f'/proc/{pid}/status') as f:
      for line in f:
        if line.startswith('VmRSS:'):
          return int(line.split()[1]) / 1024 ** 2
  except OSError:  # The child has just exited.
    return 0.0
  return 0.0


def _measure_in_child(side: str, columns: int, rows: int, max_gb: float,
                      timeout: float, log_path: str) -> Dict[str, object]:
  """``measure`` in a fresh process, stopped above ``max_gb`` of resident
  memory or after ``timeout`` seconds; its stderr goes to ``log_path``."""
  cmd = [sys.executable, '-m', 'bench.p5_wide', '--side', side,
         '--columns', str(columns), '--rows', str(rows)]
  with open(log_path, 'w') as log:
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                             text=True)
    start, peak, stopped = time.perf_counter(), 0.0, None
    while child.poll() is None:
      peak = max(peak, _rss_gb(child.pid))
      elapsed = time.perf_counter() - start
      if peak > max_gb:
        stopped = f'stopped above {max_gb:g} GB after {elapsed:.0f} s'
      elif elapsed > timeout:
        stopped = f'stopped after {timeout:.0f} s'
      if stopped:
        child.kill()
        child.wait()
        return {'side': side, 'columns': columns, 'rows': rows,
                'seconds': None, 'state': stopped, 'peak_gb': peak}
      time.sleep(0.5)
  if child.returncode != 0:
    raise RuntimeError(f'{" ".join(cmd)} failed (exit {child.returncode}); '
                       f'see {log_path}')
  return json.loads(child.stdout.read().strip().splitlines()[-1])


def run(workdir: str, columns: Sequence[int] = (50, 100, 300),
        rows: int = 5000, max_gb: float = 16.0,
        timeout: float = 1200.0) -> Dict[str, object]:
  os.makedirs(workdir, exist_ok=True)
  machine = common.machine_description()
  load_before, busy = common.load_average(), common.busy_processes()
  results = []
  for i, k in enumerate(columns):
    order = SIDES if i % 2 == 0 else SIDES[::-1]
    for side in order:
      result = _measure_in_child(side, k, rows, max_gb, timeout,
                                 os.path.join(workdir, f'{side}_{k}.log'))
      print(f"  {side:<8} {k:4d} columns: {result['state']}, "
            f"{result['seconds'] or 0:.1f} s, {result['peak_gb']:.2f} GB",
            flush=True)
      results.append(result)
  payload = {'machine': machine, 'load_before': load_before,
             'load_after': common.load_average(), 'busy': busy,
             'rows': rows, 'max_gb': max_gb, 'timeout': timeout,
             'results': results}
  common.save_json(os.path.join(workdir, 'p5.json'), payload)
  return payload


def markdown(result: Dict[str, object], command: str) -> str:
  by = {(r['side'], r['columns']): r for r in result['results']}
  widths = sorted({r['columns'] for r in result['results']})

  def cell(r):
    if r['seconds'] is None:
      return r['state']
    return f"{common.fmt_seconds(r['seconds'])}, {r['peak_gb']:.2f} GB"

  rows = []
  for k in widths:
    o, u = by[('official', k)], by[('ours', k)]
    ratio = (f"{u['seconds'] / o['seconds']:.2f}x"
             if o['seconds'] and u['seconds'] else 'n/a')
    rows.append((k, cell(o), cell(u), ratio))
  lines = [common.section_preamble(result['machine'], command,
                                   result['load_before'],
                                   result['load_after'], result['busy']),
           f"{result['rows']:,} rows, {MISSING:.0%} of the cells missing; "
           'time of the Beam pipeline (trace, analyze, transform) and the '
           "process's peak RSS.",
           '',
           common.table(('numeric columns', 'official idiom (z-score per column)',
                         'ours (auto)', 'ours / official'), rows)]
  ratios = [u['seconds'] / o['seconds'] for o, u in
            ((by[('official', k)], by[('ours', k)]) for k in widths)
            if o['seconds'] and u['seconds']]
  met = len(ratios) == len(widths) and max(ratios) <= 1.0
  lines += ['', '- Ours no slower than the official idiom at every width: '
            f"**{'met' if met else 'missed'}**."]
  done = [k for k in widths if by[('ours', k)]['seconds']]
  if len(done) >= 2:
    a, b = done[0], done[-1]
    growth = by[('ours', b)]['seconds'] / by[('ours', a)]['seconds']
    lines += [f'- Ours from {a} to {b} columns ({b / a:g}x): {growth:.2f}x '
              'the time.']
  return '\n'.join(lines)


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(description='one P5 measurement')
  parser.add_argument('--side', choices=SIDES, required=True)
  parser.add_argument('--columns', type=int, required=True)
  parser.add_argument('--rows', type=int, required=True)
  args = parser.parse_args(argv)
  print(json.dumps(measure(args.side, args.columns, args.rows)))
  return 0


if __name__ == '__main__':
  os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  sys.exit(main(sys.argv[1:]))
