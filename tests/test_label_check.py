"""The in-pipeline label check: each task's rules on hand-made statistics.

This is what stops a run that never had the local pre-run check (Kubeflow)
before Transform when its label cannot be read for the task.
"""

import pytest
from tensorflow_metadata.proto.v0 import statistics_pb2

from components import validation
from core import config as config_lib
from core import tasks

FS = statistics_pb2.FeatureNameStatistics


def _numeric(name, *, missing=0, nan=0, lo=0.0, hi=1.0, kind=FS.INT):
  feature = FS(name=name, type=kind)
  feature.num_stats.common_stats.num_missing = missing
  feature.num_stats.common_stats.num_non_missing = 100 - missing
  feature.num_stats.min, feature.num_stats.max = lo, hi
  feature.num_stats.histograms.add(num_nan=nan)
  return feature


def _text(name, *, missing=0):
  feature = FS(name=name, type=FS.STRING)
  feature.string_stats.common_stats.num_missing = missing
  feature.string_stats.common_stats.num_non_missing = 100 - missing
  return feature


def _stats(*features):
  return {'train': statistics_pb2.DatasetFeatureStatistics(
      num_examples=100, features=list(features))}


def _errors(task, label, *features):
  return validation.label_errors(
      tasks.get(task), config_lib.label_from_dict(label), _stats(*features))


@pytest.mark.parametrize('task, label, feature', [
    ('binary', {'name': 'y'}, _numeric('y')),
    ('binary', {'name': 'y', 'positive_value': 'yes'}, _text('y')),
    ('binary', {'name': 'big', 'column': 'tips', 'threshold': 0.2},
     _numeric('tips', missing=5, lo=0, hi=80, kind=FS.FLOAT)),
    ('multiclass', {'name': 'species'}, _text('species')),
    ('multiclass', {'name': 'digit'}, _numeric('digit', lo=0, hi=9)),
    ('regression', {'name': 'price'}, _numeric('price', lo=-5, hi=1e6,
                                                kind=FS.FLOAT)),
])
def test_readable_labels_pass(task, label, feature):
  assert _errors(task, label, feature) == []


@pytest.mark.parametrize('task, label, feature, message', [
    ('binary', {'name': 'y'}, _numeric('y', hi=2), 'holds 2, expected 0 or 1'),
    ('binary', {'name': 'y'}, _text('y'), 'holds text, expected 0 or 1'),
    ('binary', {'name': 'y'}, _numeric('y', missing=3),
     '3 rows have no value'),
    ('binary', {'name': 'big', 'column': 'tips', 'threshold': 0.2},
     _text('tips'), "label column 'tips': holds text"),
    ('multiclass', {'name': 'species'}, _text('species', missing=1),
     '1 rows have no value, expected a class'),
    ('regression', {'name': 'price'}, _text('price'),
     'holds text, expected a finite number'),
    ('regression', {'name': 'price'},
     _numeric('price', nan=4, kind=FS.FLOAT), '4 rows hold NaN'),
    ('regression', {'name': 'price'},
     _numeric('price', hi=float('inf'), kind=FS.FLOAT), 'infinite value'),
    ('regression', {'name': 'price', 'target_transform': 'log'},
     _numeric('price', lo=-1, kind=FS.FLOAT), 'holds -1, expected a finite '
     'number >= 0'),
    ('regression', {'name': 'price'}, _numeric('other'),
     'no such column'),
])
def test_unreadable_labels_name_split_and_column(task, label, feature,
                                                 message):
  errors = _errors(task, label, feature)
  assert errors, 'no error'
  assert any(message in e for e in errors), errors
  assert all(e.startswith("split 'train', label column ") for e in errors)


FEATURES = config_lib.features_from_dict(
    {'numeric': ['fare', 'miles'], 'categorical': ['company']})


def test_configured_features_in_every_split_pass():
  assert validation.feature_errors(FEATURES, _stats(
      _numeric('fare', kind=FS.FLOAT), _numeric('miles'),
      _text('company'))) == []


@pytest.mark.parametrize('features, message', [
    ((_numeric('fare', kind=FS.FLOAT), _text('company')),
     "split 'train', feature column 'miles': no such column in the data"),
    ((_numeric('fare', kind=FS.FLOAT), _text('miles'), _text('company')),
     "feature column 'miles': holds text, expected numbers"),
    ((_numeric('fare', kind=FS.FLOAT, hi=float('inf')), _numeric('miles'),
      _text('company')), "feature column 'fare': holds an infinite value"),
])
def test_missing_or_mistyped_features_are_named(features, message):
  errors = validation.feature_errors(FEATURES, _stats(*features))
  assert len(errors) == 1 and message in errors[0], errors


def _classes(name, counts, unique=None):
  feature = _text(name)
  feature.string_stats.unique = len(counts) if unique is None else unique
  for label, count in counts.items():
    feature.string_stats.rank_histogram.buckets.add(label=label,
                                                    sample_count=count)
  return feature


def _split_stats(**features):
  return {split: statistics_pb2.DatasetFeatureStatistics(
      num_examples=100, features=[feature])
          for split, feature in features.items()}


def test_a_held_out_class_that_train_never_shows_is_named_with_its_rows():
  task, label = tasks.get('multiclass'), config_lib.label_from_dict(
      {'name': 'engine'})
  train = _classes('engine', {'Turbo-fan': 90, 'Turbo-jet': 10})
  errors = validation.label_errors(task, label, _split_stats(
      train=train, eval=_classes('engine', {'Turbo-fan': 20, '4 Cycle': 1}),
      test=_classes('engine', {'Turbo-fan': 19, 'Turbo-prop': 2,
                               '4 Cycle': 1})))
  assert len(errors) == 2, errors
  assert errors[0].startswith("split 'eval', label column 'engine': the "
                              "train split never shows '4 Cycle' (1 row)")
  assert "never shows 'Turbo-prop' (2 rows), '4 Cycle' (1 row);" in errors[1]
  assert 'merge rare classes' in errors[1]
  # Every held-out class in train: nothing to say.
  assert validation.label_errors(task, label, _split_stats(
      train=train, test=_classes('engine', {'Turbo-jet': 3}))) == []
  # A train histogram cut short cannot tell: no error rather than a false one.
  assert validation.label_errors(task, label, _split_stats(
      train=_classes('engine', {'Turbo-fan': 90}, unique=1500),
      test=_classes('engine', {'Turbo-jet': 3}))) == []
