"""The generalization gate's decision, as plain Python.

Inputs are metric values already computed (by TFMA, in the executor): for the
candidate on the held-out split and on a train sample, per slice, and for the
latest blessed model on the held-out split. The model is blessed only if every
check passes:

* quality: held-out accuracy beats the majority-class rate by a margin, and
  held-out AUC reaches its floor;
* baseline: the candidate is not worse than the latest blessed model;
* gap: train minus held-out (sign flipped for loss) is within ``max_gap``,
  overall and on each configured slice large enough to measure.
"""

import dataclasses
from typing import Dict, List, Mapping, Optional

from pipeline import config as config_lib

OVERALL = ''  # Slice name of the whole split.
# Slice name -> metric name (config short names plus example_count and
# mean_label) -> value.
SliceMetrics = Mapping[str, Mapping[str, float]]


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
    return (f'{self.kind} {self.metric}{where}: {self.value:.4f} '
            f'{self.comparison} {self.threshold:.4f} {verdict} ({self.detail})')


@dataclasses.dataclass(frozen=True)
class Decision:
  blessed: bool
  checks: List[Check]
  held_out: Dict[str, Dict[str, float]]
  train: Dict[str, Dict[str, float]]
  baseline: Optional[Dict[str, float]]
  majority_rate: float

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
        'majority_rate': self.majority_rate,
        'checks': [dataclasses.asdict(c) for c in self.checks],
        'metrics': {'held_out': self.held_out, 'train': self.train,
                    'baseline': self.baseline},
    }


def gap(metric: str, train: float, held_out: float) -> float:
  """Positive when the model does better on data it trained on."""
  higher_is_better = config_lib.METRICS[metric]
  return (train - held_out) if higher_is_better else (held_out - train)


def _at_least(kind, metric, slice_, value, threshold, detail) -> Check:
  return Check(kind, metric, slice_, value, threshold, '>=',
               value >= threshold, detail)


def _at_most(kind, metric, slice_, value, threshold, detail) -> Check:
  return Check(kind, metric, slice_, value, threshold, '<=',
               value <= threshold, detail)


def decide(held_out: SliceMetrics, train: SliceMetrics,
           baseline: Optional[Mapping[str, float]],
           gate: config_lib.GateConfig) -> Decision:
  """Applies every check; ``baseline`` is None when nothing is blessed yet."""
  test = held_out[OVERALL]
  mean_label = test['mean_label']
  majority = max(mean_label, 1.0 - mean_label)
  checks = [
      _at_least('quality', 'accuracy', OVERALL, test['accuracy'],
                majority + gate.accuracy_margin,
                f'majority class scores {majority:.4f}, margin '
                f'{gate.accuracy_margin}'),
      _at_least('quality', 'auc', OVERALL, test['auc'], gate.min_auc,
                'floor min_auc'),
  ]
  if baseline is not None:
    metric = gate.baseline_metric
    if config_lib.METRICS[metric]:
      checks.append(_at_least(
          'baseline', metric, OVERALL, test[metric],
          baseline[metric] - gate.baseline_tolerance,
          f'latest blessed model scores {baseline[metric]:.4f}, tolerance '
          f'{gate.baseline_tolerance}'))
    else:
      checks.append(_at_most(
          'baseline', metric, OVERALL, test[metric],
          baseline[metric] + gate.baseline_tolerance,
          f'latest blessed model scores {baseline[metric]:.4f}, tolerance '
          f'{gate.baseline_tolerance}'))
  for metric, max_gap in gate.max_gap.items():
    checks.append(_at_most(
        'gap', metric, OVERALL, gap(metric, train[OVERALL][metric],
                                    test[metric]), max_gap,
        f'train {train[OVERALL][metric]:.4f} vs held-out {test[metric]:.4f}'))
  for slice_name in sorted(set(held_out) & set(train) - {OVERALL}):
    counts = (held_out[slice_name].get('example_count', 0),
              train[slice_name].get('example_count', 0))
    if min(counts) < gate.slice_min_examples:
      continue  # Too few examples for a gap to mean anything.
    for metric in gate.max_gap:
      if metric == 'auc' and not 0 < held_out[slice_name]['mean_label'] < 1:
        continue  # AUC is undefined on a single-class slice.
      checks.append(_at_most(
          'gap', metric, slice_name,
          gap(metric, train[slice_name][metric], held_out[slice_name][metric]),
          gate.slice_max_gap,
          f'train {train[slice_name][metric]:.4f} vs held-out '
          f'{held_out[slice_name][metric]:.4f}'))
  return Decision(
      blessed=all(c.passed for c in checks), checks=checks,
      held_out={k: dict(v) for k, v in held_out.items()},
      train={k: dict(v) for k, v in train.items()},
      baseline=dict(baseline) if baseline is not None else None,
      majority_rate=majority)
