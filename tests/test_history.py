"""The run history (pipeline/history.py) on small stores built here.

Each store is written with ml_metadata the way TFX writes one (a
``pipeline_run`` and a ``node`` context per execution, OUTPUT events keyed
by the output name, the gate's ``gate.json`` beside its blessing), so the
listing and its formatting are tested without a pipeline run. The listing
after real blessed and blocked runs is in tests/test_e2e.py.
"""

import ast
import json
import os
import subprocess
import sys

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from components.gate import decision as gate_decision
from components.gate import keys as gate_keys
from core import tasks
from pipeline import cli, history

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIPELINE = 'taxi-generalize'
STATE = pb.Execution.State


class StoreBuilder:
  """Writes runs into a SQLite MLMD store, shaped like LocalDagRunner's."""

  def __init__(self, tmp_path):
    self.root = tmp_path
    self.path = str(tmp_path / 'metadata.sqlite')
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = self.path
    config.sqlite.connection_mode = (
        pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    self.store = metadata_store.MetadataStore(config)
    self._types = {}
    self._nodes = {}
    self._run = None
    self._clock = 1_800_000_000_000  # Milliseconds since the epoch.

  def _type(self, kind, name):
    if (kind, name) not in self._types:
      proto = {'context': pb.ContextType, 'execution': pb.ExecutionType,
               'artifact': pb.ArtifactType}[kind](name=name)
      put = {'context': self.store.put_context_type,
             'execution': self.store.put_execution_type,
             'artifact': self.store.put_artifact_type}[kind]
      self._types[kind, name] = put(proto)
    return self._types[kind, name]

  def run(self, run_id):
    context = pb.Context(name=run_id,
                         type_id=self._type('context', 'pipeline_run'))
    [context.id] = self.store.put_contexts([context])
    self._run = context
    return self

  def artifact(self, type_name, uri='', **custom):
    artifact = pb.Artifact(type_id=self._type('artifact', type_name), uri=uri,
                           state=pb.Artifact.LIVE)
    _set(artifact, custom)
    return artifact

  def execute(self, node, state=STATE.COMPLETE, outputs=None, **custom):
    """One execution of ``node`` in the current run; ``outputs``: output key
    -> artifact (a new one, or one an earlier execution wrote: cached)."""
    if node not in self._nodes:
      context = pb.Context(name=f'{PIPELINE}.{node}',
                           type_id=self._type('context', 'node'))
      [context.id] = self.store.put_contexts([context])
      self._nodes[node] = context
    execution = pb.Execution(
        type_id=self._type('execution', f'components.{node}'),
        last_known_state=state)
    _set(execution, custom)
    events = []
    for key, artifact in (outputs or {}).items():
      event = pb.Event(type=pb.Event.OUTPUT)
      event.path.steps.add().key = key
      event.path.steps.add().index = 0
      events.append((artifact, event))
    execution_id, artifact_ids, _ = self.store.put_execution(
        execution, events, [self._run, self._nodes[node]])
    for (artifact, _), artifact_id in zip(events, artifact_ids):
      artifact.id = artifact_id
    return execution_id

  def example_gen(self, file_name='taxi.csv', size=76951, cached=None):
    examples = cached or self.artifact(
        'Examples', str(self.root / 'examples'),
        input_fingerprint=f'split:all,num_files:1,total_bytes:{size},'
        'xor_checksum:1,sum_checksum:1', span=0)
    self.execute(
        'example_gen', STATE.CACHED if cached else STATE.COMPLETE,
        {'examples': examples}, input_base=str(self.root),
        input_config=json.dumps({'splits': [{'name': 'all',
                                             'pattern': file_name}]}))
    return examples

  def gate(self, name, decision, write_json=True):
    uri = self.root / 'blessing' / name
    uri.mkdir(parents=True)
    if write_json:
      (uri / gate_keys.GATE_JSON).write_text(json.dumps(decision))
    failed = sorted({c['kind'] for c in decision['checks']
                     if not c['passed']})
    custom = {f"{c['kind']}_{c['metric']}": c['value']
              for c in decision['checks'] if not c['slice']}
    blessing = self.artifact(
        'ModelBlessing', str(uri), blessed=int(decision['blessed']),
        blessing_message=decision['reason'], failed_checks=','.join(failed),
        task=decision['task'], **custom)
    self.execute('gate', outputs={'blessing': blessing},
                 task=decision['task'])
    return blessing

  def pusher(self, destination=None, state=STATE.COMPLETE, cached=None):
    if cached is not None:
      pushed = cached
    elif destination:
      pushed = self.artifact('PushedModel', str(self.root / 'pushed'),
                             pushed=1, pushed_destination=destination,
                             pushed_version=os.path.basename(destination))
    else:
      pushed = self.artifact('PushedModel', str(self.root / 'pushed'),
                             pushed=0)
    self.execute('pusher', state, {'pushed_model': pushed})
    return pushed

  def upstream(self, task='binary', examples=None):
    examples = self.example_gen(cached=examples)
    for node in ('statistics_gen', 'schema_gen', 'example_validator'):
      self.execute(node)
    self.execute('anomaly_gate', task=task)
    self.execute('transform')
    self.execute('trainer', outputs={'model': self.artifact('Model')})
    return examples


def _set(proto, values):
  for key, value in values.items():
    target = proto.custom_properties[key]
    if isinstance(value, int):  # bool too.
      target.int_value = int(value)
    elif isinstance(value, float):
      target.double_value = value
    else:
      target.string_value = str(value)


def check(kind, metric, value, threshold, comparison='<=', slice_=''):
  passed = value <= threshold if comparison == '<=' else value >= threshold
  return {'kind': kind, 'metric': metric, 'slice': slice_, 'value': value,
          'threshold': threshold, 'comparison': comparison, 'passed': passed,
          'detail': ''}


def decision(task, held_out, train, checks):
  """A gate.json as decision.Decision.to_dict writes it."""
  failed = sorted({c['kind'] for c in checks if not c['passed']})
  return {'blessed': not failed,
          'reason': 'failed: ' + ', '.join(failed) if failed
                    else 'all checks passed',
          'failed_checks': failed, 'task': task, 'checks': checks,
          'metrics': {'held_out': {'': {**held_out, 'example_count': 450.0}},
                      'train': {'': {**train, 'example_count': 1000.0}},
                      'baseline': None},
          'arrays': {'held_out': {}, 'train': {}}, 'baseline_note': None}


BINARY_GOOD = decision(
    'binary',
    {'accuracy': 0.906, 'auc': 0.958, 'pr_auc': 0.7, 'log_loss': 0.24},
    {'accuracy': 0.916, 'auc': 0.963, 'pr_auc': 0.72, 'log_loss': 0.23},
    [check('quality', 'auc', 0.958, 0.6, '>='),
     check('gap', 'accuracy', 0.01, 0.03), check('gap', 'auc', 0.005, 0.03),
     check('gap', 'log_loss', 0.01, 0.05)])
BINARY_OVERFIT = decision(
    'binary', {'accuracy': 0.885, 'auc': 0.93, 'pr_auc': 0.6, 'log_loss': 0.45},
    {'accuracy': 1.0, 'auc': 1.0, 'pr_auc': 1.0, 'log_loss': 0.001},
    [check('quality', 'auc', 0.93, 0.6, '>='),
     check('gap', 'accuracy', 0.115, 0.03), check('gap', 'auc', 0.07, 0.03),
     check('gap', 'log_loss', 0.449, 0.05),
     check('gap', 'accuracy', 0.2, 0.05, slice_='company:X')])


@pytest.fixture
def store(tmp_path):
  """Five runs, oldest first: stopped by anomalies, blessed and pushed,
  blocked by the gap, blessed and already served, killed in the Trainer."""
  b = StoreBuilder(tmp_path)
  b.run('run-1-anomalies')
  b.example_gen('drifted.csv', size=82952)
  b.execute('statistics_gen')
  b.execute('anomaly_gate', STATE.FAILED, task='binary')
  b.run('run-2-blessed')
  examples = b.upstream()
  b.gate('2', BINARY_GOOD)
  b.pusher(str(tmp_path / 'serving' / '1700000001'))
  b.run('run-3-overfit')
  b.upstream(examples=examples)
  b.gate('3', BINARY_OVERFIT)
  b.pusher()
  b.run('run-4-same-again')
  b.upstream(examples=examples)
  b.gate('4', BINARY_GOOD)
  # The Pusher finds the model served and marks it pushed to where it is.
  b.pusher(str(tmp_path / 'serving' / '1700000001'))
  b.run('run-5-killed')
  b.example_gen(cached=examples)
  b.execute('transform', STATE.CACHED)
  b.execute('trainer', STATE.RUNNING)
  return b


def test_runs_newest_first_with_state_data_and_verdict(store):
  records = history.list_runs(store.path)
  assert [r.run_id for r in records] == [
      'run-5-killed', 'run-4-same-again', 'run-3-overfit', 'run-2-blessed',
      'run-1-anomalies']
  killed, again, overfit, blessed, anomalies = records

  assert anomalies.state == 'FAILED at anomaly_gate'
  assert anomalies.blessed is None and anomalies.metrics == ()
  assert anomalies.data == str(store.root / 'drifted.csv')
  assert anomalies.data_bytes == 82952
  assert anomalies.task == 'binary'  # As the AnomalyGate recorded it.
  assert killed.state == 'RUNNING at trainer'
  assert killed.data == str(store.root / 'taxi.csv')  # Cached examples.

  assert blessed.state == 'COMPLETE' and blessed.blessed
  assert blessed.failed_checks == ()
  assert (blessed.pushed_version, blessed.newly_pushed) == ('1700000001', True)
  assert blessed.pushed_to == str(store.root / 'serving' / '1700000001')
  assert again.blessed and again.pushed_version == '1700000001'
  assert not again.newly_pushed

  assert overfit.blessed is False and overfit.reason == 'failed: gap'
  assert overfit.pushed_version is None
  assert [c.name for c in overfit.failed_checks] == [
      'gap accuracy', 'gap auc', 'gap log_loss', 'gap accuracy [company:X]']
  assert overfit.failed_checks[0].value == 0.115
  assert overfit.failed_checks[0].threshold == 0.03


def test_metrics_are_the_tasks_in_its_order(store):
  overfit = history.list_runs(store.path)[2]
  assert [m.name for m in overfit.metrics] == list(
      tasks.get('binary').metrics)
  accuracy = overfit.metric('accuracy')
  assert (accuracy.held_out, accuracy.train, accuracy.gap) == (0.885, 1.0,
                                                              0.115)
  assert accuracy.gap_passed is False
  # pr_auc has no gap check: no gap is shown for it.
  assert overfit.metric('pr_auc').gap is None


def test_format_runs_fits_100_columns(store):
  text = history.format_runs(history.list_runs(store.path))
  lines = text.splitlines()
  assert max(len(line) for line in lines) <= 100, text
  assert lines[0].split() == ['run', 'id', 'started', 'data', 'outcome']
  body = '\n'.join(lines[2:])
  assert 'run-5-killed' in body and 'RUNNING at trainer' in body
  assert 'blessed, already served 1700000001' in body
  assert 'blessed, pushed 1700000001' in body
  # Four failed checks do not fit: the first ones, and how many more.
  assert 'NOT BLESSED: gap accuracy, auc +2\n' in body
  assert 'accuracy 0.8850 (+0.1150!)' in body
  assert 'pr_auc 0.6000  log_loss' in body
  assert 'FAILED at anomaly_gate' in body
  assert 'drifted.csv' in body
  # Two lines for each run the gate saw, one for the others.
  assert len(lines) == 2 + 3 * 2 + 2


def test_json_round_trips_and_is_strict(store, tmp_path):
  (tmp_path / "nan").mkdir()
  b = StoreBuilder(tmp_path / "nan")
  b.run('saturated')
  b.upstream()
  saturated = json.loads(json.dumps(BINARY_OVERFIT))
  saturated['metrics']['held_out']['']['log_loss'] = float('inf')
  b.gate('1', saturated)
  b.pusher()
  for path in (store.path, b.path):
    records = history.list_runs(path)
    parsed = json.loads(history.to_json(records))
    assert [r['run_id'] for r in parsed] == [r.run_id for r in records]
  [record] = parsed
  log_loss = next(m for m in record['metrics'] if m['name'] == 'log_loss')
  assert log_loss['held_out'] is None  # Infinity: not strict JSON.
  assert record['nodes']['gate'] == 'COMPLETE'
  assert record['failed_checks'][0]['kind'] == 'gap'


def test_regression_gaps_are_relative(tmp_path):
  b = StoreBuilder(tmp_path)
  b.run('regression')
  b.upstream(task='regression')
  b.gate('1', decision(
      'regression', {'rmse': 12.5, 'mae': 9.0, 'r2': 0.41},
      {'rmse': 10.0, 'mae': 8.0, 'r2': 0.5},
      [check('quality', 'r2_skill', 0.41, 0.05, '>='),
       check('gap', 'rmse', 0.25, 0.1), check('gap', 'mae', 0.125, 0.1)]))
  b.pusher()
  [record] = history.list_runs(b.path)
  assert record.task == 'regression'
  assert [m.name for m in record.metrics] == list(
      tasks.get('regression').metrics)
  text = history.format_runs([record])
  assert 'rmse 12.5000 (+25.0%!)  mae 9.0000 (+12.5%!)  r2 0.4100' in text
  assert 'NOT BLESSED: gap rmse, mae\n' in text


def test_failed_checks_shorten_to_fit():
  def checks(*names):
    return [history.CheckRecord(*name.split(), '', 1.0, 0.0, '<=')
            for name in names]
  failed = checks('quality log_loss_skill', 'baseline auc', 'gap accuracy',
                  'gap auc', 'gap log_loss')
  assert history._failed(failed, 100) == (  # pylint: disable=protected-access
      'quality log_loss_skill, baseline auc, gap accuracy, auc, log_loss')
  assert history._failed(failed, 53) == (  # pylint: disable=protected-access
      'quality log_loss_skill, baseline auc, gap accuracy +2')
  assert history._failed(failed, 30) == (  # pylint: disable=protected-access
      'quality, baseline, gap (3)')


def test_without_gate_json_the_blessing_still_says_why(tmp_path):
  b = StoreBuilder(tmp_path)
  b.run('no-file')
  b.upstream()
  weaker = decision(
      'binary', {'accuracy': 0.8}, {'accuracy': 0.81},
      [check('baseline', 'auc', 0.9, 0.95, '>='),
       check('gap', 'accuracy', 0.01, 0.03)])
  b.gate('1', weaker, write_json=False)
  b.pusher()
  [record] = history.list_runs(b.path)
  assert record.blessed is False and record.reason == 'failed: baseline'
  assert [c.name for c in record.failed_checks] == ['baseline']
  assert record.metric('accuracy').gap == 0.01
  assert 'NOT BLESSED: baseline' in history.format_runs([record])


def test_no_store_and_an_empty_store(tmp_path):
  with pytest.raises(FileNotFoundError, match='no metadata store at'):
    history.list_runs(str(tmp_path / 'missing.sqlite'))
  empty = StoreBuilder(tmp_path)
  assert history.list_runs(empty.path) == []
  assert history.format_runs([]) == 'No runs in the metadata store.'
  assert json.loads(history.to_json([])) == []


def _constants(path, owner=None):
  """Module-level (or class ``owner``'s) string constants of a source file,
  read without importing it (it imports TFX)."""
  with open(os.path.join(REPO, path), encoding='utf-8') as f:
    tree = ast.parse(f.read())
  body = tree.body
  if owner:
    body = next(n for n in body
                if isinstance(n, ast.ClassDef) and n.name == owner).body
  return {t.id: n.value.value for n in body if isinstance(n, ast.Assign)
          and isinstance(n.value, ast.Constant) for t in n.targets
          if isinstance(t, ast.Name)}


def test_copied_constants_agree_with_their_sources():
  node_ids = _constants('pipeline/factory.py', 'NodeIds')
  assert history.EXAMPLE_GEN == node_ids['EXAMPLE_GEN']
  assert history.GATE == node_ids['GATE']
  assert history.PUSHER == node_ids['PUSHER']
  assert history.LEGACY_TASK == _constants(
      'pipeline/local_runner.py')['LEGACY_TASK']


def test_imports_neither_tensorflow_nor_tfx():
  code = ('import sys; from pipeline import history; '
          "print(sorted(m for m in ('tensorflow', 'tfx', 'apache_beam') "
          'if m in sys.modules))')
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True,
                       capture_output=True, text=True).stdout
  assert out.strip() == '[]'


def test_runs_command_prints_the_table_and_json(store, capsys):
  root = f'output.root={store.root}'
  assert cli.main(['runs', '--set', root]) == 0
  out = capsys.readouterr().out
  assert 'run-5-killed' in out and 'blessed, pushed 1700000001' in out
  assert cli.main(['runs', '--set', root, '--json']) == 0
  parsed = json.loads(capsys.readouterr().out)
  assert [r['run_id'] for r in parsed][:2] == ['run-5-killed',
                                               'run-4-same-again']


def test_runs_command_without_a_store_exits_2(tmp_path, capsys):
  assert cli.main(['runs', '--set', f'output.root={tmp_path}']) == 2
  assert 'metadata' in capsys.readouterr().err


def test_a_gap_over_its_limit_and_an_undecided_one_are_marked_apart():
  def gap(passed, within):
    return history._gap(history.MetricRecord(  # pylint: disable=protected-access
        'accuracy', 0.9, 0.92, 0.02, False, passed, gap_within=within))
  assert gap(True, True) == ' (+0.0200)'
  assert gap(False, True) == ' (+0.0200?)'  # Inconclusive or refused.
  assert gap(False, False) == ' (+0.0200!)'
  assert gap(False, None) == ' (+0.0200!)'  # A record without its limit.
  passes = gate_decision.recorded_point_passes
  assert passes({'value': 0.02, 'threshold': 0.03, 'comparison': '<='})
  assert passes({'value': float('nan'), 'threshold': 0.03,
                 'comparison': '<='}) is False
  assert passes({'value': 0.02, 'threshold': None, 'comparison': ''}) is None
