"""Stops the run before training when the data cannot be trained on.

Two checks, on what StatisticsGen and ExampleValidator already computed (no
pass over the data of its own):

* the label: every rule of the task (``core.tasks``: a readable label of
  the right type, no row without one, values in range) on every split's
  statistics, so that a run without the local pre-run check (Kubeflow)
  stops here too, before Transform, with an error naming the split and the
  column; and a class that a held-out split holds but train never shows
  (text labels), named with its rows, which the Trainer would otherwise
  meet only after Transform;
* anomalies: ExampleValidator only records them; this step writes a
  readable report and fails the run when any anomaly is blocking, so that
  no model is trained on data that does not match the schema. Anomaly types in
``WARN_ONLY`` are reported but do not block: a category value in the eval or
test split that the train split never showed (the schema is inferred from
train) is normal for tabular data and is handled by Transform's OOV buckets.
"""

import json
import math
import os
from typing import Dict, Iterable, List, Optional, Tuple

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils

from core import config as config_lib
from core import tasks

WARN_ONLY = frozenset({'ENUM_TYPE_UNEXPECTED_STRING_VALUES'})
TRAIN_SPLIT = 'train'  # The split Transform's vocabularies are learnt on.
ANOMALIES_FILE = 'SchemaDiff.pb'
STATISTICS_FILE = 'FeatureStats.pb'
_NUMERIC = (statistics_pb2.FeatureNameStatistics.INT,
            statistics_pb2.FeatureNameStatistics.FLOAT)


class DataAnomalyError(RuntimeError):
  """The data does not match the schema; the message lists what is wrong."""


def describe(anomalies_by_split: Dict[str, anomalies_pb2.Anomalies]
             ) -> Tuple[List[str], List[str]]:
  """(blocking, warnings): one readable line per anomaly."""
  blocking, warnings = [], []
  for split, anomalies in sorted(anomalies_by_split.items()):
    for feature, info in sorted(anomalies.anomaly_info.items()):
      types = {anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason}
      line = (f'split {split!r}, column {feature!r}: {info.short_description} '
              f'- {info.description}')
      (warnings if types <= WARN_ONLY else blocking).append(line)
    if anomalies.HasField('dataset_anomaly_info'):
      info = anomalies.dataset_anomaly_info
      blocking.append(f'split {split!r}, dataset: {info.short_description} - '
                      f'{info.description}')
  return blocking, warnings


def _rule_errors(rule: tasks.base.LabelRule, split: str,
                 stats: statistics_pb2.DatasetFeatureStatistics) -> List[str]:
  where = f'split {split!r}, label column {rule.column!r}'
  feature = next((f for f in stats.features
                  if f.path.step == [rule.column] or f.name == rule.column),
                 None)
  if feature is None:
    return [f'{where}: no such column in the data']
  errors = []
  numeric = feature.type in _NUMERIC
  if rule.numeric and not numeric:
    errors.append(f'{where}: holds text, expected {rule.expected}')
  common = (feature.num_stats.common_stats if feature.HasField('num_stats')
            else feature.string_stats.common_stats)
  if rule.complete and common.num_missing:
    errors.append(f'{where}: {common.num_missing} rows have no value, expected '
                  f'{rule.expected} in every row (data.label.drop_missing: '
                  'true drops such rows at ingestion)')
  if numeric and feature.HasField('num_stats'):
    num = feature.num_stats
    nans = max((h.num_nan for h in num.histograms), default=0)
    if rule.complete and nans:
      errors.append(f'{where}: {nans} rows hold NaN, expected {rule.expected}')
    if rule.complete and not all(map(math.isfinite, (num.min, num.max))):
      errors.append(f'{where}: holds an infinite value (min {num.min}, max '
                    f'{num.max}), expected {rule.expected}')
    if rule.min_value is not None and num.min < rule.min_value:
      errors.append(f'{where}: holds {num.min:g}, expected {rule.expected}')
    if rule.max_value is not None and num.max > rule.max_value:
      errors.append(f'{where}: holds {num.max:g}, expected {rule.expected}')
  return errors


def _value_counts(column: str, stats: statistics_pb2.DatasetFeatureStatistics
                  ) -> Optional[Dict[str, int]]:
  """Rows per value of a text column, or None where the statistics do not
  hold them all (numbers, or more values than the rank histogram keeps)."""
  feature = next((f for f in stats.features
                  if f.path.step == [column] or f.name == column), None)
  if feature is None or not feature.HasField('string_stats'):
    return None
  buckets = feature.string_stats.rank_histogram.buckets
  if feature.string_stats.unique > len(buckets):
    return None
  counts: Dict[str, int] = {}
  for b in buckets:  # Transform strips the spaces around a class.
    value = b.label.strip()
    counts[value] = counts.get(value, 0) + int(round(b.sample_count))
  return counts


def _unseen_values(rule: tasks.base.LabelRule, statistics
                   ) -> List[str]:
  """Per held-out split, the label values the train split never showed."""
  train = (_value_counts(rule.column, statistics[TRAIN_SPLIT])
           if TRAIN_SPLIT in statistics else None)
  if train is None:
    return []
  errors = []
  for split, stats in sorted(statistics.items()):
    counts = _value_counts(rule.column, stats) if split != TRAIN_SPLIT else None
    unseen = sorted((v for v in counts or () if v not in train),
                    key=lambda v: (-counts[v], v))
    if unseen:
      listed = ', '.join(
          f'{v!r} ({counts[v]} row{"" if counts[v] == 1 else "s"})'
          for v in unseen[:10])
      errors.append(
          f'split {split!r}, label column {rule.column!r}: the train split '
          f'never shows {listed}{", ..." if len(unseen) > 10 else ""}; no '
          'model can learn a class it never sees, and the gate refuses one '
          'that meets it (known_classes): merge rare classes into others, '
          'or drop their rows')
  return errors


def label_errors(task: tasks.Task, label: config_lib.LabelConfig,
                 statistics: Dict[str, statistics_pb2.DatasetFeatureStatistics]
                 ) -> List[str]:
  """Every way the label breaks the task's rules, one line each."""
  rules = task.label_rules(label)
  errors = [error for split, stats in sorted(statistics.items())
            for rule in rules for error in _rule_errors(rule, split, stats)]
  return errors or [error for rule in rules if rule.values_from_train
                    for error in _unseen_values(rule, statistics)]


def feature_errors(features: config_lib.FeaturesConfig,
                   statistics: Dict[str, statistics_pb2.DatasetFeatureStatistics]
                   ) -> List[str]:
  """Every configured feature column present in every split, and every
  numeric one holding finite numbers: what the pre-run check asks of the
  file, here on the statistics, one line per problem."""
  errors = []
  for split, stats in sorted(statistics.items()):
    by_name = {(f.path.step[0] if f.path.step else f.name): f
               for f in stats.features}
    for column in features.all:
      where = f'split {split!r}, feature column {column!r}'
      feature = by_name.get(column)
      if feature is None:
        errors.append(f'{where}: no such column in the data')
        continue
      if column not in features.numeric:
        continue
      if feature.type not in _NUMERIC:
        errors.append(f'{where}: holds text, expected numbers (or list it '
                      'in data.features.categorical)')
      elif feature.HasField('num_stats'):
        num = feature.num_stats
        if not all(map(math.isfinite, (num.min, num.max))):
          errors.append(f'{where}: holds an infinite value (min {num.min}, '
                        f'max {num.max}); replace it or leave the cell empty')
  return errors


def read_statistics(uri: str, splits: Iterable[str]
                    ) -> Dict[str, statistics_pb2.DatasetFeatureStatistics]:
  result = {}
  for split in splits:
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    with open(os.path.join(uri, f'Split-{split}', STATISTICS_FILE), 'rb') as f:
      stats.ParseFromString(f.read())
    result[split] = stats.datasets[0]
  return result


def read_anomalies(uri: str, splits) -> Dict[str, anomalies_pb2.Anomalies]:
  result = {}
  for split in splits:
    path = os.path.join(uri, f'Split-{split}', ANOMALIES_FILE)
    anomalies = anomalies_pb2.Anomalies()
    with open(path, 'rb') as f:
      anomalies.ParseFromString(f.read())
    result[split] = anomalies
  return result


class LabelDataError(DataAnomalyError):
  """The label cannot be read for the task; the message says where."""


class FeatureDataError(DataAnomalyError):
  """A feature column is missing or does not hold what the config says."""


@tfx.dsl.components.component
def AnomalyGate(  # pylint: disable=invalid-name
    statistics: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ExampleStatistics],
    anomalies: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ExampleAnomalies],
    report: tfx.dsl.components.OutputArtifact[
        tfx.types.standard_artifacts.String],
    task: tfx.dsl.components.Parameter[str],
    label: tfx.dsl.components.Parameter[str],
    features: tfx.dsl.components.Parameter[str] = '{}') -> None:
  """Fails the run on an unreadable label, missing or mistyped feature
  columns, or blocking anomalies; records the report either way. ``label``
  and ``features`` are those config sections as JSON."""
  label_config = config_lib.label_from_dict(json.loads(label))
  stats = read_statistics(statistics.uri, artifact_utils.decode_split_names(
      statistics.split_names))
  errors = label_errors(tasks.get(task), label_config, stats)
  if errors:
    report.value = ''.join(f'BLOCKING {line}\n' for line in errors)
    raise LabelDataError(
        f'the label cannot be read for task {task}; stopping before '
        'training:\n  ' + '\n  '.join(errors))
  errors = feature_errors(config_lib.features_from_dict(json.loads(features)),
                          stats)
  if errors:
    report.value = ''.join(f'BLOCKING {line}\n' for line in errors)
    raise FeatureDataError(
        'the feature columns do not hold what data.features says; stopping '
        'before training:\n  ' + '\n  '.join(errors))
  splits = artifact_utils.decode_split_names(anomalies.split_names)
  blocking, warnings = describe(read_anomalies(anomalies.uri, splits))
  lines = ([f'BLOCKING {line}' for line in blocking] +
           [f'warning {line}' for line in warnings]) or ['no anomalies']
  report.value = '\n'.join(lines) + '\n'
  if blocking:
    raise DataAnomalyError(
        'ExampleValidator found data that does not match the schema; '
        'stopping before training:\n  ' + '\n  '.join(blocking))
