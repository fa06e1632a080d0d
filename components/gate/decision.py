"""The generalization gate's decision, as plain Python, for any task.

Inputs are metric values already computed (by TFMA, in the executor, with
the task's own statistics: components/gate/metrics.py): for the candidate on
the held-out split and on a train sample, per slice, and for the latest
blessed model on the held-out split. The model is blessed only if every
check passes:

* quality: the task's absolute bounds on the held-out split, skill over the
  trivial predictor (``task.quality_checks``);
* baseline: on ``gate.baseline_metric`` the candidate is not worse than the
  latest blessed model by more than ``baseline_tolerance`` (absolute, or
  relative for a metric in the label's units such as RMSE);
* gap: train versus held-out (``task.metrics[m].gap``) is within
  ``max_gap``, overall, and within ``slice_max_gap`` on each configured
  slice large enough to measure.

A value that is NaN fails its check; no check is skipped for it.
"""

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

from core import config as config_lib
from core import tasks as tasks_lib

OVERALL = ''  # Slice name of the whole split.
# Slice name -> metric name (``task.gate_metric_names``; the executor's
# slices may also hold ``task.gate_arrays`` lists) -> value.
SliceMetrics = Mapping[str, Mapping[str, Any]]
# Metrics undefined on a slice that holds one class only (binary): their gap
# is not checked there, rather than failed.
_NEED_BOTH_CLASSES = ('auc', 'pr_auc')


@dataclasses.dataclass(frozen=True)
class Check:
  kind: str  # 'quality' | 'baseline' | 'gap'
  metric: str
  slice: str
  value: float
  threshold: float
  comparison: str  # '>=' or '<='
  passed: bool
  detail: str

  def describe(self) -> str:
    where = f' [{self.slice}]' if self.slice else ''
    verdict = 'ok' if self.passed else 'FAILED'
    return (f'{self.kind} {self.metric}{where}: {self.value:.6g} '
            f'{self.comparison} {self.threshold:.6g} {verdict} ({self.detail})')


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

  @property
  def failed(self) -> List[Check]:
    return [c for c in self.checks if not c.passed]

  @property
  def reason(self) -> str:
    if self.blessed:
      return 'all checks passed'
    kinds = sorted({c.kind for c in self.failed})
    return 'failed: ' + ', '.join(kinds)

  def to_dict(self) -> dict:
    return {
        'blessed': self.blessed,
        'reason': self.reason,
        'failed_checks': sorted({c.kind for c in self.failed}),
        'task': self.task,
        'checks': [dataclasses.asdict(c) for c in self.checks],
        'metrics': {'held_out': self.held_out, 'train': self.train,
                    'baseline': self.baseline},
        'arrays': {'held_out': self.held_out_arrays,
                   'train': self.train_arrays},
        'baseline_note': self.baseline_note,
    }


def _check(kind, metric, slice_, value, threshold, comparison,
           detail) -> Check:
  value, threshold = float(value), float(threshold)
  # NaN compares false either way: an unmeasurable value fails.
  passed = (value >= threshold if comparison == '>=' else value <= threshold)
  return Check(kind, metric, slice_, value, threshold, comparison, passed,
               detail)


def _split(task: tasks_lib.Task, per_slice: SliceMetrics
           ) -> Tuple[Dict[str, Dict[str, float]], Dict[str, list]]:
  """(slice -> floats, overall arrays): the arrays go to the report only."""
  arrays = set(task.gate_arrays)
  metrics = {s: {k: float(v) for k, v in values.items() if k not in arrays}
             for s, values in per_slice.items()}
  overall = per_slice.get(OVERALL, {})
  return metrics, {k: list(overall[k]) for k in task.gate_arrays
                   if k in overall}


def _both_classes(*slices: Mapping[str, float]) -> bool:
  return all(0.0 < s.get('mean_label', 0.5) < 1.0 for s in slices)


def _fmt(value: float) -> str:
  return f'{value:.4g}' if math.isfinite(value) else str(value)


def baseline_check(task: tasks_lib.Task, candidate: Mapping[str, float],
                   baseline: Mapping[str, float],
                   gate: config_lib.GateConfig) -> Check:
  """The candidate is no worse than the latest blessed model, within the
  tolerance (relative, ``baseline * (1 +- tol)``, for a metric in the
  label's units)."""
  name = gate.baseline_metric or task.default_baseline_metric
  metric = task.metrics[name]
  value, reference = float(candidate[name]), float(baseline[name])
  tol = gate.baseline_tolerance
  sign = 1.0 if metric.higher_is_better else -1.0
  if metric.relative_gap:
    threshold = reference * (1.0 - sign * tol)
    how = f'relative tolerance {tol:.2%}'
  else:
    threshold = reference - sign * tol
    how = f'tolerance {tol}'
  return _check('baseline', name, OVERALL, value, threshold,
                '>=' if metric.higher_is_better else '<=',
                f'latest blessed model scores {_fmt(reference)}, {how}')


def decide(task: tasks_lib.Task, held_out: SliceMetrics, train: SliceMetrics,
           baseline: Optional[Mapping[str, Any]],
           gate: config_lib.GateConfig,
           baseline_note: Optional[str] = None) -> Decision:
  """Applies every check.

  ``held_out`` and ``train``: the candidate's metrics by slice (``OVERALL``
  is the whole split); ``baseline``: the latest blessed model's on the whole
  held-out split, or None when there is none to compare with (then
  ``baseline_note`` may say why).
  """
  held, held_arrays = _split(task, held_out)
  trained, train_arrays = _split(task, train)
  base = (_split(task, {OVERALL: baseline})[0][OVERALL]
          if baseline is not None else None)
  test = held[OVERALL]
  checks = [_check('quality', q.metric, OVERALL, q.value, q.threshold,
                   q.comparison, q.detail)
            for q in task.quality_checks(test, gate)]
  if base is not None:
    checks.append(baseline_check(task, test, base, gate))

  def gap_check(metric, slice_name, limit):
    t, h = trained[slice_name][metric], held[slice_name][metric]
    kind = 'relative, held-out / train - 1' if task.metrics[
        metric].relative_gap else 'train vs held-out'
    return _check('gap', metric, slice_name, task.metrics[metric].gap(t, h),
                  limit, '<=', f'train {_fmt(t)} vs held-out {_fmt(h)} '
                  f'({kind})')

  for metric, limit in gate.max_gap.items():
    checks.append(gap_check(metric, OVERALL, limit))
  for slice_name in sorted(set(held) & set(trained) - {OVERALL}):
    counts = (held[slice_name].get('example_count', 0.0),
              trained[slice_name].get('example_count', 0.0))
    if min(counts) < gate.slice_min_examples:
      continue  # Too few examples for a gap to mean anything.
    for metric in gate.max_gap:
      if metric in _NEED_BOTH_CLASSES and not _both_classes(
          held[slice_name], trained[slice_name]):
        continue  # Undefined on a single-class slice.
      checks.append(gap_check(metric, slice_name, gate.slice_max_gap))
  return Decision(
      task=task.name, blessed=all(c.passed for c in checks), checks=checks,
      held_out=held, train=trained, baseline=base,
      held_out_arrays=held_arrays, train_arrays=train_arrays,
      baseline_note=baseline_note)
