"""Temperature scaling: the task's rescaling, the fit on eval rows, and the
exported signature serving the calibrated probabilities."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.trainer import calibration, export
from core import tasks

BINARY = tasks.get('binary')
MULTICLASS = tasks.get('multiclass')
CLASSES = {'classes': ['a', 'b', 'c'], 'frequencies': [0.3, 0.3, 0.4]}


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
  e = np.exp(z - z.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def _binary_rows(n=20_000, seed=0):
  """Logits and labels drawn from their sigmoid: calibrated at T = 1."""
  rng = np.random.default_rng(seed)
  z = rng.normal(0.0, 2.0, size=(n, 1))
  return z, (rng.uniform(size=(n, 1)) < _sigmoid(z)).astype(np.int64)


def _multiclass_rows(n=20_000, seed=0):
  rng = np.random.default_rng(seed)
  z = rng.normal(0.0, 2.0, size=(n, 3))
  p = _softmax(z)
  labels = (rng.uniform(size=(n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
  return z, labels.reshape(-1, 1).astype(np.int64)


def test_temperature_divides_the_logits_and_keeps_every_decision():
  z = np.array([[-3.0], [-0.5], [0.0], [0.4], [6.0]])
  scaled = BINARY.with_temperature(tf.constant(_sigmoid(z), tf.float32), 2.0)
  np.testing.assert_allclose(scaled.numpy(), _sigmoid(z / 2), rtol=1e-5)
  assert np.array_equal(scaled.numpy() > 0.5, _sigmoid(z) > 0.5)
  z3 = np.array([[2.0, 0.0, -1.0], [0.1, 0.3, 0.2]])
  scaled = MULTICLASS.with_temperature(
      tf.constant(_softmax(z3), tf.float32), 0.5).numpy()
  np.testing.assert_allclose(scaled, _softmax(z3 * 2), rtol=1e-5)
  np.testing.assert_allclose(scaled.sum(axis=1), 1.0, rtol=1e-6)
  assert np.array_equal(scaled.argmax(axis=1), z3.argmax(axis=1))


def test_regression_has_no_temperature():
  regression = tasks.get('regression')
  assert not regression.supports_temperature
  with pytest.raises(NotImplementedError, match='regression'):
    regression.with_temperature(tf.zeros([1, 1]), 2.0)


@pytest.mark.parametrize('task, rows, info, squash', [
    (BINARY, _binary_rows, {'positive_rate': 0.5}, _sigmoid),
    (MULTICLASS, _multiclass_rows, CLASSES, _softmax),
], ids=['binary', 'multiclass'])
@pytest.mark.parametrize('sharpened_by', [3.0, 1.0, 0.5],
                         ids=['overconfident', 'calibrated', 'underconfident'])
def test_the_fit_undoes_a_known_miscalibration(task, rows, info, squash,
                                               sharpened_by):
  z, labels = rows()
  fitted = calibration.fit_temperature(task, info, squash(z * sharpened_by),
                                       labels)
  # Within two semitones of the truth (one is 6%).
  assert fitted['temperature'] == pytest.approx(sharpened_by, rel=0.13)
  assert fitted['eval_loss_calibrated'] <= fitted['eval_loss']
  if sharpened_by != 1.0:
    assert fitted['eval_loss_calibrated'] < fitted['eval_loss'] - 0.01


def test_rows_that_cannot_bound_the_temperature_leave_it_at_one():
  # Every row right: the loss falls toward T -> 0 and has no minimum on the
  # grid; sharpening to its end would be fitted to these rows alone.
  z, _ = _binary_rows(200)
  labels = (z > 0).astype(np.int64)
  fitted = calibration.fit_temperature(BINARY, {'positive_rate': 0.5},
                                       _sigmoid(z), labels)
  assert fitted['temperature'] == 1.0
  assert fitted['eval_loss_calibrated'] == fitted['eval_loss']


def test_on_few_rows_the_prior_keeps_the_temperature_nearer_one(monkeypatch):
  # 40 rows of an underconfident model (true T 0.4): alone, their loss
  # sharpens far; the prior weighs as one row against their sum. On 20,000
  # rows (the test above) it is negligible.
  z, labels = _binary_rows(40, seed=1)
  probabilities = _sigmoid(z * 0.4)
  info = {'positive_rate': 0.5}
  with_prior = calibration.fit_temperature(BINARY, info, probabilities,
                                           labels)
  monkeypatch.setattr(calibration, 'PRIOR_SD', 1e9)
  alone = calibration.fit_temperature(BINARY, info, probabilities, labels)
  assert alone['temperature'] < with_prior['temperature'] < 1.0
  assert with_prior['eval_loss_calibrated'] >= alone['eval_loss_calibrated']
  assert with_prior['eval_loss_calibrated'] < with_prior['eval_loss']


def test_no_temperature_that_does_not_help():
  # Constant predictions: no temperature changes the loss of 0.5 much, and
  # none lowers it.
  labels = np.array([[0], [1]] * 50)
  fitted = calibration.fit_temperature(BINARY, {'positive_rate': 0.5},
                                       np.full((100, 1), 0.5), labels)
  assert fitted['temperature'] == 1.0
  assert fitted['eval_loss_calibrated'] == fitted['eval_loss']


class _NoTransform:
  """Stands for Transform's output: one raw float feature, passed through."""

  def raw_feature_spec(self):
    return {'x': tf.io.FixedLenFeature([1], tf.float32)}

  def transform_features_layer(self):
    return keras.layers.Lambda(lambda features: dict(features))


def _examples(values):
  return tf.constant([tf.train.Example(features=tf.train.Features(feature={
      'x': tf.train.Feature(float_list=tf.train.FloatList(value=[v]))}))
                      .SerializeToString() for v in values])


@pytest.mark.parametrize('temperature', [1.0, 2.5])
def test_the_served_probabilities_are_the_calibrated_ones(tmp_path,
                                                          temperature):
  x = keras.Input(shape=(1,), name='x')
  model = keras.Model({'x': x}, keras.layers.Dense(
      1, activation='sigmoid', kernel_initializer='ones',
      bias_initializer='zeros')(x))
  path = str(tmp_path / 'serving')
  export.export(model, _NoTransform(), path, [], task=BINARY, label='y',
                label_info={'positive_rate': 0.5},
                features={'numeric': ['x'], 'categorical': []},
                temperature=temperature)
  serve = tf.saved_model.load(path).signatures[export.SERVING_SIGNATURE]
  values = [-4.0, -1.0, 0.0, 2.0, 8.0]
  served = serve(examples=_examples(values))['probability'].numpy().ravel()
  np.testing.assert_allclose(served, _sigmoid(np.array(values) / temperature),
                             rtol=1e-5)
