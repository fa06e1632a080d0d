"""The gate's one TFMA pass, checked against the model called directly.

The gate scores the held-out split and a sample of the train split in a single
TFMA pass, telling the rows apart by a split tag it adds.  If rows leaked from
one side to the other, or the sample were not the one documented, the gap would
be computed on the wrong data while every downstream test still passed.  So
this recomputes, outside TFMA, the task's statistics (its accumulator, fed
the serving output the task names) on exactly the rows each side should hold
(the whole held-out split; the train rows with the smallest fingerprints, as
many as the held-out split holds within the configured bounds) by calling
the exported signatures, and compares.

Runs on the shared small run of tests/small_run.py.
"""

import dataclasses
import hashlib

import apache_beam as beam
from apache_beam.testing import util as beam_testing
import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

import small_run
from components.gate import executor as gate_executor
from core import config as config_lib
from core import tasks
from pipeline import metadata
from pipeline.factory import NodeIds

SAMPLE = 200
SLICE_FEATURE = 'payment_type'


def _split_records(examples, split):
  uri = artifact_utils.get_split_uris([examples], split)[0]
  files = sorted(tf.io.gfile.glob(io_utils.all_files_pattern(uri)))
  return [r.numpy() for r in
          tf.data.TFRecordDataset(files, compression_type='GZIP')]


def _direct_metrics(model_dir, records, label_key):
  """The task's statistics from the exported signatures themselves."""
  task, label_name, info = tasks.read_model_task(model_dir)
  assert label_name == label_key
  loaded = tf.saved_model.load(model_dir)
  batch = tf.constant(records)
  predictions = loaded.signatures['serving_default'](
      examples=batch)[task.prediction_key].numpy()
  labels = loaded.signatures['transform_features'](
      examples=batch)[label_key].numpy()
  accumulator = task.accumulator(info)
  for label, prediction in zip(labels, predictions):
    accumulator.add(label, prediction)
  return task, accumulator.result()


def _evaluate(tmp_path_factory, sample=SAMPLE):
  crashed = small_run.crashed_and_resumed(tmp_path_factory)
  path = crashed.result.metadata_path
  store = metadata.connect_sqlite(path)
  runs = metadata.node_runs(store)
  schema_proto = runs[NodeIds.SCHEMA_GEN].outputs['schema'][0]
  schema = artifact_utils.deserialize_artifact(
      store.get_artifact_types_by_id([schema_proto.type_id])[0], schema_proto)
  model, _, examples = small_run.run_artifacts(path)
  gate = dataclasses.replace(crashed.config.gate, train_sample_size=sample,
                             slice_features=(SLICE_FEATURE,),
                             slice_min_examples=1)
  out = str(tmp_path_factory.mktemp('gate_eval'))
  executor = gate_executor.Executor(gate_executor.Executor.Context(
      tmp_dir=out, unique_id='test'))
  label_key = crashed.config.data.label.name
  metrics = executor.evaluate(
      examples=[examples], schema_artifacts=[schema], model_uri=model.uri,
      baseline_uri=model.uri, label_key=label_key, held_out_split='test',
      train_split='train', gate=gate, output_uri=out)
  return {'metrics': metrics, 'examples': examples, 'label_key': label_key,
          'model_dir': path_utils.serving_model_path(model.uri)}


@pytest.fixture(scope='module')
def evaluated(tmp_path_factory):
  return _evaluate(tmp_path_factory)  # A small train split: sampled in process.


def _expected(evaluated, records):
  return _direct_metrics(evaluated['model_dir'], records,
                         evaluated['label_key'])


def _smallest(records, size):
  return sorted(records, key=lambda r: hashlib.blake2b(
      r, digest_size=8).digest())[:size]


def _floats(task, values):
  return {k: v for k, v in values.items() if k in task.gate_metric_names}


def _assert_same(tfma_metrics, expected):
  task, values = expected
  assert tfma_metrics['example_count'] == values['example_count']
  for name in task.gate_metric_names:
    assert tfma_metrics[name] == pytest.approx(values[name], abs=1e-6,
                                               nan_ok=True), name
  for name in task.gate_arrays:
    np.testing.assert_allclose(np.asarray(tfma_metrics[name], float),
                               np.asarray(values[name], float), atol=1e-6,
                               err_msg=name)


def test_held_out_side_is_exactly_the_held_out_split(evaluated):
  records = _split_records(evaluated['examples'], 'test')
  _assert_same(evaluated['metrics']['held_out']['candidate'][''],
               _expected(evaluated, records))


def test_train_side_is_the_documented_deterministic_sample(evaluated):
  records = _split_records(evaluated['examples'], 'train')
  assert len(records) > SAMPLE
  # The held-out split is smaller than train_sample_size: that many rows.
  assert len(_split_records(evaluated['examples'], 'test')) < SAMPLE
  _assert_same(evaluated['metrics']['train']['candidate'][''],
               _expected(evaluated, _smallest(records, SAMPLE)))


@pytest.mark.parametrize('in_beam', [False, True])
def test_the_train_sample_follows_the_held_out_split_size(
    evaluated, tmp_path_factory, monkeypatch, in_beam):
  if in_beam:  # Counted in Beam and cut to size through a side input.
    monkeypatch.setattr(gate_executor, 'IN_PROCESS_SAMPLE_MAX_BYTES', 0)
  small_floor = _evaluate(tmp_path_factory, sample=10)
  held_out = _split_records(evaluated['examples'], 'test')
  records = _split_records(evaluated['examples'], 'train')
  assert 10 < len(held_out) < len(records)
  train = small_floor['metrics']['train']['candidate']['']
  assert train['example_count'] == len(held_out)
  _assert_same(train, _expected(evaluated, _smallest(records, len(held_out))))


def test_train_sample_rows_is_bounded_on_both_sides():
  gate = config_lib.parse_gate({'train_sample_size': 2000,
                                'train_sample_max_size': 20000}, 'binary')
  assert gate_executor.train_sample_rows(gate, 300) == 2000
  assert gate_executor.train_sample_rows(gate, 7000) == 7000
  assert gate_executor.train_sample_rows(gate, 50000) == 20000


def test_slices_partition_each_side(evaluated):
  for side in ('held_out', 'train'):
    per_slice = evaluated['metrics'][side]['candidate']
    slices = [name for name in per_slice if name]
    assert slices and all(s.startswith(f'{SLICE_FEATURE}:') for s in slices)
    assert sum(per_slice[s]['example_count'] for s in slices) == (
        per_slice['']['example_count'])


def test_baseline_is_scored_on_the_held_out_rows(evaluated):
  # The run's own model as baseline: identical figures on the same rows.
  held_out = evaluated['metrics']['held_out']
  task = tasks.read_model_task(evaluated['model_dir'])[0]
  assert _floats(task, held_out['baseline']['']) == pytest.approx(
      _floats(task, held_out['candidate']['']), nan_ok=True)
  for name in task.gate_arrays:
    assert held_out['baseline'][''][name] == held_out['candidate'][''][name]


def test_a_large_train_split_is_sampled_in_beam_with_the_same_result(
    evaluated, tmp_path_factory, monkeypatch):
  monkeypatch.setattr(gate_executor, 'IN_PROCESS_SAMPLE_MAX_BYTES', 0)
  in_beam = _evaluate(tmp_path_factory)
  beam_side, in_process = (in_beam['metrics']['train'],
                           evaluated['metrics']['train'])
  # The same models, slices and keys; the same rows (exact counts). The
  # floats agree to float32 rounding: TFMA batches the rows otherwise on
  # the two paths, and a batch's size can move a prediction by one ulp.
  assert beam_side.keys() == in_process.keys()
  for model, slices in in_process.items():
    assert beam_side[model].keys() == slices.keys(), model
    for name, values in slices.items():
      got = beam_side[model][name]
      assert got.keys() == values.keys(), (model, name)
      assert got['example_count'] == values['example_count'], (model, name)
      for key, value in values.items():
        assert np.asarray(got[key], float) == pytest.approx(
            np.asarray(value, float), rel=1e-6, abs=1e-9, nan_ok=True), (
                model, name, key)


def test_beam_sample_equals_the_in_process_one():
  records = [f'example {i}'.encode() for i in range(300)]
  expected = gate_executor.smallest_fingerprints(records, 40)
  with beam.Pipeline() as p:
    sample = (p | beam.Create(records)
              | gate_executor._DeterministicSample(40))  # pylint: disable=protected-access
    beam_testing.assert_that(sample, beam_testing.equal_to(expected))
