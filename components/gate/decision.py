"""The generalization gate's decision, as plain Python, for any task.

Inputs are metric values already computed (by TFMA, in the executor, with
the task's own statistics: components/gate/metrics.py): for the candidate on
the held-out split and on a train sample, per slice, and for the latest
blessed model on the held-out split, each metric with its bootstrap
replicates (:func:`core.tasks.base.replicate_name`). The model is blessed
only if every check passes:

* quality: the task's absolute bounds on the held-out split, skill over the
  trivial predictor (``task.quality_checks``);
* baseline: on ``gate.baseline_metric`` the candidate minus the latest
  blessed model, on the same rows (a paired difference), is not worse than
  ``-baseline_tolerance`` (relative, ``candidate / baseline - 1``, for a
  metric in the label's units such as RMSE);
* gap: train versus held-out (``task.metrics[m].gap``) is within
  ``max_gap``, overall, and within ``slice_max_gap`` on each configured
  slice with at least ``slice_min_examples`` held-out rows.

Each check is decided on its statistic's ``gate.confidence`` percentile
interval over the replicates (gap replicates: a train replicate against the
held-out replicate of the same index, independent rows): wholly on the
passing side of the threshold it passes, wholly on the other side it fails,
across it the check is inconclusive, and ``gate.inconclusive_<kind>`` says
whether that blocks (the default for gap and baseline) or the point
estimate decides (the default for quality). A gap or baseline check that is
inconclusive with an interval wider than its threshold (half-width above
the gap limit or the tolerance) is refused: at these sizes that threshold
cannot be measured, and the message names the sizes.

Nothing is skipped to pass: a NaN or infinite value fails; a metric missing
on one side, a side or baseline without metrics, a statistic undefined on
some replicates, missing replicates and an empty set of gap checks are
refused checks, each with its reason.
"""

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from core import config as config_lib
from core import tasks as tasks_lib
from core.tasks import base as tasks_base

OVERALL = ''  # Slice name of the whole split.
# Slice name -> metric name (``task.gate_metric_names``, their replicates
# under ``replicate_name``; the executor's slices may also hold
# ``task.gate_arrays`` lists) -> value.
SliceMetrics = Mapping[str, Mapping[str, Any]]
PASS, FAIL, INCONCLUSIVE, REFUSED = 'pass', 'fail', 'inconclusive', 'refused'


@dataclasses.dataclass(frozen=True)
class Check:
  """One check. ``low``/``high``: the interval of ``value`` (None when the
  gate decides on point estimates, or for an exact count); ``verdict``:
  pass | fail | inconclusive | refused; ``passed``: whether it lets the
  model through (an inconclusive one only under the ``point`` rule, when
  its point estimate passes); ``rows_needed``: for an inconclusive or
  refused check, about how many held-out rows (the train sample following)
  would make its interval clear the threshold at the observed value and
  variance (the half-width shrinks as 1/sqrt(rows)); None when no number
  would (the value sits on the threshold)."""
  kind: str  # 'quality' | 'baseline' | 'gap'
  metric: str
  slice: str
  value: float
  threshold: float
  comparison: str  # '>=' or '<='
  passed: bool
  detail: str
  verdict: str = PASS
  low: Optional[float] = None
  high: Optional[float] = None
  rows_needed: Optional[int] = None

  def describe(self) -> str:
    where = f' [{self.slice}]' if self.slice else ''
    interval = (f' [{_fmt(self.low)}, {_fmt(self.high)}]'
                if self.low is not None else '')
    status = {PASS: 'ok', FAIL: 'FAILED', REFUSED: 'REFUSED'}.get(
        self.verdict,
        'inconclusive, ' + ('passed by its point estimate' if self.passed
                            else 'BLOCKS'))
    decide = undecided_note(dataclasses.asdict(self), None)
    needed = f'; {decide}' if decide else ''
    return (f'{self.kind} {self.metric}{where}: {_fmt(self.value)}{interval} '
            f'{self.comparison} {_fmt(self.threshold)} {status} '
            f'({self.detail}{needed})')


@dataclasses.dataclass(frozen=True)
class Decision:
  task: str
  blessed: bool
  checks: List[Check]
  held_out: Dict[str, Dict[str, float]]
  train: Dict[str, Dict[str, float]]
  baseline: Optional[Dict[str, float]]
  # Overall slice only: name -> list (``task.gate_arrays``).
  held_out_arrays: Dict[str, list]
  train_arrays: Dict[str, list]
  baseline_note: Optional[str] = None
  # Side -> slice -> metric -> [low, high] (baseline: metric -> [low,
  # high]); None when the gate decides on point estimates.
  intervals: Optional[Dict[str, Any]] = None
  # Rows on each side: 'held_out', 'train'.
  sizes: Dict[str, int] = dataclasses.field(default_factory=dict)
  # Slices with fewer than slice_min_examples held-out rows, not checked.
  unchecked_slices: List[Dict[str, Any]] = dataclasses.field(
      default_factory=list)
  confidence: Optional[float] = None
  # Check kind -> what an inconclusive check means ('block' or 'point').
  inconclusive_rules: Dict[str, str] = dataclasses.field(default_factory=dict)

  def _stopped_by(self, check: Check) -> str:
    """What stopped a check that did not pass: an inconclusive one under the
    ``point`` rule was stopped by its point estimate, a failure."""
    if (check.verdict == INCONCLUSIVE
        and self.inconclusive_rules.get(check.kind) == 'point'):
      return FAIL
    return check.verdict

  @property
  def failed(self) -> List[Check]:
    return [c for c in self.checks if not c.passed]

  @property
  def refusals(self) -> List[str]:
    return [c.detail for c in self.checks if c.verdict == REFUSED]

  @property
  def reason(self) -> str:
    if self.blessed:
      let_through = [c for c in self.checks if c.verdict == INCONCLUSIVE]
      return 'all checks passed' + (
          f' ({len(let_through)} inconclusive, passed by the point estimate)'
          if let_through else '')
    parts = []
    for word, verdicts in (('refused', (REFUSED,)),
                           ('inconclusive', (INCONCLUSIVE,)),
                           ('failed', (FAIL,))):
      kinds = sorted({c.kind for c in self.failed
                      if self._stopped_by(c) in verdicts})
      if kinds:
        parts.append(f'{word}: ' + ', '.join(kinds))
    return '; '.join(parts)

  def to_dict(self) -> dict:
    return {
        'blessed': self.blessed,
        'reason': self.reason,
        'failed_checks': sorted({c.kind for c in self.failed}),
        'task': self.task,
        'checks': [dataclasses.asdict(c) for c in self.checks],
        'metrics': {'held_out': self.held_out, 'train': self.train,
                    'baseline': self.baseline},
        'intervals': self.intervals,
        'confidence': self.confidence,
        'sizes': self.sizes,
        'refusals': self.refusals,
        'inconclusive_rules': self.inconclusive_rules,
        'unchecked_slices': self.unchecked_slices,
        'arrays': {'held_out': self.held_out_arrays,
                   'train': self.train_arrays},
        'baseline_note': self.baseline_note,
    }


def _fmt(value: Optional[float]) -> str:
  if value is None:
    return 'none'
  return f'{value:.4g}' if math.isfinite(value) else str(value)


def recorded_point_passes(check: Mapping[str, Any]) -> Optional[bool]:
  """Whether a recorded check's (gate.json's) point estimate passes its
  threshold: None when the record has no value or threshold, False for a
  value that is not finite (as the gate decides)."""
  if check.get('value') is None or check.get('threshold') is None:
    return None
  value = float(check['value'])
  return math.isfinite(value) and point_passes(
      value, float(check['threshold']), check['comparison'])


# A held-out split this many times the run's is past what a user can add:
# an estimate that close to its limit is not one more rows will decide.
MAX_ROWS_FACTOR = 100


def undecided_note(check: Mapping[str, Any],
                   held_out_rows: Optional[int]) -> str:
  """What to know of an inconclusive or refused check ('' for others):
  that its point estimate is past the limit already, and the held-out rows
  that would decide it, unless the estimate is so close to the limit that
  no realistic split would."""
  if check.get('verdict', PASS) not in (INCONCLUSIVE, REFUSED):
    return ''
  notes = []
  if (math.isfinite(check['value'])
      and recorded_point_passes(check) is False):
    notes.append('its point estimate is past the limit too')
  needed = check.get('rows_needed')
  if needed and held_out_rows and needed > MAX_ROWS_FACTOR * held_out_rows:
    notes.append('its estimate is too close to the limit for more held-out '
                 'rows to decide it')
  elif needed:
    notes.append(f'~{needed:,} held-out rows would decide it')
  return '; '.join(notes)


def measurable_note(check: Mapping[str, Any]) -> str:
  """For a refused gap or baseline check whose point estimate passes, the
  limit this data can measure: one as wide as the interval's half ('' for
  others; past the limit already, no looser limit the data measures would
  pass it)."""
  key = {'gap': f"gate.max_gap.{check['metric']}",
         'baseline': 'gate.baseline_tolerance'}.get(check['kind'])
  if (check.get('verdict') != REFUSED or not key or check.get('low') is None
      or not recorded_point_passes(check)):
    return ''
  half = (check['high'] - check['low']) / 2
  return f'measurable here: {key} >= {half:.2g}'


def point_passes(value: float, threshold: float, comparison: str) -> bool:
  """Whether ``value`` passes ``threshold`` by itself, without an interval."""
  # NaN compares false either way: an unmeasurable value fails.
  return value >= threshold if comparison == '>=' else value <= threshold


def _rows_needed(rows: int, value: float, low: float, high: float,
                 threshold: float, comparison: str) -> Optional[int]:
  """Held-out rows at which the half of the interval facing the threshold
  would end at it, at the observed value and variance."""
  # The end facing the threshold: the lower one when the value is above it
  # (a '>=' check passing, a '<=' one failing), else the upper one.
  above = value >= threshold if comparison == '>=' else value > threshold
  half = value - low if above else high - value
  room = abs(value - threshold)
  if room == 0 or half <= 0 or not rows:
    return None
  return int(math.ceil(rows * (half / room) ** 2))


class _Judge:
  """Turns a statistic, its replicates and a threshold into a Check."""

  def __init__(self, gate: config_lib.GateConfig, held_out_rows: int,
               train_rows: int):
    self.gate = gate
    self.intervals = gate.bootstrap_replicates > 0
    self.held_out_rows = held_out_rows
    self.train_rows = train_rows

  def refused(self, kind: str, metric: str, slice_: str, threshold: float,
              comparison: str, detail: str) -> Check:
    return Check(kind, metric, slice_, math.nan, float(threshold), comparison,
                 False, detail, REFUSED)

  def check(self, kind: str, metric: str, slice_: str, value, replicates,
            threshold, comparison: str, detail: str,
            scale: Optional[float] = None, exact: bool = False,
            rows: Optional[Tuple[int, int]] = None) -> Check:
    """``scale``: the distance the interval must be able to resolve (the gap
    limit, the baseline tolerance); an inconclusive interval wider than it
    is refused. ``exact``: a count, decided on its value. ``rows``: the
    (held-out, train) rows measured, when not the whole sides'."""
    value, threshold = float(value), float(threshold)
    point = point_passes(value, threshold, comparison)
    if not math.isfinite(value):
      return Check(kind, metric, slice_, value, threshold, comparison, False,
                   f'{detail}; the value is not finite', FAIL)
    if not self.intervals or exact:
      return Check(kind, metric, slice_, value, threshold, comparison, point,
                   detail, PASS if point else FAIL)
    if replicates is None:
      return Check(kind, metric, slice_, value, threshold, comparison, False,
                   f'{detail}; no bootstrap replicates to measure it with',
                   REFUSED)
    replicates = np.asarray(replicates, float)
    low, high = tasks_base.percentile_interval(replicates,
                                               self.gate.confidence)
    if not (math.isfinite(low) and math.isfinite(high)):
      undefined = int((~np.isfinite(replicates)).sum())
      return Check(kind, metric, slice_, value, threshold, comparison, False,
                   f'{detail}; undefined on {undefined} of {replicates.size} '
                   'bootstrap replicates (too few rows, or of one class, to '
                   'measure it)', REFUSED)
    if comparison == '>=':
      verdict = PASS if low >= threshold else FAIL if high < threshold else (
          INCONCLUSIVE)
    else:
      verdict = PASS if high <= threshold else FAIL if low > threshold else (
          INCONCLUSIVE)
    if verdict == PASS or verdict == FAIL:
      return Check(kind, metric, slice_, value, threshold, comparison,
                   verdict == PASS, detail, verdict, low, high)
    needed = _rows_needed(self.held_out_rows, value, low, high, threshold,
                          comparison)
    half_width = (high - low) / 2
    if scale is not None and half_width > scale:
      return Check(kind, metric, slice_, value, threshold, comparison, False,
                   f'{detail}; REFUSED, {self._sizes(kind, slice_, rows)} are '
                   f'too small to measure it against {_fmt(scale)}: the '
                   f'{self.gate.confidence:.0%} interval is '
                   f'+-{_fmt(half_width)}, wider than that; '
                   + _measurable(self.held_out_rows, half_width, scale),
                   REFUSED, low, high, needed)
    by_point = self.gate.inconclusive(kind) == 'point'
    if by_point:
      detail += ('; inconclusive, the point estimate ' +
                 ('passes' if point else 'fails'))
    return Check(kind, metric, slice_, value, threshold, comparison,
                 by_point and point, detail, INCONCLUSIVE, low, high, needed)

  def _sizes(self, kind: str, slice_: str,
             rows: Optional[Tuple[int, int]]) -> str:
    held_out, train = rows or (self.held_out_rows, self.train_rows)
    where = f'slice {slice_} of ' if slice_ else ''
    if kind == 'gap':
      return (f'{where}the held-out split ({held_out:,} rows) and of the '
              f'train sample ({train:,} rows)' if slice_ else
              f'the held-out split ({held_out:,} rows) and the train sample '
              f'({train:,} rows)')
    return f'{where}the held-out split ({held_out:,} rows)'


def _measurable(rows: int, half_width: float, scale: float) -> str:
  """How many held-out rows would bring the half-width down to ``scale``."""
  if scale <= 0:
    return 'no number of rows makes a threshold of 0 measurable'
  needed = int(math.ceil(rows * (half_width / scale) ** 2))
  return f'about {needed:,} held-out rows would make it measurable'


def _split(task: tasks_lib.Task, per_slice: SliceMetrics
           ) -> Tuple[Dict[str, Dict[str, float]], Dict[str, list],
                      Dict[str, Dict[str, np.ndarray]]]:
  """(slice -> floats, overall arrays, slice -> replicates): the arrays go
  to the report only."""
  arrays = set(task.gate_arrays)
  suffix = tasks_base.REPLICATE_SUFFIX
  metrics: Dict[str, Dict[str, float]] = {}
  replicates: Dict[str, Dict[str, np.ndarray]] = {}
  for slice_name, values in per_slice.items():
    metrics[slice_name], replicates[slice_name] = {}, {}
    for name, value in values.items():
      if name in arrays:
        continue
      if name.endswith(suffix):
        replicates[slice_name][name[:-len(suffix)]] = np.asarray(value, float)
      else:
        metrics[slice_name][name] = float(value)
  overall = per_slice.get(OVERALL, {})
  return metrics, {k: list(overall[k]) for k in task.gate_arrays
                   if k in overall}, replicates


def _intervals(replicates: Mapping[str, Mapping[str, np.ndarray]],
               confidence: float) -> Dict[str, Dict[str, List[float]]]:
  return {s: {m: list(tasks_base.percentile_interval(r, confidence))
              for m, r in values.items()}
          for s, values in replicates.items()}


def baseline_check(task: tasks_lib.Task, candidate: Mapping[str, float],
                   baseline: Mapping[str, float],
                   gate: config_lib.GateConfig,
                   candidate_replicates: Optional[Mapping[str, Any]] = None,
                   baseline_replicates: Optional[Mapping[str, Any]] = None,
                   judge: Optional[_Judge] = None) -> Check:
  """The candidate minus the latest blessed model on the same rows (relative,
  ``candidate / baseline - 1``, for a metric in the label's units) is no
  worse than the tolerance; replicate b of one model minus replicate b of
  the other is the paired bootstrap of the difference."""
  judge = judge or _Judge(gate, int(candidate.get('example_count', 0)), 0)
  name = gate.baseline_metric or task.default_baseline_metric
  metric = task.metrics[name]
  tol = gate.baseline_tolerance
  comparison = '>=' if metric.higher_is_better else '<='
  threshold = -tol if metric.higher_is_better else tol
  if name not in baseline:
    return judge.refused(
        'baseline', name, OVERALL, threshold, comparison,
        'the latest blessed model exists but yielded no metrics on the '
        'held-out split: the candidate cannot be shown to be no worse')

  def difference(c, b):
    return (tasks_base.ratio(c, b) - 1.0 if metric.relative_gap
            else np.asarray(c, float) - np.asarray(b, float))

  value, reference = float(candidate[name]), float(baseline[name])
  replicates = None
  ours = (candidate_replicates or {}).get(name)
  theirs = (baseline_replicates or {}).get(name)
  if ours is not None and theirs is not None:
    replicates = difference(ours, theirs)
  how = (f'relative, candidate / latest blessed - 1, tolerance {tol:.2%}'
         if metric.relative_gap else f'candidate - latest blessed, tolerance '
         f'{tol}')
  return judge.check(
      'baseline', name, OVERALL, float(difference(value, reference)),
      replicates, threshold, comparison,
      f'candidate {_fmt(value)} vs latest blessed model {_fmt(reference)} on '
      f'the same rows ({how})', scale=tol)


def decide(task: tasks_lib.Task, held_out: SliceMetrics, train: SliceMetrics,
           baseline: Optional[Mapping[str, Any]],
           gate: config_lib.GateConfig,
           baseline_note: Optional[str] = None) -> Decision:
  """Applies every check.

  ``held_out`` and ``train``: the candidate's metrics by slice (``OVERALL``
  is the whole split); ``baseline``: the latest blessed model's on the whole
  held-out split (empty if it yielded none: refused), or None when there is
  none to compare with (then ``baseline_note`` may say why).
  """
  held, held_arrays, held_reps = _split(task, held_out)
  trained, train_arrays, train_reps = _split(task, train)
  base, base_reps = None, None
  if baseline is not None:
    split = _split(task, {OVERALL: baseline})
    base, base_reps = split[0][OVERALL], split[2][OVERALL]
  sizes = {'held_out': int(held.get(OVERALL, {}).get('example_count', 0)),
           'train': int(trained.get(OVERALL, {}).get('example_count', 0))}
  judge = _Judge(gate, sizes['held_out'], sizes['train'])
  intervals_on = gate.bootstrap_replicates > 0
  checks: List[Check] = []

  test = held.get(OVERALL, {})
  test_reps = (held_reps.get(OVERALL) or None) if intervals_on else None
  if test:
    for q in task.quality_checks(test, gate, test_reps):
      checks.append(judge.check('quality', q.metric, OVERALL, q.value,
                                q.replicates, q.threshold, q.comparison,
                                q.detail, exact=q.exact))
  else:
    checks.append(judge.refused(
        'quality', 'held_out', OVERALL, math.nan, '>=',
        'the held-out split yielded no metrics (no rows?): nothing was '
        'measured'))
  if base is not None:
    checks.append(baseline_check(task, test, base, gate,
                                 held_reps.get(OVERALL), base_reps, judge))

  def gap_check(metric: str, slice_name: str, limit: float) -> Check:
    t, h = trained.get(slice_name, {}), held.get(slice_name, {})
    where = f' of slice {slice_name}' if slice_name else ''
    for side, values in (('train sample', t), ('held-out split', h)):
      if metric not in values:
        return judge.refused(
            'gap', metric, slice_name, limit, '<=',
            f'{metric} was not measured on the {side}{where}: its gap cannot '
            'be computed')
    m = task.metrics[metric]
    replicates = None
    ours = train_reps.get(slice_name, {}).get(metric)
    theirs = held_reps.get(slice_name, {}).get(metric)
    if ours is not None and theirs is not None:
      replicates = m.gap(ours, theirs)
    kind = ('relative, held-out / train - 1' if m.relative_gap
            else 'train vs held-out')
    return judge.check(
        'gap', metric, slice_name, m.gap(t[metric], h[metric]), replicates,
        limit, '<=', f'train {_fmt(t[metric])} vs held-out {_fmt(h[metric])} '
        f'({kind})', scale=limit,
        rows=(int(h.get('example_count', 0)), int(t.get('example_count', 0))))

  if not gate.max_gap:
    checks.append(judge.refused('gap', '', OVERALL, math.nan, '<=',
                                'no gap checks are configured (gate.max_gap '
                                'is empty): generalization is not measured'))
  for metric, limit in gate.max_gap.items():
    checks.append(gap_check(metric, OVERALL, limit))
  unchecked = []
  for slice_name in sorted((set(held) | set(trained)) - {OVERALL}):
    held_rows = int(held.get(slice_name, {}).get('example_count', 0))
    train_rows = int(trained.get(slice_name, {}).get('example_count', 0))
    if held_rows < gate.slice_min_examples:
      unchecked.append({'slice': slice_name, 'held_out_rows': held_rows,
                        'train_rows': train_rows})
      continue
    for metric in gate.max_gap:
      if train_rows < gate.slice_min_examples:
        checks.append(judge.refused(
            'gap', metric, slice_name, gate.slice_max_gap, '<=',
            f'slice {slice_name} has {held_rows:,} held-out rows but '
            f'{train_rows:,} in the train sample, fewer than '
            f'slice_min_examples ({gate.slice_min_examples}): its gap cannot '
            'be measured'))
      else:
        checks.append(gap_check(metric, slice_name, gate.slice_max_gap))
  intervals = None
  if intervals_on:
    intervals = {
        'held_out': _intervals(held_reps, gate.confidence),
        'train': _intervals(train_reps, gate.confidence),
        'baseline': (_intervals({OVERALL: base_reps}, gate.confidence)[OVERALL]
                     if base_reps is not None else None)}
  return Decision(
      task=task.name, blessed=all(c.passed for c in checks), checks=checks,
      held_out=held, train=trained, baseline=base,
      held_out_arrays=held_arrays, train_arrays=train_arrays,
      baseline_note=baseline_note, intervals=intervals, sizes=sizes,
      unchecked_slices=unchecked,
      confidence=gate.confidence if intervals_on else None,
      inconclusive_rules={k: gate.inconclusive(k)
                          for k in ('quality', 'baseline', 'gap')})
