"""Each regularization technique has its real effect (synthetic data, no TFX).

The model and fit loop are the Trainer's own (components/trainer/model.py and
fit.py); only the data is synthetic, so each test runs in seconds.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.trainer import fit, model as model_lib
from core import config as config_lib
from core import tasks

TASK = tasks.get('binary')
INFO = {'positive_rate': 0.5}

SPECS = [model_lib.InputSpec(f'x{i}') for i in range(8)] + [
    model_lib.InputSpec('cat', num_tokens=12)]
HIDDEN = (32, 16)


def _data(n, seed):
  rng = np.random.default_rng(seed)
  x = {f'x{i}': rng.normal(size=(n, 1)).astype('float32') for i in range(8)}
  x['cat'] = rng.integers(0, 12, size=(n, 1)).astype('int64')
  logit = 2 * x['x0'] - 1.5 * x['x1'] + (x['cat'] % 3 == 0) - 0.5
  y = (rng.random((n, 1)) < 1 / (1 + np.exp(-logit))).astype('float32')
  return x, y


def _datasets(n_train=1024, batch=64):
  xt, yt = _data(n_train, 1)
  xe, ye = _data(512, 2)
  train = tf.data.Dataset.from_tensor_slices((xt, yt)).batch(batch)
  evaluation = tf.data.Dataset.from_tensor_slices((xe, ye)).batch(batch)
  return train, evaluation


def _train(reg: config_lib.RegularizationConfig, epochs=10, seed=7,
           hidden=HIDDEN, n_train=1024):
  keras.utils.set_random_seed(seed)
  model = model_lib.build_model(SPECS, hidden, task=TASK, label_info=INFO, l1=reg.l1, l2=reg.l2,
                                dropout=reg.dropout, max_norm=reg.max_norm,
                                seed=seed)
  fit.compile_model(model, config_lib.ModelConfig(learning_rate=1e-2), reg, TASK, INFO)
  train, evaluation = _datasets(n_train)
  result = fit.fit(model, train, evaluation, train.take(8), epochs=epochs,
                   steps_per_epoch=None, reg=reg, task=TASK, log_dir=None)
  return model, result


NONE = config_lib.RegularizationConfig()


@pytest.fixture(scope='module')
def unregularized():
  return _train(NONE)


def test_l1_drives_weights_to_zero(unregularized):
  l1_model, _ = _train(config_lib.RegularizationConfig(l1=1e-3))
  none = model_lib.weight_summary(unregularized[0])['near_zero_fraction']
  l1 = model_lib.weight_summary(l1_model)['near_zero_fraction']
  assert l1 > none + 0.2, (l1, none)


def test_l2_shrinks_the_weight_norm(unregularized):
  l2_model, _ = _train(config_lib.RegularizationConfig(l2=1e-2))
  none = model_lib.weight_summary(unregularized[0])['kernel_l2_norm']
  l2 = model_lib.weight_summary(l2_model)['kernel_l2_norm']
  assert l2 < 0.7 * none, (l2, none)


def test_weight_decay_shrinks_kernels_but_not_biases(unregularized):
  wd_model, _ = _train(config_lib.RegularizationConfig(weight_decay=0.5))
  none = model_lib.weight_summary(unregularized[0])['kernel_l2_norm']
  wd = model_lib.weight_summary(wd_model)['kernel_l2_norm']
  assert wd < 0.8 * none, (wd, none)
  # Decoupled: no penalty term in the loss, unlike L2.
  assert wd_model.losses == []
  opt = wd_model.optimizer
  assert isinstance(opt, keras.optimizers.AdamW)
  hidden = wd_model.get_layer('hidden_0')
  assert opt._use_weight_decay(hidden.kernel)
  assert not opt._use_weight_decay(hidden.bias)


def test_elastic_net_does_both(unregularized):
  model, _ = _train(config_lib.RegularizationConfig(l1=1e-3, l2=1e-2))
  regularizer = model.get_layer('hidden_0').kernel_regularizer
  assert isinstance(regularizer, keras.regularizers.L1L2)
  assert regularizer.l1 > 0 and regularizer.l2 > 0
  base = model_lib.weight_summary(unregularized[0])
  summary = model_lib.weight_summary(model)
  assert summary['near_zero_fraction'] > base['near_zero_fraction'] + 0.2
  assert summary['kernel_l2_norm'] < 0.7 * base['kernel_l2_norm']


def test_the_penalty_is_in_the_models_losses():
  penalized = model_lib.build_model(SPECS, HIDDEN, task=TASK, label_info=INFO, l2=1e-3)
  assert len(penalized.losses) == len(HIDDEN) + 1  # Every Dense kernel.
  assert model_lib.build_model(SPECS, HIDDEN, task=TASK, label_info=INFO).losses == []
  # fit's objective includes the penalty; the log_loss metric does not.
  x, y = _data(256, 3)
  fit.compile_model(penalized, config_lib.ModelConfig(),
                    config_lib.RegularizationConfig(l2=1e-3), TASK, INFO)
  result = penalized.evaluate(x, y, verbose=0, return_dict=True)
  penalty = float(tf.add_n(penalized.losses))
  assert result['loss'] == pytest.approx(result['log_loss'] + penalty,
                                         rel=1e-3)


def test_dropout_is_active_in_training_and_off_at_inference():
  model = model_lib.build_model(SPECS, HIDDEN, task=TASK, label_info=INFO, dropout=0.5, seed=1)
  x, _ = _data(64, 4)
  assert not np.allclose(model(x, training=True), model(x, training=True))
  np.testing.assert_allclose(model(x, training=False), model(x, training=False))
  np.testing.assert_allclose(model.predict(x, verbose=0),
                             model(x, training=False), rtol=1e-5)


def test_max_norm_bounds_every_kernel_column():
  model, _ = _train(config_lib.RegularizationConfig(max_norm=0.5), epochs=5)
  for name in ('hidden_0', 'hidden_1', 'probability'):
    norms = np.linalg.norm(model.get_layer(name).kernel.numpy(), axis=0)
    assert norms.max() <= 0.5 + 1e-5


def test_label_smoothing_reaches_the_loss():
  model = model_lib.build_model(SPECS, HIDDEN, task=TASK, label_info=INFO)
  fit.compile_model(model, config_lib.ModelConfig(),
                    config_lib.RegularizationConfig(label_smoothing=0.1),
                    TASK, INFO)
  assert model.loss.get_config()['label_smoothing'] == pytest.approx(0.1)


class _Scripted(keras.callbacks.Callback):
  """Replaces the monitored metric with a script, so the best epoch is known,
  and records the weights at each epoch's end."""

  def __init__(self, values):
    super().__init__()
    self.values = values
    self.weights = []

  def on_epoch_end(self, epoch, logs=None):
    logs['val_auc'] = self.values[epoch]
    self.weights.append([w.copy() for w in self.model.get_weights()])


@pytest.mark.parametrize('patience, epochs_run', [(1, 3), (10, 4)])
def test_early_stopping_restores_the_best_epoch(patience, epochs_run):
  """Stopped early (patience 1) or run to the last epoch (patience 10): the
  model ends with epoch 2's weights either way."""
  keras.utils.set_random_seed(0)
  model = model_lib.build_model(SPECS, HIDDEN, task=TASK, label_info=INFO)
  reg = config_lib.RegularizationConfig(
      early_stopping=config_lib.EarlyStoppingConfig(
          metric='auc', patience=patience, min_delta=0.0))
  fit.compile_model(model, config_lib.ModelConfig(), reg, TASK, INFO)
  train, evaluation = _datasets(256)
  script = _Scripted([0.6, 0.9, 0.7, 0.8])
  result = fit.fit(model, train, evaluation, train.take(2), epochs=4,
                   steps_per_epoch=None, reg=reg, task=TASK, log_dir=None,
                   extra_callbacks=[script])
  assert result['epochs_run'] == epochs_run
  assert result['early_stopping']['best_epoch'] == 2
  assert result['early_stopping']['stopped_early'] == (epochs_run < 4)
  for got, want in zip(model.get_weights(), script.weights[1]):
    np.testing.assert_array_equal(got, want)
  assert not np.array_equal(model.get_weights()[0], script.weights[-1][0])


def test_train_curve_is_evaluated_with_dropout_off():
  """The recorded train metrics are ``evaluate`` on the train sample, not
  fit's running averages computed with dropout on."""
  reg = config_lib.RegularizationConfig(dropout=0.5)
  model, result = _train(reg, epochs=3)
  train, _ = _datasets()
  evaluated = model.evaluate(train.take(8), verbose=0, return_dict=True)
  last = result['epochs'][-1]
  for metric in TASK.metrics:
    assert last['train'][metric] == pytest.approx(evaluated[metric], rel=1e-5)
  assert set(last['eval']) == set(TASK.metrics)
  assert last['gap']['accuracy'] == pytest.approx(
      last['train']['accuracy'] - last['eval']['accuracy'])


def test_an_oversized_unregularized_model_overfits_more():
  """Same small data: the gap is clearly larger without regularization."""
  big = (256, 256)
  _, loose = _train(NONE, epochs=40, hidden=big, n_train=256)
  _, tight = _train(config_lib.RegularizationConfig(
      l2=1e-2, dropout=0.3), epochs=40, hidden=big, n_train=256)
  loose_gap = loose['epochs'][-1]['gap']['log_loss']
  tight_gap = tight['epochs'][-1]['gap']['log_loss']
  assert loose_gap > tight_gap + 0.1, (loose_gap, tight_gap)
