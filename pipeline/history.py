"""The run history: what every run in the metadata store read and decided.

``python -m pipeline runs`` lists the runs newest first: when each started,
the data ExampleGen read, whether the gate blessed the model and which checks
failed, the held-out metrics with their train-minus-held-out gaps, and the
version the Pusher published. Runs the gate never saw (a failed component, an
anomaly stop, a killed process) are listed with the node they stopped at.

Everything comes from ML Metadata and the files its artifacts point to (the
gate's ``gate.json``), never from the configuration, so any store can be
listed. No TensorFlow or TFX import: the command answers in about a second.
"""

import dataclasses
import datetime
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from components.gate import decision
from components.gate import keys as gate_keys
from core import tasks as tasks_lib
from pipeline import metadata

# factory.NodeIds; importing the factory would import TFX
# (tests/test_history.py checks the copies agree).
EXAMPLE_GEN = 'example_gen'
GATE = 'gate'
PUSHER = 'pusher'
# Runs recorded before the pipeline served several tasks were binary
# (local_runner.LEGACY_TASK).
LEGACY_TASK = 'binary'

_DONE = ('COMPLETE', 'CACHED')
WIDTH = 100


@dataclasses.dataclass(frozen=True)
class MetricRecord:
  """One task metric of the candidate, as the gate measured it."""
  name: str
  held_out: Optional[float]
  train: Optional[float]  # On the gate's train sample.
  gap: Optional[float]  # Train minus held-out, where the gate checked it.
  relative_gap: bool  # The gap is held_out / train - 1 (label units).
  gap_passed: Optional[bool]
  # Whether the gap's point estimate is within its limit (None: unknown):
  # a check that did not pass with this True was undecided, not over.
  gap_within: Optional[bool] = None


@dataclasses.dataclass(frozen=True)
class CheckRecord:
  """A gate check that failed."""
  kind: str  # quality, baseline, gap, ...
  metric: str
  slice: str
  value: Optional[float]
  threshold: Optional[float]
  comparison: str  # What passing needs: '>=' or '<='.

  @property
  def target(self) -> str:
    """'accuracy', or 'accuracy [company:X]' on a slice."""
    return self.metric + (f' [{self.slice}]' if self.slice else '')

  @property
  def name(self) -> str:
    return f'{self.kind} {self.target}'.strip()


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """One pipeline run, read back from the metadata store."""
  run_id: str
  started: str  # ISO 8601, local time: when MLMD recorded the run.
  seconds: float  # First execution's start to the last one's last update.
  state: str  # COMPLETE, FAILED at <node>, RUNNING at <node>, STOPPED after ..
  nodes: Tuple[Tuple[str, str], ...]  # (node id, state), pipeline order.
  data: Optional[str]  # What ExampleGen read: input base / file pattern.
  data_bytes: Optional[int]  # Its size, from the Examples' fingerprint.
  task: Optional[str]
  blessed: Optional[bool]  # None: the gate did not run.
  reason: Optional[str]  # The gate's, e.g. 'failed: gap'.
  failed_checks: Tuple[CheckRecord, ...]
  metrics: Tuple[MetricRecord, ...]  # The task's, in its order.
  pushed_version: Optional[str]
  pushed_to: Optional[str]
  newly_pushed: bool  # False when the version was already being served.

  def metric(self, name: str) -> Optional[MetricRecord]:
    return next((m for m in self.metrics if m.name == name), None)

  def to_dict(self) -> Dict[str, Any]:
    """JSON-ready: plain types, non-finite numbers as null."""
    record = _finite(dataclasses.asdict(self))
    record['nodes'] = dict(self.nodes)
    return record


def _finite(value):
  """``value`` with NaN and infinities (a saturated log loss) as None, so the
  JSON is strict."""
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  return value


def _output(runs: Mapping[str, metadata.NodeRun], node: str, key: str):
  found = runs[node].outputs.get(key) if node in runs else None
  return found[0] if found else None


def _read_json(uri: str, name: str) -> Optional[dict]:
  # Only local files: reading gs:// and the like would need TensorFlow.
  path = os.path.join(uri, name)
  if not os.path.isfile(path):
    return None
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def _state(runs: Mapping[str, metadata.NodeRun]) -> str:
  states = [(node, run.state) for node, run in runs.items()]
  failed = next((n for n, s in states if s == 'FAILED'), None)
  if failed:
    return f'FAILED at {failed}'
  # A killed process leaves its execution RUNNING: MLMD cannot tell the two.
  for node, state in states:
    if state not in _DONE:
      return f'{state} at {node}'
  if PUSHER in runs:
    return 'COMPLETE'
  # Stopped between executions (e.g. while resolving inputs).
  return f'STOPPED after {states[-1][0]}' if states else 'STOPPED'


def _data(runs: Mapping[str, metadata.NodeRun]
          ) -> Tuple[Optional[str], Optional[int]]:
  """(input base / pattern, total bytes) of what ExampleGen read."""
  if EXAMPLE_GEN not in runs:
    return None, None
  execution = runs[EXAMPLE_GEN].execution
  base = metadata.custom(execution, 'input_base')
  patterns = []
  config = metadata.custom(execution, 'input_config')
  if config:
    patterns = [s.get('pattern', '') for s in json.loads(config)['splits']]
  data = base
  if base and len(patterns) == 1:
    data = os.path.join(base, patterns[0])
  elif base and patterns:
    data = os.path.join(base, '{' + ','.join(patterns) + '}')
  examples = _output(runs, EXAMPLE_GEN, 'examples')
  fingerprint = metadata.custom(examples, 'input_fingerprint') if (
      examples is not None) else None
  # 'split:all,num_files:1,total_bytes:76951,...', a line per input split.
  sizes = [int(field.split(':', 1)[1])
           for line in (fingerprint or '').splitlines()
           for field in line.split(',') if field.startswith('total_bytes:')]
  return data, sum(sizes) if sizes else None


def _task_name(gate: Optional[dict], blessing,
               runs: Mapping[str, metadata.NodeRun]) -> Optional[str]:
  if gate is not None:
    return gate.get('task') or LEGACY_TASK
  if blessing is not None:
    return metadata.custom(blessing, 'task') or LEGACY_TASK
  # The gate did not run: any component told the task (the AnomalyGate is).
  for run in runs.values():
    task = metadata.custom(run.execution, 'task')
    if isinstance(task, str) and task:
      return task
  return None


def _number(value) -> Optional[float]:
  try:
    return float(value)
  except (TypeError, ValueError):
    return None


def _verdict(gate: Optional[dict], blessing, task_name: Optional[str]
             ) -> Tuple[str, Tuple[CheckRecord, ...], Tuple[MetricRecord, ...]]:
  """(reason, failed checks, metrics) from gate.json, else from the
  blessing's custom properties (no held-out values there, only checks)."""
  try:
    task = tasks_lib.get(task_name) if task_name else None
  except KeyError:
    task = None  # A task this code does not know: list the run without it.
  if gate is not None:
    checks = gate.get('checks', [])
    metrics = gate.get('metrics') or {}
    held_out = (metrics.get('held_out') or {}).get('', {})
    train = (metrics.get('train') or {}).get('', {})
    reason = gate.get('reason', '')
  else:
    reason = metadata.custom(blessing, 'blessing_message') or ''
    kinds = (metadata.custom(blessing, 'failed_checks') or '').split(',')
    checks = [{'kind': k, 'metric': '', 'slice': '', 'value': None,
               'threshold': None, 'comparison': '', 'passed': False}
              for k in kinds if k]
    names = task.metrics if task else ()
    checks += [{'kind': 'gap', 'metric': m, 'slice': '',
                'value': metadata.custom(blessing, f'gap_{m}'),
                'threshold': None, 'comparison': '', 'passed': None}
               for m in names if metadata.custom(blessing, f'gap_{m}')
               is not None]
    held_out = train = {}
  failed = tuple(
      CheckRecord(kind=c['kind'], metric=c['metric'], slice=c['slice'],
                  value=_number(c['value']), threshold=_number(c['threshold']),
                  comparison=c['comparison'])
      for c in checks if c['passed'] is False)
  gaps = {c['metric']: c for c in checks
          if c['kind'] == 'gap' and not c['slice']}
  records = tuple(
      MetricRecord(name=name, held_out=_number(held_out.get(name)),
                   train=_number(train.get(name)),
                   gap=_number(gaps[name]['value']) if name in gaps else None,
                   relative_gap=metric.relative_gap,
                   gap_passed=gaps[name]['passed'] if name in gaps else None,
                   gap_within=decision.recorded_point_passes(gaps[name])
                   if name in gaps else None)
      for name, metric in (task.metrics.items() if task else ()))
  return reason, failed, records


def _pushed(runs: Mapping[str, metadata.NodeRun],
            first_push: Mapping[str, int]
            ) -> Tuple[Optional[str], Optional[str], bool]:
  """(version, destination, newly pushed) of the run's PushedModel."""
  pushed = _output(runs, PUSHER, 'pushed_model')
  if pushed is None or metadata.custom(pushed, 'pushed') != 1:
    return None, None, False
  destination = metadata.custom(pushed, 'pushed_destination')
  version = metadata.custom(pushed, 'pushed_version') or (
      os.path.basename(destination.rstrip('/')) if destination else None)
  # The Pusher marks a model that is already served as pushed, to where it
  # already is; only the first artifact naming a destination published it.
  newly = (runs[PUSHER].state == 'COMPLETE' and
           first_push.get(destination) == pushed.id)
  return version, destination, newly


def _started(milliseconds: int) -> str:
  return datetime.datetime.fromtimestamp(
      milliseconds / 1000.0).astimezone().isoformat(timespec='seconds')


def list_runs(metadata_path: str) -> List[RunRecord]:
  """Every run in the SQLite store at ``metadata_path``, newest first.

  Raises FileNotFoundError when there is no store there.
  """
  if not os.path.isfile(metadata_path):
    raise FileNotFoundError(f'no metadata store at {metadata_path}')
  store = metadata.connect_sqlite(metadata_path)
  contexts = {c.name: c for c in store.get_contexts_by_type(
      metadata.PIPELINE_RUN)}
  first_push: Dict[str, int] = {}
  for artifact in sorted(store.get_artifacts_by_type('PushedModel'),
                         key=lambda a: a.id):
    if metadata.custom(artifact, 'pushed') == 1:
      first_push.setdefault(
          metadata.custom(artifact, 'pushed_destination'), artifact.id)
  records = []
  for run_id, runs in metadata.all_node_runs(store).items():
    executions = [r.execution for r in runs.values()]
    seconds = ((max(e.last_update_time_since_epoch for e in executions) -
                min(e.create_time_since_epoch for e in executions)) / 1000.0
               if executions else 0.0)
    blessing = _output(runs, GATE, 'blessing')
    gate = (_read_json(blessing.uri, gate_keys.GATE_JSON)
            if blessing is not None else None)
    task = _task_name(gate, blessing, runs)
    blessed, reason, failed, metrics = None, None, (), ()
    if blessing is not None:
      blessed = metadata.custom(blessing, 'blessed') == 1
      reason, failed, metrics = _verdict(gate, blessing, task)
    data, data_bytes = _data(runs)
    version, destination, newly = _pushed(runs, first_push)
    records.append(RunRecord(
        run_id=run_id,
        started=_started(contexts[run_id].create_time_since_epoch),
        seconds=seconds, state=_state(runs),
        nodes=tuple((n, r.state) for n, r in runs.items()),
        data=data, data_bytes=data_bytes, task=task, blessed=blessed,
        reason=reason, failed_checks=failed, metrics=metrics,
        pushed_version=version, pushed_to=destination, newly_pushed=newly))
  # all_node_runs is oldest first (by context id: the order runs began).
  return records[::-1]


def _value(value: Optional[float]) -> str:
  if value is None:
    return 'n/a'
  if not math.isfinite(value):
    return str(value)
  return f'{value:.4f}' if abs(value) < 100 else f'{value:,.1f}'


def _gap(metric: MetricRecord) -> str:
  if metric.gap is None:
    return ''
  text = (f'{metric.gap:+.1%}' if metric.relative_gap
          else f'{metric.gap:+.4f}')
  mark = ('' if metric.gap_passed is not False else
          '?' if metric.gap_within else '!')
  return f' ({text}{mark})'



def _failed(checks: Sequence[CheckRecord], width: int) -> str:
  """The failed checks in about ``width`` characters, by kind: in full
  ('gap accuracy, auc'), else naming fewer ('gap accuracy +1'), else kinds
  only ('quality, gap (2)'); the JSON has them all."""
  groups: List[Tuple[str, List[str]]] = []
  for check in checks:
    if groups and groups[-1][0] == check.kind:
      groups[-1][1].append(check.target)
    else:
      groups.append((check.kind, [check.target]))
  shown = [len(targets) for _, targets in groups]

  def render() -> str:
    parts = []
    for (kind, targets), k in zip(groups, shown):
      names = ', '.join(t for t in targets[:k] if t)
      if k == len(targets):
        parts.append(f'{kind} {names}'.strip())
      elif k:
        parts.append(f'{kind} {names} +{len(targets) - k}')
      else:
        parts.append(kind if len(targets) == 1
                     else f'{kind} ({len(targets)})')
    return ', '.join(parts)

  text = render()
  while len(text) > width and any(shown):
    # Name one check fewer in the group naming the most (the later on ties).
    most = max(shown)
    shown[max(i for i, k in enumerate(shown) if k == most)] -= 1
    text = render()
  return text


def _outcome(record: RunRecord, width: int = WIDTH) -> str:
  """The verdict, in about ``width`` characters."""
  if record.blessed is None:
    return record.state
  if record.blessed:
    if record.pushed_version:
      outcome = ('blessed, pushed ' if record.newly_pushed
                 else 'blessed, already served ') + record.pushed_version
    else:
      outcome = 'blessed, not pushed'
  else:
    outcome = 'NOT BLESSED: ' + (
        _failed(record.failed_checks, width - len('NOT BLESSED: '))
        or record.reason or '?')
  if record.state != 'COMPLETE':
    outcome += f'; {record.state}'
  return outcome


def _file_name(data: Optional[str]) -> str:
  return os.path.basename(data.rstrip('/')) if data else '-'


def format_runs(records: Sequence[RunRecord]) -> str:
  """A table, newest first: the run, when, the data and the outcome on one
  line; the held-out metrics with their gaps on the next, when the gate ran.
  """
  if not records:
    return 'No runs in the metadata store.'
  data_width = min(18, max(4, *(len(_file_name(r.data)) for r in records)))
  lines = [
      f"{'run id':<26}  {'started':<16}  {'data':<{data_width}}  outcome",
      '    held-out metrics (train-minus-held-out gap; ! over its max_gap, '
      '? within it but not shown to be)']
  for record in records:
    name = _file_name(record.data)
    if len(name) > data_width:
      name = name[:data_width - 3] + '...'
    line = (f'{record.run_id:<26}  {record.started[:16].replace("T", " "):<16}'
            f'  {name:<{data_width}}  ')
    line += _outcome(record, WIDTH - len(line))
    lines.append(line if len(line) <= WIDTH else line[:WIDTH - 3] + '...')
    if record.metrics and any(m.held_out is not None for m in record.metrics):
      lines.append('    ' + '  '.join(
          f'{m.name} {_value(m.held_out)}{_gap(m)}' for m in record.metrics))
  return '\n'.join(lines)


def to_json(records: Sequence[RunRecord]) -> str:
  """The records as a JSON list, newest first (strict JSON: no NaN)."""
  return json.dumps([r.to_dict() for r in records], indent=2,
                    allow_nan=False)
