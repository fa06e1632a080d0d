"""One small, real pipeline run that is killed in the Trainer and resumed.

Shared by test_crash_safety.py, test_report.py and test_bad_inputs.py (a
module-level cache makes it one run per pytest process, each xdist worker's,
whichever module asks first), because a LocalDagRunner run costs minutes on a loaded machine:

1. ``python -m pipeline run`` in a subprocess on 600 taxi rows; as soon as the
   progress line ``  > trainer ...`` appears on its stderr and the Trainer's
   execution is RUNNING in the metadata store, the whole process group gets
   SIGKILL;
2. the same command again, in process through ``cli.main``: it must reuse
   the upstream results and train, bless and push.

The gate is loosened (any model that trains is blessed) so that the run ends
in a push: what is under test here is resumption, not model quality.
"""

import dataclasses
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

from pipeline import cli, local_runner, metadata
from core import config as config_lib
from pipeline.factory import NodeIds

SAMPLE_ROWS = 600
SMALL = ['model.epochs=2', 'model.ensemble_size=1', 'model.train_eval_sample=256',
         'gate.train_sample_size=300',
         'gate.min_accuracy_skill=-100', 'gate.min_log_loss_skill=-100',
         'gate.min_auc=0', 'gate.min_pr_auc_skill=-100',
         'gate.max_gap={accuracy: 1, auc: 1, log_loss: 1}',
         # Thresholds that switch checks off are refused without this.
         'gate.permissive=true']
# A loaded 2-core machine: TensorFlow alone takes a minute to import.
TRAINER_START_TIMEOUT = 900
UPSTREAM = (NodeIds.EXAMPLE_GEN, NodeIds.STATISTICS_GEN, NodeIds.SCHEMA_GEN,
            NodeIds.EXAMPLE_VALIDATOR, NodeIds.ANOMALY_GATE, NodeIds.TRANSFORM)


def write_taxi_sample(path, rows: int = SAMPLE_ROWS) -> str:
  """The header and first ``rows`` rows of the taxi sample."""
  with open(config_lib.taxi_sample_path(), newline='') as f:
    lines = [next(f) for _ in range(rows + 1)]
  with open(path, 'w', newline='') as f:
    f.write(''.join(lines))
  return str(path)


def settings(data_path, root, extra=()) -> List[str]:
  return [f'data.path={data_path}', f'output.root={root}', *SMALL, *extra]


def cli_args(command: str, overrides: List[str]) -> List[str]:
  args = [command]
  for item in overrides:
    args += ['--set', item]
  return args


@dataclasses.dataclass
class CrashedRun:
  root: str
  overrides: List[str]
  config: config_lib.PipelineConfig
  progress_before_kill: List[str]
  killed_run_id: str
  killed_states: Dict[str, str]
  exit_code: int  # Of the resumed run.
  result: local_runner.RunResult  # The resumed run, read from MLMD.


def _reader(stream, lines: 'queue.Queue[Optional[str]]') -> None:
  for line in iter(stream.readline, ''):
    lines.put(line.rstrip('\n'))
  lines.put(None)


def _trainer_running(metadata_path: str) -> bool:
  if not os.path.exists(metadata_path):
    return False
  runs = metadata.node_runs(metadata.connect_sqlite(metadata_path))
  trainer = runs.get(NodeIds.TRAINER)
  return trainer is not None and trainer.state == 'RUNNING'


def _kill_in_trainer(overrides: List[str], metadata_path: str) -> List[str]:
  """Runs the CLI until the Trainer is running, then SIGKILLs it."""
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.Popen(
      [sys.executable, '-m', 'pipeline', *cli_args('run', overrides), '--quiet'],
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
      start_new_session=True)  # Its own process group: kill Beam's too.
  lines: 'queue.Queue[Optional[str]]' = queue.Queue()
  threading.Thread(target=_reader, args=(proc.stderr, lines),
                   daemon=True).start()
  progress, deadline = [], time.monotonic() + TRAINER_START_TIMEOUT
  try:
    while '  > trainer ...' not in progress:
      try:
        line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
      except queue.Empty:
        raise AssertionError(f'no trainer progress line: {progress}') from None
      if line is None:
        raise AssertionError(f'the run ended before the trainer (exit '
                             f'{proc.wait()}): {progress}')
      if line.startswith(('  > ', '  < ')):
        progress.append(line)
    # The progress line comes just before the launcher registers the
    # execution: wait until the Trainer is really running.
    while not _trainer_running(metadata_path):
      if time.monotonic() > deadline or proc.poll() is not None:
        raise AssertionError('the trainer never showed as RUNNING')
      time.sleep(0.5)
    time.sleep(2)  # Into model building / fitting.
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
  return progress


_CACHE: Dict[str, CrashedRun] = {}


def crashed_and_resumed(tmp_path_factory) -> CrashedRun:
  """The shared run (see the module docstring), made on first use."""
  if 'run' in _CACHE:
    return _CACHE['run']
  root = tmp_path_factory.mktemp('crashed')
  data = write_taxi_sample(root / 'taxi.csv')
  out = str(root / 'out')
  overrides = settings(data, out)
  config = config_lib.load_config(overrides=overrides)
  where = local_runner.paths(config)
  progress = _kill_in_trainer(overrides, where['metadata_path'])
  store = metadata.connect_sqlite(where['metadata_path'])
  killed_run_id = metadata.run_ids(store)[-1]
  killed = {k: v.state for k, v in metadata.node_runs(store).items()}
  code = cli.main(cli_args('run', overrides) + ['--quiet'])
  result = local_runner.read_result(where['metadata_path'],
                                    where['pipeline_root'])
  _CACHE['run'] = CrashedRun(
      root=str(root), overrides=overrides, config=config,
      progress_before_kill=progress, killed_run_id=killed_run_id,
      killed_states=killed, exit_code=code, result=result)
  return _CACHE['run']


# --------------------------------------------------------------------------
# SafePusher executions outside the pipeline, on the shared run's artifacts.


def run_artifacts(metadata_path: str, run_id: Optional[str] = None):
  """(model, blessing, examples) of a run, as TFX artifact objects."""
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
  store = metadata.connect_sqlite(metadata_path)
  runs = metadata.node_runs(store, run_id)

  def load(node, key):
    proto = runs[node].outputs[key][0]
    artifact_type = store.get_artifact_types_by_id([proto.type_id])[0]
    return artifact_utils.deserialize_artifact(artifact_type, proto)
  return (load(NodeIds.TRAINER, 'model'), load(NodeIds.GATE, 'blessing'),
          load(NodeIds.EXAMPLE_GEN, 'examples'))


def safe_push(metadata_path: str, model_uri: str, serving_dir: str,
              pushed_uri: str):
  """One SafePusher executor run of the shared run's blessed model, read from
  ``model_uri``; returns the PushedModel artifact (raises what it raises)."""
  from components.pusher import component  # pylint: disable=g-import-not-at-top
  from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
  model, blessing, examples = run_artifacts(metadata_path)
  model.uri = model_uri
  pushed = standard_artifacts.PushedModel()
  pushed.uri = pushed_uri
  os.makedirs(pushed_uri, exist_ok=True)
  component.Executor().Do(
      {component.MODEL_KEY: [model], component.MODEL_BLESSING_KEY: [blessing],
       component.EXAMPLES_KEY: [examples]},
      {component.PUSHED_MODEL_KEY: [pushed]},
      {component.SERVING_DIR_KEY: serving_dir, component.SMOKE_SPLIT_KEY: 'test'})
  return pushed


def read_raw_examples(examples, count: int = 8) -> List[bytes]:
  from components.pusher import component  # pylint: disable=g-import-not-at-top
  return component.read_examples([examples], 'test', count)


def _push_worker(metadata_path, model_uri, serving_dir, pushed_uri,
                 ready_file, go_file) -> None:
  """A second process's pusher: prepares, says ready, waits, pushes."""
  from components.pusher import component  # pylint: disable=g-import-not-at-top
  del component  # Imported now so that TensorFlow loads before the barrier.
  with open(ready_file, 'w', encoding='utf-8'):
    pass
  deadline = time.monotonic() + TRAINER_START_TIMEOUT
  while not os.path.exists(go_file):
    if time.monotonic() > deadline:
      raise TimeoutError('never told to go')
    time.sleep(0.05)
  pushed = safe_push(metadata_path, model_uri, serving_dir, pushed_uri)
  print(pushed.get_string_custom_property('pushed_destination'))


if __name__ == '__main__':
  _push_worker(*sys.argv[1:])
