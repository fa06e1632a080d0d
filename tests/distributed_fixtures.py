"""Harness for test_distributed.py: data, cluster wiring and worker processes.

* ``transformed_data``: a session fixture that runs the project's
  ``preprocessing_fn`` through tf.Transform on the first rows of the taxi
  sample, once, and yields the artifact URIs the Trainer would receive.
* ``free_ports``/``tf_config``: a cluster of local processes on 127.0.0.1.
* Run as a script (``python tests/distributed_fixtures.py SPEC.json``) it is
  one training process: optional logical CPU devices (set before TensorFlow
  starts), optional simulated preemption, then the same ``FnArgs`` and
  ``run_fn`` path as ``python -m kubeflow.training.launch``.
"""

import json
import os
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

import pytest

# Rows of the taxi sample used: 14 of every 20 train (840), enough for a few
# dozen small batches per epoch.
FIXTURE_ROWS = 1200
PREEMPT_EXIT_CODE = 75


def small_config_overrides(**extra) -> List[str]:
  """A small, deterministic model: fast on 2 shared cores."""
  values = {
      'model.hidden_units': '[16]', 'model.batch_size': '16',
      'model.epochs': '3', 'model.ensemble_size': '1', 'model.train_eval_sample': '128',
      'model.learning_rate': '0.01', 'model.seed': '7',
      'data.features.categorical': '[payment_type, trip_start_hour]',
      'data.features.numeric': '[fare, trip_miles, trip_seconds]',
      'data.features.log_scale': '[fare, trip_miles, trip_seconds]',
  }
  values.update(extra)
  return [f'{k}={v}' for k, v in values.items()]


def small_config(**extra):
  from core import config as config_lib  # Keeps pytest collection light.
  return config_lib.load_config(overrides=small_config_overrides(**extra))


def _raw_feature_spec(header: Sequence[str], rows: Sequence[Sequence[str]]):
  """int64/float32/string per column from its values; varlen when any is
  missing, as SchemaGen marks optional columns (they arrive sparse)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def kind(values):
    for cast, dtype in ((int, tf.int64), (float, tf.float32)):
      try:
        for v in values:
          cast(v)
        return cast, dtype
      except ValueError:
        continue
    return str, tf.string

  spec, casts = {}, {}
  for i, name in enumerate(header):
    present = [r[i] for r in rows if r[i] != '']
    casts[name], dtype = kind(present)
    spec[name] = (tf.io.VarLenFeature(dtype) if len(present) < len(rows)
                  else tf.io.FixedLenFeature([], dtype))
  return spec, casts


def task_overrides(shape: str) -> Dict[str, str]:
  """``small_config`` values for one of ``task_data.SHAPES`` instead of the
  taxi sample."""
  import task_data  # pylint: disable=import-outside-toplevel
  _, label, task = task_data.SHAPES[shape]
  return {'task': task, 'data.label': label,
          'data.features.numeric': '[x0, x1]',
          'data.features.categorical': '[colour]',
          'data.features.log_scale': '[]'}


def _run_transform(root: str, train_shards: int = 2,
                   csv_path: Optional[str] = None,
                   overrides: Optional[Dict[str, str]] = None
                   ) -> Dict[str, str]:
  """The project's ``preprocessing_fn`` through tf.Transform on a tiny CSV
  (the taxi sample's first rows unless ``csv_path``; ``overrides``: more
  ``small_config`` values).

  Writes what TFX's Transform writes (``Split-*/`` gzipped tf.Example shards
  and a transform graph) without the LocalDagRunner round trip, which costs
  minutes on 2 shared cores. Rows are split 14/3/3 of every 20 like the
  configured hash buckets; the train split gets ``train_shards`` files so that
  two workers can shard it by file.
  """
  # pylint: disable=import-outside-toplevel
  import csv
  import functools
  import tempfile
  import apache_beam as beam
  import tensorflow as tf
  import tensorflow_transform as tft
  import tensorflow_transform.beam as tft_beam
  from apache_beam.options.pipeline_options import PipelineOptions
  from tensorflow_transform.tf_metadata import dataset_metadata
  from components import preprocessing
  from core import config as config_lib

  cfg = small_config(**(overrides or {}))
  with open(csv_path or config_lib.taxi_sample_path(), encoding='utf-8') as f:
    reader = csv.reader(f)
    header = next(reader)
    rows = [row for _, row in zip(range(FIXTURE_ROWS), reader)]
  spec, casts = _raw_feature_spec(header, rows)

  def instance(row):
    out = {}
    for name, value in zip(header, row):
      if isinstance(spec[name], tf.io.VarLenFeature):
        out[name] = [casts[name](value)] if value != '' else []
      else:
        out[name] = casts[name](value)
    return out

  buckets = cfg.data.splits
  bounds = {'train': buckets.train, 'eval': buckets.train + buckets.eval}
  splits = {'train': [], 'eval': []}
  for i, row in enumerate(rows):
    bucket = i % (buckets.train + buckets.eval + buckets.test)
    if bucket < bounds['train']:
      splits['train'].append(instance(row))
    elif bucket < bounds['eval']:
      splits['eval'].append(instance(row))
  metadata = dataset_metadata.DatasetMetadata.from_feature_spec(spec)
  preprocessing_fn = functools.partial(
      preprocessing.preprocessing_fn, custom_config={'config': cfg.to_dict()})
  examples = os.path.join(root, 'transformed_examples')
  transform_graph = os.path.join(root, 'transform_graph')
  options = PipelineOptions(['--direct_running_mode=in_memory',
                             '--direct_num_workers=1'])
  with beam.Pipeline(options=options) as p, tft_beam.Context(
      temp_dir=tempfile.mkdtemp(dir=root)):
    train = p | 'Train' >> beam.Create(splits['train'])
    evaluation = p | 'Eval' >> beam.Create(splits['eval'])
    (train_out, out_metadata), transform_fn = (
        (train, metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn, output_record_batches=False))
    eval_out, _ = ((evaluation, metadata), transform_fn) | (
        tft_beam.TransformDataset(output_record_batches=False))
    coder = tft.coders.ExampleProtoCoder(out_metadata.schema)
    for name, data, shards in (('train', train_out, train_shards),
                               ('eval', eval_out, 1)):
      _ = (data
           | f'Encode{name}' >> beam.Map(coder.encode)
           | f'Write{name}' >> beam.io.WriteToTFRecord(
               os.path.join(examples, f'Split-{name}', 'transformed_examples'),
               file_name_suffix='.gz', num_shards=shards))
    _ = transform_fn | tft_beam.WriteTransformFn(transform_graph)
    # The raw schema, as TFX's Transform writes it: serving parses with it.
    _ = metadata | tft_beam.WriteMetadata(
        os.path.join(transform_graph, tft.TFTransformOutput.RAW_METADATA_DIR),
        p)
  return {'examples': examples, 'transform_graph': transform_graph}


@pytest.fixture(scope='session')
def transformed_data(tmp_path_factory) -> Dict[str, str]:
  """Artifact URIs of a tiny Transform run, shared by the session's tests."""
  start = time.monotonic()
  uris = _run_transform(str(tmp_path_factory.mktemp('transformed')))
  print(f'transformed_data fixture: {time.monotonic() - start:.1f}s')
  return uris


def transformed_task_data(root: str, shape: str) -> Dict[str, str]:
  """As ``transformed_data``, for one of ``task_data.SHAPES``."""
  import task_data  # pylint: disable=import-outside-toplevel
  writer = task_data.SHAPES[shape][0]
  csv_path = writer(os.path.join(root, f'{shape}.csv'), n=FIXTURE_ROWS)
  return _run_transform(root, csv_path=csv_path,
                        overrides=task_overrides(shape))


def free_ports(count: int) -> List[int]:
  """Ports free on 127.0.0.1 now (held open together so they differ)."""
  sockets = []
  try:
    for _ in range(count):
      s = socket.socket()
      s.bind(('127.0.0.1', 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def tf_config(ports: Sequence[int], index: int) -> str:
  return json.dumps({
      'cluster': {'worker': [f'127.0.0.1:{p}' for p in ports]},
      'task': {'type': 'worker', 'index': index}})


def worker_env(tmp_dir: Optional[str] = None, tf_config_json: str = '') -> dict:
  """Environment of a child training process."""
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='2',
             PYTHONUNBUFFERED='1')
  env.pop('TF_CONFIG', None)
  if tf_config_json:
    env['TF_CONFIG'] = tf_config_json
  if tmp_dir:
    # A worker's throw-away directories land here, where the test looks.
    env['TMPDIR'] = tmp_dir
  return env


def run_spec(spec: dict, spec_path: str, log_path: str,
             timeout: float = 240) -> subprocess.CompletedProcess:
  """Runs this file as one training process on ``spec``; output to a log."""
  with open(spec_path, 'w', encoding='utf-8') as f:
    json.dump(spec, f)
  with open(log_path, 'w', encoding='utf-8') as log:
    return subprocess.run([sys.executable, __file__, spec_path],
                          env=worker_env(spec.get('tmp_dir')), stdout=log,
                          stderr=subprocess.STDOUT, timeout=timeout,
                          check=False)


def _child(spec_path: str) -> int:
  """One training process; see the module docstring."""
  with open(spec_path, encoding='utf-8') as f:
    spec = json.load(f)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if spec.get('logical_cpus'):
    # Must precede any op: devices are fixed when the runtime starts.
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * spec['logical_cpus'])
  import tf_keras as keras  # pylint: disable=import-outside-toplevel
  from kubeflow.training import launch  # pylint: disable=import-outside-toplevel
  if spec.get('preempt_after_epoch') is not None:
    after = spec['preempt_after_epoch']
    backup_epoch_end = keras.callbacks.BackupAndRestore.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
      backup_epoch_end(self, epoch, logs)  # The backup is written first...
      if epoch == after:
        os._exit(PREEMPT_EXIT_CODE)  # ...then the process dies, unannounced.

    keras.callbacks.BackupAndRestore.on_epoch_end = on_epoch_end
  # Several runs may share one process (and its TensorFlow start-up cost).
  for run in spec.get('runs', [spec]):
    fn_args = launch.build_fn_args(
        examples=spec['examples'], transform_graph=spec['transform_graph'],
        model=run['model'], model_run=run['model_run'],
        config=small_config(**run.get('overrides', {})),
        train_steps=run.get('train_steps', 0))
    launch.run(fn_args)
  return 0


if __name__ == '__main__':
  sys.exit(_child(sys.argv[1]))
