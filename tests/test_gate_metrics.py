"""The gate's TFMA metric (components/gate/metrics.py), and the gate's
executor on tiny hand-made models of each task.

First the combiner alone, fed the ``StandardMetricInputs`` TFMA builds (one
example each, predictions keyed by output and, with a baseline, by model):
it must hand the task's accumulator a multiclass label as the class index
and the K probabilities as they are, neither one-hot nor flattened.

Then real TFMA runs, through the executor, on SavedModels written here with
the two signatures the Trainer exports (``serving_default`` with the task's
outputs, ``transform_features`` with the label) and a ``task.json``: the
metrics TFMA computes for candidate and baseline, per split and slice, and
their bootstrap replicates, must equal the task's accumulator fed the
models' own outputs directly with each row's bootstrap key (a hash of its
raw bytes, in its side's stream).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_model_analysis.metrics import metric_types
import tensorflow_model_analysis as tfma
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components.gate import executor as gate_executor
from components.gate import metrics
from core import config as config_lib
from core import tasks
from core.tasks import base

CLASSES = ['a', 'b', 'c']
INFOS = {
    'binary': {'positive_rate': 0.4},
    'multiclass': {'classes': CLASSES, 'frequencies': [0.5, 0.3, 0.2]},
    'regression': {'mean': 1.0, 'std': 2.0, 'target_transform': None,
                   'transformed_mean': 1.0, 'transformed_std': 2.0},
}


# --------------------------------------------------------------------------
# The combiner alone.


def _eval_config(task, models=('',)):
  return tfma.EvalConfig(model_specs=[
      tfma.ModelSpec(name=m, label_key='label',
                     prediction_key=task.prediction_key) for m in models])


def _combine(task, info, inputs, eval_config, model_name='', replicates=0):
  [computation] = metrics.TaskMetrics(task.name, info, replicates
                                      ).computations(
      eval_config=eval_config, model_names=[model_name])
  combiner = computation.combiner
  # Two accumulators merged, as Beam does across bundles.
  halves = [inputs[:len(inputs) // 2], inputs[len(inputs) // 2:]]
  accumulators = []
  for half in halves:
    acc = combiner.create_accumulator()
    for element in half:
      acc = combiner.add_input(acc, element)
    accumulators.append(acc)
  merged = combiner.merge_accumulators(iter(accumulators))
  return computation.keys, combiner.extract_output(merged)


def _direct(task, info, labels, predictions, keys=None, replicates=0):
  acc = task.accumulator(info, replicates)
  keys = [None] * len(labels) if keys is None else keys
  for y, p, k in zip(labels, predictions, keys):
    acc.add(np.asarray(y), np.asarray(p), k)
  return base.flatten(acc.result())


def _serving(task, prediction):
  """One example's serving outputs, as TFMA unbatches them."""
  if task.name == 'multiclass':
    return {'probabilities': np.asarray(prediction, np.float32),
            'classes': np.array([c.encode() for c in CLASSES])}
  return {task.prediction_key: np.asarray([prediction], np.float32)}


CASES = {
    'binary': ([0, 1, 1, 0, 1], [0.2, 0.7, 0.4, 0.9, 0.6]),
    'multiclass': ([0, 2, 1, 1, -1], [[.7, .2, .1], [.1, .2, .7], [.3, .4, .3],
                                      [.5, .3, .2], [.1, .1, .8]]),
    'regression': ([1.0, 2.5, -0.5, 4.0], [1.2, 2.0, 0.0, 3.0]),
}


def _label(task, y):
  dtype = np.float32 if task.name == 'regression' else np.int64
  return np.array([y], dtype)  # [1]: the [n, 1] label, unbatched.


def _assert_outputs(task, output, expected, model_name=''):
  by_name = {k.name: v for k, v in output.items()}
  assert all(k.model_name == model_name for k in output)
  assert set(by_name) == set(metrics.key_names(task))
  for name in task.gate_metric_names:
    assert by_name[name] == pytest.approx(expected[name], nan_ok=True), name
  for name in task.gate_arrays:
    assert isinstance(by_name[name], np.ndarray)
    np.testing.assert_allclose(by_name[name], np.asarray(expected[name]),
                               rtol=1e-6)


@pytest.mark.parametrize('name', list(CASES))
def test_the_combiner_hands_the_task_accumulator_what_it_expects(name):
  task = tasks.get(name)
  labels, predictions = CASES[name]
  inputs = [metric_types.StandardMetricInputs(
      labels=_label(task, y), predictions=_serving(task, p),
      example_weights=None) for y, p in zip(labels, predictions)]
  keys, output = _combine(task, INFOS[name], inputs, _eval_config(task))
  assert set(keys) == set(output)
  expected = _direct(task, INFOS[name], labels,
                     np.asarray(predictions, np.float32))
  _assert_outputs(task, output, expected)


def test_multiclass_labels_are_neither_one_hot_nor_flattened():
  task = tasks.get('multiclass')
  seen = []

  class Spy:
    def __init__(self, inner):
      self.inner = inner

    def add(self, label, prediction, key=None):
      seen.append((label.shape, prediction.shape, int(label[0]), key))
      self.inner.add(label, prediction, key)

    def merge(self, other):
      self.inner.merge(other.inner)

    def result(self):
      return self.inner.result()

  [computation] = metrics.TaskMetrics(task.name, INFOS['multiclass']
                                      ).computations(
      eval_config=_eval_config(task))
  combiner = computation.combiner
  acc = Spy(combiner.create_accumulator())
  labels, predictions = CASES['multiclass']
  for y, p in zip(labels, predictions):
    combiner.add_input(acc, metric_types.StandardMetricInputs(
        labels=_label(task, y), predictions=_serving(task, p)))
  assert seen == [((1,), (3,), y, None) for y in labels]


@pytest.mark.parametrize('name', list(CASES))
def test_with_replicates_the_combiner_weights_rows_by_their_key(name):
  task = tasks.get(name)
  labels, predictions = CASES[name]
  keys = [base.bootstrap_key(f'row {i}'.encode(), 0)
          for i in range(len(labels))]
  inputs = [metric_types.StandardMetricInputs(
      labels=_label(task, y), predictions=_serving(task, p),
      features={metrics.KEY_FEATURE: np.array([k])})
            for y, p, k in zip(labels, predictions, keys)]
  [computation] = metrics.TaskMetrics(task.name, INFOS[name], 100
                                      ).computations(
      eval_config=_eval_config(task))
  # TFMA is asked for the key column alone, besides labels and predictions.
  [preprocessor] = computation.preprocessors
  assert preprocessor.include_filter['features'] == {metrics.KEY_FEATURE: {}}
  keys_out, output = _combine(task, INFOS[name], inputs, _eval_config(task),
                              replicates=100)
  by_name = {k.name: v for k, v in output.items()}
  assert set(by_name) == set(metrics.key_names(task, 100))
  expected = _direct(task, INFOS[name], labels,
                     np.asarray(predictions, np.float32), keys, 100)
  for metric in task.gate_metric_names:
    replicates = by_name[base.replicate_name(metric)]
    assert replicates.shape == (100,)
    np.testing.assert_allclose(replicates,
                               expected[base.replicate_name(metric)],
                               rtol=1e-9, err_msg=metric)


def test_with_replicates_a_row_without_its_key_is_refused():
  task = tasks.get('binary')
  [computation] = metrics.TaskMetrics('binary', INFOS['binary'], 100
                                      ).computations(
      eval_config=_eval_config(task))
  combiner = computation.combiner
  with pytest.raises(ValueError, match=metrics.KEY_FEATURE):
    combiner.add_input(combiner.create_accumulator(),
                       metric_types.StandardMetricInputs(
                           labels=_label(task, 1),
                           predictions=_serving(task, 0.7)))


def test_with_a_baseline_each_model_reads_its_own_predictions():
  task = tasks.get('binary')
  labels, predictions = CASES['binary']
  other = [1 - p for p in predictions]
  config = _eval_config(task, models=('candidate', 'baseline'))
  inputs = [metric_types.StandardMetricInputs(
      labels=_label(task, y),
      predictions={'candidate': _serving(task, p),
                   'baseline': _serving(task, q)})
            for y, p, q in zip(labels, predictions, other)]
  for model, preds in (('candidate', predictions), ('baseline', other)):
    _, output = _combine(task, INFOS['binary'], inputs, config, model)
    _assert_outputs(task, output, _direct(
        task, INFOS['binary'], labels, np.asarray(preds, np.float32)), model)


def test_metric_config_round_trips_through_tfma():
  from tensorflow_model_analysis.metrics import metric_specs
  task = tasks.get('multiclass')
  config = metrics.metric_config(task, INFOS['multiclass'])
  assert config.module == metrics.__name__
  instance = metric_specs.metric_instance(config)
  assert isinstance(instance, metrics.TaskMetrics)
  assert instance.get_config()['task'] == 'multiclass'
  assert instance.get_config()['info'] == INFOS['multiclass']
  assert instance.get_config()['replicates'] == 0
  config = metrics.metric_config(task, INFOS['multiclass'], 200)
  assert metric_specs.metric_instance(config).get_config()['replicates'] == 200


def test_an_unknown_task_is_refused():
  with pytest.raises(KeyError, match='unknown task'):
    metrics.TaskMetrics('ranking', {})


# --------------------------------------------------------------------------
# Real TFMA runs through the executor, on tiny models of each task.

ROWS = {'train': 120, 'test': 90}
REPLICATES = 200  # The gate's default.


def _rows(split, task_name, seed):
  rng = np.random.default_rng(seed)
  n = ROWS[split]
  x = rng.normal(size=n).astype(np.float32)
  zone = rng.choice(['north', 'south'], n)
  if task_name == 'binary':
    labels = (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(np.int64)
  elif task_name == 'multiclass':
    labels = np.array(CLASSES)[np.clip((x + 1.5).astype(int), 0, 2)]
    if split == 'test':
      labels[0] = 'unseen'  # A class the model's vocabulary lacks: -1.
  else:
    labels = (2 * x + 1 + rng.normal(size=n)).astype(np.float32)
  return x, zone, labels


def _example(x, zone, label):
  feature = {'x': tf.train.Feature(float_list=tf.train.FloatList(value=[x])),
             'zone': tf.train.Feature(bytes_list=tf.train.BytesList(
                 value=[zone.encode()]))}
  if isinstance(label, str):
    feature['label'] = tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[label.encode()]))
  elif isinstance(label, (np.floating, float)):
    feature['label'] = tf.train.Feature(float_list=tf.train.FloatList(
        value=[label]))
  else:
    feature['label'] = tf.train.Feature(int64_list=tf.train.Int64List(
        value=[int(label)]))
  return tf.train.Example(features=tf.train.Features(
      feature=feature)).SerializeToString()


def _write_examples(root, task_name):
  examples = standard_artifacts.Examples()
  examples.uri = os.path.join(root, 'examples')
  examples.split_names = artifact_utils.encode_split_names(list(ROWS))
  records = {}
  for seed, split in enumerate(ROWS):
    rows = _rows(split, task_name, seed)
    records[split] = [_example(*row) for row in zip(*rows)]
    directory = os.path.join(examples.uri, f'Split-{split}')
    os.makedirs(directory)
    with tf.io.TFRecordWriter(os.path.join(directory, 'data.gz'),
                              options='GZIP') as writer:
      for record in records[split]:
        writer.write(record)
  return examples, records


def _write_schema(root, task_name):
  from tensorflow_metadata.proto.v0 import schema_pb2
  label_type = {'binary': schema_pb2.INT, 'multiclass': schema_pb2.BYTES,
                'regression': schema_pb2.FLOAT}[task_name]
  schema = schema_pb2.Schema()
  for name, kind in (('x', schema_pb2.FLOAT), ('zone', schema_pb2.BYTES),
                     ('label', label_type)):
    feature = schema.feature.add(name=name, type=kind)
    feature.presence.min_fraction = 1.0
    feature.shape.dim.add(size=1)
  artifact = standard_artifacts.Schema()
  artifact.uri = os.path.join(root, 'schema')
  io_utils.write_pbtxt_file(os.path.join(artifact.uri, 'schema.pbtxt'), schema)
  return artifact


class _TinyModel(tf.Module):
  """The Trainer's export contract, with a one-weight model."""

  def __init__(self, task_name, weight):
    super().__init__()
    self.task_name = task_name
    self.weight = tf.constant(weight, tf.float32)
    label_dtype = {'binary': tf.int64, 'multiclass': tf.string,
                   'regression': tf.float32}[task_name]
    self.raw_spec = {'x': tf.io.FixedLenFeature([1], tf.float32),
                     'label': tf.io.FixedLenFeature([1], label_dtype)}
    if task_name == 'multiclass':
      self.table = tf.lookup.StaticHashTable(
          tf.lookup.KeyValueTensorInitializer(
              tf.constant(CLASSES), tf.constant([0, 1, 2], tf.int64)), -1)

  def outputs(self, x):
    if self.task_name == 'binary':
      return {'probability': tf.sigmoid(self.weight * x)}
    if self.task_name == 'multiclass':
      logits = x * self.weight * tf.constant([[-1.0, 0.0, 1.0]])
      probabilities = tf.nn.softmax(logits)
      names = tf.constant(CLASSES)
      return {'probabilities': probabilities,
              'classes': tf.tile(names[tf.newaxis, :], [tf.shape(x)[0], 1])}
    return {'prediction': self.weight * x + 1.0}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name='examples')])
  def serve(self, serialized):
    parsed = tf.io.parse_example(serialized, {'x': self.raw_spec['x']})
    return self.outputs(parsed['x'])

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name='examples')])
  def transform(self, serialized):
    parsed = tf.io.parse_example(serialized, self.raw_spec)
    label = parsed['label']
    if self.task_name == 'multiclass':
      label = self.table.lookup(label)
    return {'x': parsed['x'], 'label': label}


FEATURES = {'numeric': ['x'], 'categorical': ['zone']}


def _write_model(root, name, task_name, weight, info=None, features=FEATURES):
  model = standard_artifacts.Model()
  model.uri = os.path.join(root, name)
  model.id = abs(hash(name)) % 1000
  path = os.path.join(model.uri, 'Format-Serving')
  module = _TinyModel(task_name, weight)
  tf.saved_model.save(module, path, signatures={
      'serving_default': module.serve, 'transform_features': module.transform})
  tasks.write_model_task(path, tasks.get(task_name), 'label',
                         info or INFOS[task_name], features)
  return model


def _expected(model, task_name, records, info=None, stream=0,
              replicates=REPLICATES):
  """The task's accumulator fed the model's own outputs, by zone too, each
  row weighted in the replicates by the key of its raw bytes in
  ``stream``."""
  task = tasks.get(task_name)
  loaded = tf.saved_model.load(os.path.join(model.uri, 'Format-Serving'))
  batch = tf.constant(records)
  output = loaded.signatures['serving_default'](examples=batch)
  predictions = output[task.prediction_key].numpy()
  labels = loaded.signatures['transform_features'](
      examples=batch)['label'].numpy()
  zones = np.array([tf.train.Example.FromString(r).features.feature['zone']
                    .bytes_list.value[0].decode() for r in records])
  keys = np.array([base.bootstrap_key(r, stream) for r in records])
  result = {'': _direct(task, info or INFOS[task_name], labels, predictions,
                        keys, replicates)}
  for zone in np.unique(zones):
    keep = zones == zone
    result[f'zone:{zone}'] = _direct(task, info or INFOS[task_name],
                                     labels[keep], predictions[keep],
                                     keys[keep], replicates)
  return result


def _assert_same(task, tfma_metrics, expected, replicates=REPLICATES):
  assert set(tfma_metrics) == set(expected)
  for slice_name, values in expected.items():
    got = tfma_metrics[slice_name]
    assert set(got) == set(metrics.key_names(task, replicates)), slice_name
    for name in task.gate_metric_names if replicates else ():
      key = base.replicate_name(name)
      np.testing.assert_allclose(np.asarray(got[key], float),
                                 np.asarray(values[key], float), rtol=1e-6,
                                 atol=1e-9, err_msg=f'{slice_name} {key}')
    for name in task.gate_metric_names:
      assert got[name] == pytest.approx(values[name], rel=1e-6,
                                        nan_ok=True), (slice_name, name)
    for name in task.gate_arrays:
      assert isinstance(got[name], list)
      np.testing.assert_allclose(np.asarray(got[name], float),
                                 np.asarray(values[name], float), rtol=1e-6,
                                 err_msg=f'{slice_name} {name}')


def _executor(root):
  return gate_executor.Executor(gate_executor.Executor.Context(
      tmp_dir=os.path.join(root, 'tmp'), unique_id='test'))


def _gate(task_name):
  return config_lib.parse_gate({'slice_features': ['zone'],
                                'train_sample_size': 1000,
                                'slice_min_examples': 1}, task_name)


@pytest.fixture(scope='module')
def multiclass_run(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('gate_multiclass'))
  examples, records = _write_examples(root, 'multiclass')
  schema = _write_schema(root, 'multiclass')
  candidate = _write_model(root, 'candidate', 'multiclass', 2.0)
  baseline = _write_model(root, 'baseline', 'multiclass', 0.5, info={
      'classes': CLASSES, 'frequencies': [0.2, 0.5, 0.3]})
  out = os.path.join(root, 'evaluation')
  result = _executor(root).evaluate(
      examples=[examples], schema_artifacts=[schema], model_uri=candidate.uri,
      baseline_uri=baseline.uri, label_key='label', held_out_split='test',
      train_split='train', gate=_gate('multiclass'), output_uri=out)
  return {'result': result, 'records': records, 'candidate': candidate,
          'baseline': baseline}


def test_tfma_scores_multiclass_candidate_and_baseline_like_the_task(
    multiclass_run):
  task = tasks.get('multiclass')
  run = multiclass_run
  for branch, split in (('held_out', 'test'), ('train', 'train')):
    _assert_same(task, run['result'][branch]['candidate'],
                 _expected(run['candidate'], 'multiclass',
                           run['records'][split],
                           stream=gate_executor.STREAMS[branch]))
  # The baseline on the held-out rows only, with its own prior, weighted by
  # the same keys as the candidate: paired.
  assert set(run['result']['held_out']) == {'candidate', 'baseline'}
  assert set(run['result']['train']) == {'candidate'} or set(
      run['result']['train']) == {'candidate', 'baseline'}
  _assert_same(task, run['result']['held_out']['baseline'],
               _expected(run['baseline'], 'multiclass', run['records']['test'],
                         info={'classes': CLASSES,
                               'frequencies': [0.2, 0.5, 0.3]}))
  overall = run['result']['held_out']['candidate']['']
  assert overall['unknown_class_count'] == 1.0
  assert overall['example_count'] == ROWS['test'] - 1
  assert np.asarray(overall['confusion_matrix']).shape == (3, 3)


def _do(root, examples, schema, model, baseline, task_name, label='label'):
  evaluation = standard_artifacts.ModelEvaluation()
  evaluation.uri = os.path.join(root, 'evaluation')
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = os.path.join(root, 'blessing')
  for artifact in (evaluation, blessing):
    os.makedirs(artifact.uri, exist_ok=True)
  inputs = {gate_executor.EXAMPLES_KEY: [examples],
            gate_executor.MODEL_KEY: [model],
            gate_executor.SCHEMA_KEY: [schema]}
  if baseline is not None:
    inputs[gate_executor.BASELINE_MODEL_KEY] = [baseline]
  gate = config_lib.to_plain(_gate(task_name))
  _executor(root).Do(inputs, {gate_executor.EVALUATION_KEY: [evaluation],
                              gate_executor.BLESSING_KEY: [blessing]}, {
      gate_executor.GATE_CONFIG_KEY: json.dumps(gate),
      gate_executor.LABEL_KEY: label,
      gate_executor.TASK_KEY: task_name,
      gate_executor.HELD_OUT_SPLIT_KEY: 'test',
      gate_executor.TRAIN_SPLIT_KEY: 'train'})
  with open(os.path.join(evaluation.uri, gate_executor.GATE_JSON)) as f:
    return json.load(f), blessing


def test_binary_gate_end_to_end_with_a_comparable_baseline(tmp_path):
  root = str(tmp_path)
  examples, records = _write_examples(root, 'binary')
  schema = _write_schema(root, 'binary')
  candidate = _write_model(root, 'candidate', 'binary', 2.0)
  baseline = _write_model(root, 'baseline', 'binary', 0.3)
  payload, blessing = _do(root, examples, schema, candidate, baseline,
                          'binary')
  assert payload['task'] == 'binary'
  assert payload['baseline_note'] is None
  assert set(payload['metrics']['held_out']) == {'', 'zone:north',
                                                 'zone:south'}
  task = tasks.get('binary')
  expected = _expected(candidate, 'binary', records['test'])
  for name in task.gate_metric_names:
    assert payload['metrics']['held_out'][''][name] == pytest.approx(
        expected[''][name], rel=1e-6)
  assert payload['metrics']['baseline']['auc'] == pytest.approx(
      _expected(baseline, 'binary', records['test'])['']['auc'], rel=1e-6)
  assert set(payload['arrays']['held_out']) == set(task.gate_arrays)
  kinds = {c['kind'] for c in payload['checks']}
  assert kinds == {'quality', 'baseline', 'gap'}
  assert any(c['slice'] == 'zone:north' for c in payload['checks'])
  assert blessing.get_int_custom_property('blessed') == int(payload['blessed'])
  assert blessing.get_string_custom_property('baseline_model') == baseline.uri
  with open(os.path.join(blessing.uri, gate_executor.GATE_JSON)) as f:
    assert json.load(f)['checks'] == payload['checks']
  # Every number carries its interval, every check its verdict.
  assert payload['confidence'] == 0.95
  assert set(payload['intervals']['held_out']) == set(
      payload['metrics']['held_out'])
  assert set(payload['intervals']['baseline']) == set(task.gate_metric_names)
  # The train sample follows the held-out split's size (at least
  # train_sample_size, 1000 here: all 120 train rows).
  assert payload['sizes'] == {'held_out': ROWS['test'],
                              'train': ROWS['train']}
  for check in payload['checks']:
    assert check['verdict'] in ('pass', 'fail', 'inconclusive', 'refused')
    if check['verdict'] in ('pass', 'fail', 'inconclusive'):
      assert check['low'] <= check['high']
  # 90 held-out rows cannot resolve a 0.03 accuracy gap: refused, saying so.
  [gap] = [c for c in payload['checks'] if c['kind'] == 'gap'
           and c['metric'] == 'accuracy' and not c['slice']]
  assert gap['verdict'] in ('refused', 'fail'), gap
  assert not payload['blessed']


def test_a_baseline_that_yields_no_metrics_is_refused_by_the_executor(
    tmp_path, monkeypatch):
  root = str(tmp_path)
  examples, records = _write_examples(root, 'binary')
  schema = _write_schema(root, 'binary')
  candidate = _write_model(root, 'candidate', 'binary', 2.0)
  baseline = _write_model(root, 'baseline', 'binary', 2.0)

  def evaluate(self, **kwargs):
    # What TFMA returns when the baseline's metrics are missing: the
    # candidate's only (computed directly; no TFMA run needed).
    assert kwargs['baseline_uri'] == baseline.uri
    return {branch: {'candidate': _expected(candidate, 'binary',
                                            records[split], stream=stream)}
            for branch, split, stream in (('held_out', 'test', 0),
                                          ('train', 'train', 1))}

  monkeypatch.setattr(gate_executor.Executor, 'evaluate', evaluate)
  payload, blessing = _do(root, examples, schema, candidate, baseline,
                          'binary')
  [check] = [c for c in payload['checks'] if c['kind'] == 'baseline']
  assert check['verdict'] == 'refused' and not check['passed']
  assert 'yielded no metrics' in check['detail']
  assert not payload['blessed'] and 'baseline' in payload['failed_checks']
  assert (tmp_path / 'blessing' / 'NOT_BLESSED').exists()


def test_regression_gate_decides_without_an_incomparable_baseline(tmp_path):
  root = str(tmp_path)
  examples, records = _write_examples(root, 'regression')
  schema = _write_schema(root, 'regression')
  candidate = _write_model(root, 'candidate', 'regression', 2.0)
  baseline = _write_model(root, 'baseline', 'binary', 1.0)  # Another task.
  payload, blessing = _do(root, examples, schema, candidate, baseline,
                          'regression')
  assert payload['baseline_note'].startswith('baseline not comparable')
  assert "'binary'" in payload['baseline_note']
  assert payload['metrics']['baseline'] is None
  assert 'baseline' not in {c['kind'] for c in payload['checks']}
  expected = _expected(candidate, 'regression', records['test'])['']
  held_out = payload['metrics']['held_out']['']
  assert held_out['rmse'] == pytest.approx(expected['rmse'], rel=1e-6)
  assert held_out['mse_skill'] == pytest.approx(expected['mse_skill'],
                                                rel=1e-6)
  assert sorted(payload['arrays']['held_out']['sample_label']) == (
      pytest.approx(sorted(expected['sample_label'])))
  # The model is 2x + 1, the data 2x + 1 + noise: it passes on quality.
  assert not any(c['kind'] == 'quality' and not c['passed']
                 for c in payload['checks'])
  assert blessing.get_string_custom_property('baseline_note') == (
      payload['baseline_note'])
  assert not blessing.has_custom_property('baseline_model')


def test_a_task_that_is_not_the_models_is_refused(tmp_path):
  root = str(tmp_path)
  examples, _ = _write_examples(root, 'binary')
  schema = _write_schema(root, 'binary')
  candidate = _write_model(root, 'candidate', 'binary', 2.0)
  with pytest.raises(ValueError, match="configured for task 'regression'.*"
                     "trained for task 'binary'"):
    _do(root, examples, schema, candidate, None, 'regression')
  with pytest.raises(ValueError, match="label 'other'"):
    _do(root, examples, schema, candidate, None, 'binary', label='other')


def test_a_baseline_with_other_classes_is_not_comparable(tmp_path):
  root = str(tmp_path)
  candidate = _write_model(root, 'candidate', 'multiclass', 2.0)
  other = _write_model(root, 'other', 'multiclass', 2.0, info={
      'classes': ['a', 'b'], 'frequencies': [0.5, 0.5]})
  same = _write_model(root, 'same', 'multiclass', 1.0)
  note = gate_executor.baseline_not_comparable(candidate.uri, other.uri)
  assert note.startswith('baseline not comparable') and 'classes' in note
  assert gate_executor.baseline_not_comparable(candidate.uri, same.uri) is None
  missing = os.path.join(root, 'no_task_json')
  os.makedirs(os.path.join(missing, 'Format-Serving'))
  assert 'records no task' in gate_executor.baseline_not_comparable(
      candidate.uri, missing)


def test_a_baseline_fed_other_features_is_not_comparable(tmp_path):
  root = str(tmp_path)
  candidate = _write_model(root, 'candidate', 'binary', 2.0)
  fewer = _write_model(root, 'fewer', 'binary', 2.0,
                       features={'numeric': ['x'], 'categorical': []})
  moved = _write_model(root, 'moved', 'binary', 2.0,
                       features={'numeric': ['x', 'zone'], 'categorical': []})
  reordered = _write_model(root, 'reordered', 'binary', 1.0,
                           features={'categorical': ['zone'],
                                     'numeric': ['x']})
  older = _write_model(root, 'older', 'binary', 2.0, features=None)
  note = gate_executor.baseline_not_comparable(candidate.uri, fewer.uri)
  assert note.startswith('baseline not comparable')
  assert "categorical: the candidate adds ['zone'], drops []" in note
  note = gate_executor.baseline_not_comparable(candidate.uri, moved.uri)
  assert "numeric: the candidate adds [], drops ['zone']" in note
  assert gate_executor.baseline_not_comparable(candidate.uri,
                                               reordered.uri) is None
  assert 'records no feature set' in gate_executor.baseline_not_comparable(
      candidate.uri, older.uri)
