"""The whole pipeline on Beam's PortableRunner with an external SDK worker pool.

The e2e test starts ``apache_beam.runners.worker.worker_pool_main`` (the
sidecar that Flink and Spark runners use on Kubernetes) as a process of its
own and runs ``python -m pipeline run`` with

    beam.runner=PortableRunner
    beam.extra_args=[--job_endpoint=embed, --environment_type=EXTERNAL,
                     --environment_config=localhost:<pool port>]
    beam.force_beam_executors=true

on tests/small_run.py's 600 taxi rows and small settings. The embedded job
service runs in the pipeline's process; with an EXTERNAL environment it has
no worker of its own, so every Beam stage runs in a worker process that the
pool starts (one per Beam job, each logged by the pool). The test attributes
each worker to the component whose execution (in MLMD) was running when the
pool started it, and requires ExampleGen, StatisticsGen (their in-process
paths forced off), Transform and the gate to have one each. The outcome is
compared with small_run's in-process DirectRunner run of the same rows
(killed in the Trainer and resumed; shared with other modules): the same
examples in the same splits, the same schema, both blessed and pushed, the
same held-out rows and metrics within ``METRIC_TOLERANCE``.

The unit tests check the switch itself (components/beam_fallback.py).
"""

import collections
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Tuple

import pytest

from components import beam_fallback
from core import config as config_lib
from pipeline import cli, local_runner, metadata
from pipeline.factory import NodeIds
import small_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The components that run a Beam pipeline in this configuration.
BEAM_NODES = (NodeIds.EXAMPLE_GEN, NodeIds.STATISTICS_GEN, NodeIds.TRANSFORM,
              NodeIds.GATE)
WORKER_STARTED = 'Starting worker with command'
# Both runs train on the same rows in the same order (the Trainer sorts the
# rows it loads; ExampleGen's Beam path writes them in another order than
# the in-process one), but the reference was killed in the Trainer and
# resumed from its backup, whose later epochs draw other batches: the models
# differ a little (measured: AUC 0.003, PR AUC 0.008, log loss 0.004). 86
# held-out rows with 17 positives: one row is 0.012 of accuracy.
METRIC_TOLERANCE = 0.05
POOL_START_TIMEOUT = 300
RUN_TIMEOUT = 1800


# ---------------------------------------------------------------------------
# The switch


class _Stock:
  """Stands for a stock Beam executor: records its constructions."""

  def __init__(self, context=None):
    self.contexts = getattr(self, 'contexts', []) + [context]

  def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
    del input_dict, output_dict, exec_properties
    return 'beam'


class _InProcess(beam_fallback.BeamOnFallback, _Stock):

  def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
    del input_dict, output_dict, exec_properties
    return 'in process'


def _context(args):
  from tfx.dsl.components.base import base_beam_executor  # pylint: disable=g-import-not-at-top
  return base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=list(args), tmp_dir='/tmp')


@pytest.mark.parametrize('args, expected', [
    ([], 'in process'),
    (['--runner=PortableRunner', '--job_endpoint=embed'], 'in process'),
    (['--runner=PortableRunner', beam_fallback.FORCE_FLAG], 'beam'),
])
def test_the_flag_decides_the_path(args, expected):
  executor = _InProcess(_context(args))
  assert executor.Do({}, {}, {}) == expected
  # The stock constructor ran again with the real arguments only if forced.
  assert len(executor.contexts) == (2 if expected == 'beam' else 1)
  assert executor.contexts[0].beam_pipeline_args == []


def test_ingest_and_statistics_executors_are_forceable(monkeypatch):
  from tfx.components.example_gen import base_example_gen_executor  # pylint: disable=g-import-not-at-top
  from tfx.components.statistics_gen import executor as stock_statistics  # pylint: disable=g-import-not-at-top
  from tfx.utils import dependency_utils  # pylint: disable=g-import-not-at-top
  from components.ingest import component as ingest  # pylint: disable=g-import-not-at-top
  from components.statistics import executor as statistics  # pylint: disable=g-import-not-at-top
  calls = []
  monkeypatch.setattr(dependency_utils, 'make_beam_dependency_flags',
                      lambda args: list(args))  # No sdist.
  for stock in (base_example_gen_executor.BaseExampleGenExecutor,
                stock_statistics.Executor):
    monkeypatch.setattr(stock, 'Do', lambda self, *a: calls.append(
        (type(self).__name__, self._beam_pipeline_args[:2])))  # pylint: disable=protected-access
  args = ['--runner=PortableRunner', beam_fallback.FORCE_FLAG]
  executors = (ingest.ArrowCsvExecutor, ingest.ArrowParquetExecutor,
               ingest.TFRecordImportExecutor, statistics.Executor)
  for executor_class in executors:
    # Empty inputs: the in-process paths would raise on them.
    executor_class(_context(args)).Do({}, {}, {})
  # The stock Do, with the real arguments (TFX appends its labels).
  assert calls == [(c.__name__, args) for c in executors]


def test_beam_args_carry_the_flag():
  beam = config_lib.BeamConfig(force_beam_executors=True)
  assert local_runner.beam_args(beam, 600) == [beam_fallback.FORCE_FLAG]
  portable = config_lib.BeamConfig(
      runner='PortableRunner', extra_args=('--job_endpoint=embed',),
      force_beam_executors=True)
  assert local_runner.beam_args(portable, 600) == [
      '--runner=PortableRunner', '--job_endpoint=embed',
      beam_fallback.FORCE_FLAG]
  assert local_runner.beam_args(config_lib.BeamConfig(), 600) == []


@pytest.mark.parametrize('arg, message', [
    ('job_endpoint=embed', 'is not a --flag'),
    ('--runner=FlinkRunner', 'set beam.runner instead'),
])
def test_extra_args_are_checked(arg, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.load_config(overrides=[f'beam.extra_args=[{arg}]'])


# ---------------------------------------------------------------------------
# The whole pipeline on the portable runner


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _env() -> Dict[str, str]:
  # The pool starts its workers with the `python` on PATH: the venv's.
  venv_bin = os.path.dirname(sys.executable)
  return dict(os.environ, PATH=venv_bin + os.pathsep + os.environ['PATH'],
              TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='2')


class WorkerPool:
  """A worker_pool_main process; ``starts`` are (time, worker id) of the
  workers it started, as its log said."""

  def __init__(self, log_path: str):
    self.port = _free_port()
    self.log_path = log_path
    self.starts: List[Tuple[float, str]] = []
    self._log = open(log_path, 'w', encoding='utf-8')  # pylint: disable=consider-using-with
    self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, '-m', 'apache_beam.runners.worker.worker_pool_main',
         f'--service_port={self.port}'],
        cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # Its own group: it and its workers.
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self) -> None:
    for line in iter(self.proc.stderr.readline, ''):
      now = time.time()
      self._log.write(f'{now:.3f} {line}')
      self._log.flush()
      if WORKER_STARTED in line:
        worker = line.split('worker_id="', 1)[1].split('"', 1)[0]
        self.starts.append((now, worker))

  def wait_until_listening(self) -> None:
    deadline = time.monotonic() + POOL_START_TIMEOUT
    while time.monotonic() < deadline:
      if self.proc.poll() is not None:
        raise AssertionError(f'the worker pool exited: {self.proc.returncode}')
      with socket.socket() as s:
        if s.connect_ex(('localhost', self.port)) == 0:
          return
      time.sleep(0.5)
    raise AssertionError(f'no worker pool on port {self.port}')

  def stop(self) -> None:
    if self.proc.poll() is None:
      os.killpg(self.proc.pid, signal.SIGTERM)
      try:
        self.proc.wait(timeout=30)
      except subprocess.TimeoutExpired:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
    self._reader.join(timeout=10)
    self._log.close()


@pytest.fixture
def worker_pool(tmp_path):
  pool = WorkerPool(str(tmp_path / 'worker_pool.log'))
  try:
    pool.wait_until_listening()
    yield pool
  finally:
    pool.stop()


def _splits(examples) -> Dict[str, collections.Counter]:
  """Split name -> multiset of the split's examples, serialized
  deterministically (the two paths write them in different orders)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  result = {}
  for split_dir in sorted(glob.glob(os.path.join(examples.uri, 'Split-*'))):
    files = sorted(glob.glob(os.path.join(split_dir, '*.gz')))
    records = tf.data.TFRecordDataset(files, compression_type='GZIP')
    result[os.path.basename(split_dir)] = collections.Counter(
        tf.train.Example.FromString(r.numpy()).SerializeToString(
            deterministic=True) for r in records)
  return result


def _schema(runs) -> str:
  [schema] = runs[NodeIds.SCHEMA_GEN].outputs['schema']
  with open(os.path.join(schema.uri, 'schema.pbtxt'), encoding='utf-8') as f:
    return f.read()


def _workers_by_node(runs, starts) -> Dict[str, List[str]]:
  """Node id -> the workers the pool started while its execution ran."""
  found: Dict[str, List[str]] = collections.defaultdict(list)
  for started, worker in starts:
    for node, run in runs.items():
      if (run.execution.create_time_since_epoch / 1000 <= started <=
          run.execution.last_update_time_since_epoch / 1000):
        found[node].append(worker)
        break
    else:
      found['(no node)'].append(worker)
  return dict(found)


@pytest.mark.e2e
def test_pipeline_on_portable_runner_with_external_workers(
    tmp_path, tmp_path_factory, worker_pool):
  data = small_run.write_taxi_sample(tmp_path / 'taxi.csv')

  # The reference: small_run's in-process run (DirectRunner, no Beam flags)
  # of the same rows and settings, which other modules share.
  reference = small_run.crashed_and_resumed(tmp_path_factory).result

  overrides = small_run.settings(data, str(tmp_path / 'portable'), extra=[
      'beam.runner=PortableRunner',
      'beam.extra_args=[--job_endpoint=embed, --environment_type=EXTERNAL, '
      f'--environment_config=localhost:{worker_pool.port}]',
      'beam.force_beam_executors=true'])
  started = time.monotonic()
  run = subprocess.run(
      [sys.executable, '-m', 'pipeline',
       *small_run.cli_args('run', overrides), '--quiet'],
      cwd=REPO, env=_env(), capture_output=True, text=True,
      timeout=RUN_TIMEOUT, check=False)
  print(f'portable run: {time.monotonic() - started:.0f} s wall')
  assert run.returncode == 0, run.stderr[-4000:]

  config = config_lib.load_config(overrides=overrides)
  where = local_runner.paths(config)
  result = local_runner.read_result(where['metadata_path'],
                                    where['pipeline_root'])
  assert result.nodes and set(result.nodes.values()) == {'COMPLETE'}, (
      result.nodes)
  assert result.blessed and result.pushed_to

  # Every Beam job ran on a worker of the pool, including ExampleGen's and
  # StatisticsGen's, which the switch took off their in-process paths.
  store = metadata.connect_sqlite(where['metadata_path'])
  runs = metadata.node_runs(store, result.run_id)
  by_node = _workers_by_node(runs, worker_pool.starts)
  assert set(by_node) == set(BEAM_NODES), (by_node, worker_pool.log_path)
  with open(os.path.join(local_runner.report_dir(config, result.run_id),
                         cli.RUN_LOG), encoding='utf-8') as f:
    log = f.read()
  # The runner asked this pool for workers and no other; one per Beam job.
  assert set(re.findall(r'Requesting worker at (\S+)', log)) == {
      f'localhost:{worker_pool.port}'}
  assert log.count('Job state changed to DONE') == len(worker_pool.starts)
  for executor in ('ArrowCsvExecutor', 'Executor'):
    assert f'{executor}: the stock Beam executor, forced' in log

  # The same data in, the same verdict and (nearly) the same model out.
  reference_runs = metadata.node_runs(
      metadata.connect_sqlite(reference.metadata_path), reference.run_id)
  [examples] = runs[NodeIds.EXAMPLE_GEN].outputs['examples']
  [reference_examples] = reference_runs[NodeIds.EXAMPLE_GEN].outputs[
      'examples']
  assert _splits(examples) == _splits(reference_examples)
  assert _schema(runs) == _schema(reference_runs)
  assert reference.blessed and reference.pushed_to
  held_out = result.gate['metrics']['held_out']['']
  expected = reference.gate['metrics']['held_out']['']
  print('held-out metrics, portable:', held_out, 'in process:', expected)
  assert held_out['example_count'] == expected['example_count']
  for name in result.task.metrics:
    assert held_out[name] == pytest.approx(expected[name],
                                           abs=METRIC_TOLERANCE), name
  assert [c['passed'] for c in result.gate['checks']] == [
      c['passed'] for c in reference.gate['checks']]
