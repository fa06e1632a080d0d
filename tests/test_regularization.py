"""Each regularization technique has its real effect (synthetic data, no TFX).

The model and fit loop are the Trainer's own (components/trainer/model.py and
fit.py); only the data is synthetic, so each test runs in seconds.
"""

import math
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.trainer import fit, mixup, model as model_lib
from core import config as config_lib
from core import tasks

import two_cpus

TASK = tasks.get('binary')
INFO = {'positive_rate': 0.5}

SPECS = [model_lib.InputSpec(f'x{i}', continuous=True) for i in range(8)] + [
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
           hidden=HIDDEN, n_train=1024, batch=64, learning_rate=1e-2,
           callbacks=()):
  keras.utils.set_random_seed(seed)
  model = model_lib.build_model(SPECS, hidden, task=TASK, label_info=INFO,
                                **model_lib.regularization_kwargs(reg),
                                seed=seed)
  fit.compile_model(model, config_lib.ModelConfig(learning_rate=learning_rate),
                    reg, TASK, INFO, total_steps=epochs * (n_train // batch))
  train, evaluation = _datasets(n_train, batch)
  result = fit.fit(model, train, evaluation, train.take(8), epochs=epochs,
                   steps_per_epoch=None, reg=reg, task=TASK, log_dir=None,
                   extra_callbacks=callbacks)
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


BIG = (256, 256)


@pytest.fixture(scope='module')
def oversized_unregularized():
  """An oversized network on 256 rows: it memorises them."""
  return _train(NONE, epochs=40, hidden=BIG, n_train=256)


def test_an_oversized_unregularized_model_overfits_more(oversized_unregularized):
  """Same small data: the gap is clearly larger without regularization."""
  _, loose = oversized_unregularized
  _, tight = _train(config_lib.RegularizationConfig(
      l2=1e-2, dropout=0.3), epochs=40, hidden=BIG, n_train=256)
  loose_gap = loose['epochs'][-1]['gap']['log_loss']
  tight_gap = tight['epochs'][-1]['gap']['log_loss']
  assert loose_gap > tight_gap + 0.1, (loose_gap, tight_gap)


def test_the_trainers_unregularized_comparison_overfits_more(
    oversized_unregularized):
  """``report.compare_unregularized``'s model, as the Trainer trains it after
  the chosen one (``run.unregularized_comparison``): on the oversized setup
  its numbers are fit.fit's curve of that network without regularization,
  and its gap is clearly larger than the regularized, early-stopped
  model's."""
  from components.trainer import run  # pylint: disable=g-import-not-at-top
  stopping = config_lib.EarlyStoppingConfig(metric='log_loss', patience=4)
  _, chosen = _train(R(l2=1e-2, dropout=0.3, early_stopping=stopping),
                     epochs=40, hidden=BIG, n_train=256)
  cfg = config_lib.load_config(overrides=[
      'model.hidden_units=[256, 256]', 'model.epochs=40',
      'model.learning_rate=0.01', 'model.seed=7',
      'regularization.early_stopping.metric=log_loss'])
  train, evaluation = _datasets(256, 64)
  plain = run.unregularized_comparison(
      cfg, TASK, INFO, SPECS, tf.distribute.get_strategy(), train, evaluation,
      train.take(8), steps_per_epoch=None)
  assert set(plain) == {'metric', 'eval', 'train', 'gap', 'epochs', 'seconds'}
  assert (plain['metric'], plain['epochs']) == ('log_loss', 40)
  # No early stopping and no penalty: the oversized fixture's last epoch.
  _, loose = oversized_unregularized
  last = loose['epochs'][-1]
  assert plain['eval'] == pytest.approx(last['eval']['log_loss'], rel=0.05)
  assert plain['gap'] == pytest.approx(plain['eval'] - plain['train'])
  restored = chosen['epochs'][chosen['early_stopping']['best_epoch'] - 1]
  assert plain['gap'] > restored['gap']['log_loss'] + 0.1, (
      plain, restored['gap'])


# --------------------------------------------------------------------------
# The cocktail (Kadra et al. 2021): batch norm, input noise, mixup, weight
# averaging, learning-rate schedules.

R = config_lib.RegularizationConfig


def test_the_cocktail_is_off_by_default_and_on_by_configuration():
  default = config_lib.load_config().regularization
  assert (default.batch_norm, default.input_noise, default.mixup,
          default.weight_averaging, default.lr_schedule) == (
              False, 0.0, 0.0, None, 'constant')
  assert default.active == ('l2', 'dropout', 'early_stopping')
  model = model_lib.build_model(SPECS, HIDDEN, task=TASK, label_info=INFO,
                                **model_lib.regularization_kwargs(default))
  assert not isinstance(model, mixup.MixupModel)
  names = {layer.name for layer in model.layers}
  assert not names & {'input_noise', 'batch_norm_0'}
  fit.compile_model(model, config_lib.ModelConfig(), default, TASK, INFO)
  assert not model.optimizer.use_ema
  assert not isinstance(model.optimizer._learning_rate,  # pylint: disable=protected-access
                        keras.optimizers.schedules.LearningRateSchedule)
  on = config_lib.load_config(overrides=[
      'regularization.batch_norm=true', 'regularization.input_noise=0.1',
      'regularization.mixup=0.2', 'regularization.weight_averaging=swa',
      'regularization.swa_start=3', 'regularization.lr_schedule=one_cycle',
      'regularization.lr_warmup=0.2']).regularization
  assert on.active == ('l2', 'dropout', 'early_stopping', 'batch_norm',
                       'input_noise', 'mixup', 'swa', 'one_cycle_lr')
  assert (on.swa_start, on.lr_warmup) == (3, 0.2)
  assert config_lib.load_config(overrides=[
      'regularization.weight_averaging=none']).regularization.weight_averaging is None


@pytest.mark.parametrize('override, message', [
    ('batch_norm=1', 'batch_norm: expected true or false'),
    ('input_noise=-0.1', 'input_noise: must be >= 0'),
    ('input_noise=nan', 'input_noise: expected a finite number'),
    ('mixup=-1', 'mixup: must be >= 0'),
    ('mixup=.nan', 'mixup: expected a finite number'),
    ('weight_averaging=polyak', 'weight_averaging: expected ema or swa'),
    ('ema_decay=1', 'ema_decay: must be in (0, 1)'),
    ('ema_decay=nan', 'ema_decay: expected a finite number'),
    ('swa_start=0', 'swa_start: an epoch, >= 1'),
    ('lr_schedule=step', 'lr_schedule: expected one of constant, cosine'),
    ('lr_warmup=1', 'lr_warmup: a fraction'),
    ('lr_warmup=nan', 'lr_warmup: expected a finite number'),
])
def test_the_cocktails_settings_are_range_checked(override, message):
  import re  # pylint: disable=g-import-not-at-top
  with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
    config_lib.load_config(overrides=[f'regularization.{override}'])


def test_batch_norm_learns_statistics_and_uses_them_at_inference():
  model, _ = _train(R(batch_norm=True), epochs=2)
  norms = [layer for layer in model.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
  assert [layer.name for layer in norms] == ['batch_norm_0', 'batch_norm_1']
  assert model.get_layer('hidden_0').bias is None  # BN's beta replaces it.
  for layer in norms:  # The moving statistics moved in training.
    assert not np.allclose(layer.moving_mean.numpy(), 0.0, atol=1e-3)
    assert not np.allclose(layer.moving_variance.numpy(), 1.0, atol=1e-3)
  x, _ = _data(64, 4)
  inference = model(x, training=False).numpy()
  np.testing.assert_allclose(model.predict(x, verbose=0), inference,
                             rtol=1e-5)
  # Training normalizes with the batch's statistics (and updates the moving
  # ones), inference with the moving ones.
  moving = norms[0].moving_mean.numpy()
  assert np.abs(model(x, training=True).numpy() - inference).max() > 1e-3
  assert not np.allclose(norms[0].moving_mean.numpy(), moving)
  inference = model(x, training=False).numpy()
  norms[0].moving_mean.assign(norms[0].moving_mean + 1.0)
  assert np.abs(model(x, training=False).numpy() - inference).max() > 1e-3


def test_input_noise_perturbs_training_only():
  noisy = model_lib.build_model(SPECS, HIDDEN, task=TASK, label_info=INFO,
                                input_noise=0.5, seed=1)
  clean = model_lib.build_model(SPECS, HIDDEN, task=TASK, label_info=INFO,
                                seed=1)  # The same initial weights.
  layer = noisy.get_layer('input_noise')
  assert isinstance(layer, keras.layers.GaussianNoise) and layer.stddev == 0.5
  assert layer.input is noisy.get_layer('features').output
  x, _ = _data(64, 4)
  assert not np.allclose(noisy(x, training=True), noisy(x, training=True))
  assert not np.allclose(noisy(x, training=True), clean(x, training=False))
  np.testing.assert_allclose(noisy(x, training=False), clean(x, training=False),
                             rtol=1e-6)


def test_mixup_mixes_pairs_and_their_labels_into_soft_labels():
  n = 256
  lam, partner = mixup.draw(n, 0.4, tf.constant([1, 2], tf.int64))
  weights = lam.numpy().ravel()
  assert lam.shape == (n, 1) and ((weights >= 0) & (weights <= 1)).all()
  assert weights.std() > 0.2  # Beta(0.4, 0.4): mostly near 0 or 1.
  assert sorted(partner.numpy()) == list(range(n))
  assert (partner.numpy() != np.arange(n)).mean() > 0.9
  # The same seed draws the same; another step's seed draws anew.
  again, _ = mixup.draw(n, 0.4, tf.constant([1, 2], tf.int64))
  np.testing.assert_array_equal(again, lam)
  other, _ = mixup.draw(n, 0.4, tf.constant([1, 3], tf.int64))
  assert not np.allclose(other, lam)
  rng = np.random.default_rng(5)
  features = rng.normal(size=(n, 5)).astype('float32')
  np.testing.assert_allclose(
      mixup.mix(tf.constant(features), lam, partner),
      weights[:, None] * features
      + (1 - weights[:, None]) * features[partner.numpy()], rtol=1e-5,
      atol=1e-6)
  # Binary: the labels become soft, and the mixed loss is their
  # cross-entropy.
  _, y = _data(n, 5)
  soft = mixup.soft_labels(y, lam, partner).numpy()
  assert ((soft > 0.05) & (soft < 0.95)).mean() > 0.1
  np.testing.assert_allclose(
      soft, weights[:, None] * y + (1 - weights[:, None]) * y[partner.numpy()],
      rtol=1e-5)
  p = tf.constant(rng.uniform(0.05, 0.95, size=(n, 1)).astype('float32'))
  bce = TASK.loss(INFO, 0.0)
  mixed = bce(*mixup.mixed_targets(tf.constant(y), p, lam, partner))
  assert float(mixed) == pytest.approx(float(bce(soft, p)), rel=1e-5)
  # Multiclass: integer labels, label smoothing; the same identity.
  multiclass = tasks.get('multiclass')
  classes = rng.integers(0, 3, size=(n, 1))
  probs = tf.nn.softmax(rng.normal(size=(n, 3)).astype('float32'))
  sparse = multiclass.loss({'classes': ['a', 'b', 'c']}, 0.1)
  mixed = sparse(*mixup.mixed_targets(tf.constant(classes), probs, lam,
                                      partner))
  expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(
      mixup.soft_labels(classes, lam, partner, num_classes=3), probs)
  assert float(mixed) == pytest.approx(float(expected), rel=1e-5)


def test_mixup_narrows_an_oversized_models_gap(oversized_unregularized):
  _, loose = oversized_unregularized
  model, mixed = _train(R(mixup=1.0), epochs=40, hidden=BIG, n_train=256)
  assert isinstance(model, mixup.MixupModel) and model.mixup_alpha == 1.0
  loose_last, mixed_last = loose['epochs'][-1], mixed['epochs'][-1]
  # Trained on mixed rows, it no longer memorises the real ones ...
  assert mixed_last['train']['log_loss'] > 10 * loose_last['train']['log_loss']
  # ... and its gap is a fraction of the unregularized one.
  assert mixed_last['gap']['log_loss'] < 0.5 * loose_last['gap']['log_loss'], (
      mixed_last['gap'], loose_last['gap'])
  # Inference never mixes: a row's prediction does not depend on its batch.
  x, _ = _data(64, 4)
  whole = model.predict(x, verbose=0)
  part = model({k: v[:8] for k, v in x.items()}, training=False).numpy()
  np.testing.assert_allclose(part, whole[:8], rtol=1e-5)


class _Raw(keras.callbacks.Callback):
  """The raw (trained) trainable weights before training, after every step
  and at every epoch's last step."""

  def __init__(self):
    super().__init__()
    self.steps, self.epoch_ends = [], []

  def _now(self):
    return [v.numpy() for v in self.model.trainable_variables]

  def on_train_begin(self, logs=None):
    self.steps = [self._now()]

  def on_train_batch_end(self, batch, logs=None):
    self.steps.append(self._now())

  def on_epoch_end(self, epoch, logs=None):
    self.epoch_ends.append(self.steps[-1])


def test_ema_the_model_ends_with_the_moving_average_of_its_weights():
  reg = R(weight_averaging='ema', ema_decay=0.9, weight_decay=1e-3)
  raw = _Raw()
  model, result = _train(reg, epochs=3, callbacks=[raw])
  assert isinstance(model.optimizer, keras.optimizers.AdamW)
  assert model.optimizer.use_ema
  expected = raw.steps[0]
  for step in raw.steps[1:]:
    expected = [0.9 * e + 0.1 * w for e, w in zip(expected, step)]
  for variable, want in zip(model.trainable_variables, expected):
    np.testing.assert_allclose(variable.numpy(), want, rtol=1e-4, atol=1e-6)
  assert not np.allclose(model.get_layer('hidden_0').kernel.numpy(),
                         raw.steps[-1][0], atol=1e-4)
  # The curves are the averaged model's: the last eval is the final model's.
  _, evaluation = _datasets()
  final = model.evaluate(evaluation, verbose=0, return_dict=True)
  assert result['epochs'][-1]['eval']['log_loss'] == pytest.approx(
      final['log_loss'], rel=1e-5)
  assert result['weight_averaging'] == {'method': 'ema'}


def test_ema_early_stopping_restores_the_best_epochs_averaged_weights():
  keras.utils.set_random_seed(0)
  reg = R(weight_averaging='ema', ema_decay=0.9,
          early_stopping=config_lib.EarlyStoppingConfig(
              metric='auc', patience=1, min_delta=0.0))
  model = model_lib.build_model(SPECS, HIDDEN, task=TASK, label_info=INFO)
  fit.compile_model(model, config_lib.ModelConfig(), reg, TASK, INFO)
  train, evaluation = _datasets(256)
  script, raw = _Scripted([0.6, 0.9, 0.7, 0.8]), _Raw()
  result = fit.fit(model, train, evaluation, train.take(2), epochs=4,
                   steps_per_epoch=None, reg=reg, task=TASK, log_dir=None,
                   extra_callbacks=[script, raw])
  assert result['epochs_run'] == 3 and result['early_stopping']['best_epoch'] == 2
  # The script saw (and early stopping kept) epoch 2's averaged weights, not
  # its raw ones, and fit's closing EMA overwrite did not undo the restore.
  for got, want in zip(model.get_weights(), script.weights[1]):
    np.testing.assert_array_equal(got, want)
  kernel = model.get_layer('hidden_0').kernel.numpy()
  assert not np.allclose(kernel, raw.epoch_ends[1][0], atol=1e-5)
  assert not np.allclose(kernel, raw.epoch_ends[2][0], atol=1e-5)


def test_swa_ends_with_the_mean_of_the_epochs_weights():
  raw = _Raw()
  model, result = _train(R(weight_averaging='swa', swa_start=2), epochs=4,
                         callbacks=[raw])
  for i, variable in enumerate(model.trainable_variables):
    want = np.mean([epoch[i] for epoch in raw.epoch_ends[1:]], axis=0)
    np.testing.assert_allclose(variable.numpy(), want, rtol=1e-4, atol=1e-6)
  assert result['weight_averaging'] == {'method': 'swa', 'start_epoch': 2,
                                        'averaged_epochs': 3}
  _, evaluation = _datasets()
  final = model.evaluate(evaluation, verbose=0, return_dict=True)
  assert result['epochs'][-1]['eval']['log_loss'] == pytest.approx(
      final['log_loss'], rel=1e-5)


def test_weight_averaging_helps_with_noisy_gradients():
  """Small batches, a large step: the averaged weights generalize no worse."""
  noisy = dict(epochs=4, batch=16, learning_rate=0.05)
  _, raw = _train(NONE, **noisy)
  _, ema = _train(R(weight_averaging='ema', ema_decay=0.95), **noisy)
  raw_loss = raw['epochs'][-1]['eval']['log_loss']
  ema_loss = ema['epochs'][-1]['eval']['log_loss']
  assert ema_loss <= raw_loss, (ema_loss, raw_loss)


class _Rates(keras.callbacks.Callback):
  """The learning rate each step was taken with."""

  def __init__(self):
    super().__init__()
    self.rates = []

  def on_train_batch_end(self, batch, logs=None):
    self.rates.append(float(self.model.optimizer.learning_rate))


def test_cosine_schedule_decays_over_the_planned_steps():
  rates = _Rates()
  _train(R(lr_schedule='cosine'), epochs=2, callbacks=[rates])
  total, top = 2 * 16, 1e-2
  assert len(rates.rates) == total
  assert rates.rates == pytest.approx(
      [top * 0.5 * (1 + math.cos(math.pi * t / total)) for t in range(total)],
      rel=1e-4, abs=1e-8)
  assert rates.rates[0] == pytest.approx(top)
  assert rates.rates[total // 2] == pytest.approx(top / 2, rel=1e-4)
  assert rates.rates[-1] < 0.01 * top


def test_warmup_and_one_cycle_schedules():
  cosine = fit.learning_rate_schedule(1e-2, 'cosine', 100, warmup=0.1)
  values = [float(cosine(step)) for step in (0, 5, 10, 55, 100, 150)]
  assert values == pytest.approx([0.0, 5e-3, 1e-2, 5e-3, 0.0, 0.0], abs=1e-8)
  cycle = fit.learning_rate_schedule(1e-2, 'one_cycle', 100)
  values = [float(cycle(step)) for step in (0, 15, 30, 65, 100)]
  low, end = 1e-2 / 25, 1e-2 / 1e4
  assert values == pytest.approx(
      [low, (low + 1e-2) / 2, 1e-2, end + (1e-2 - end) / 2, end], rel=1e-4)
  assert fit.learning_rate_schedule(1e-2, 'constant', None) == 1e-2
  with pytest.raises(ValueError, match='planned number of steps'):
    fit.learning_rate_schedule(1e-2, 'cosine', None)


# Every technique at once, periodic embeddings of the numeric inputs too, on
# two replicas (MirroredStrategy; logical devices can only be set before
# TensorFlow initialises: a child process).
_CHILD = 'REGULARIZATION_TWO_CPUS'
TWO_REPLICAS = two_cpus.strategy(_CHILD)


@two_cpus.only_in_child(_CHILD)
@pytest.mark.parametrize('averaging', ['ema', 'swa'])
def test_in_child_the_cocktail_trains_and_exports_on_two_replicas(averaging):
  reg = R(batch_norm=True, input_noise=0.1, mixup=0.4, dropout=0.1,
          weight_decay=1e-4, weight_averaging=averaging, ema_decay=0.9,
          swa_start=2, lr_schedule='one_cycle',
          early_stopping=config_lib.EarlyStoppingConfig(metric='auc',
                                                        patience=3))
  epochs = 4
  keras.utils.set_random_seed(3)
  with TWO_REPLICAS.scope():
    model = model_lib.build_model(
        SPECS, HIDDEN, task=TASK, label_info=INFO,
        **model_lib.regularization_kwargs(reg),
        numeric_embedding=config_lib.PeriodicEmbeddingConfig(), seed=3)
    fit.compile_model(model, config_lib.ModelConfig(learning_rate=1e-2), reg,
                      TASK, INFO, total_steps=epochs * 16)
  assert TWO_REPLICAS.num_replicas_in_sync == 2
  # Each replica mixes its batch its own way.
  draws = TWO_REPLICAS.experimental_local_results(
      TWO_REPLICAS.run(lambda: model.mixup_draw(32)[1]))
  assert len(draws) == 2 and not np.array_equal(draws[0], draws[1])
  train, evaluation = _datasets()
  result = fit.fit(model, train, evaluation, train.take(4), epochs=epochs,
                   steps_per_epoch=None, reg=reg, task=TASK, log_dir=None)
  assert result['epochs'][-1]['eval']['auc'] > 0.75, result['epochs'][-1]
  assert result['weight_averaging']['method'] == averaging
  # Exportable: the saved signature answers as the model does.
  x, _ = _data(32, 9)
  expected = model.predict(x, verbose=0)
  with tempfile.TemporaryDirectory() as path:
    model.save(path, save_format='tf')
    serve = tf.saved_model.load(path).signatures['serving_default']
    outputs = serve(**{k: tf.constant(v) for k, v in x.items()})
  np.testing.assert_allclose(outputs['probability'].numpy(), expected,
                             rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_the_cocktail_trains_on_two_replicas():
  two_cpus.run_children(__file__, _CHILD, '2 passed')


# --------------------------------------------------------------------------
# The small-data ensemble (model.ensemble_size, ensemble_max_rows).


def _log_loss(model, x, y):
  p = np.clip(model.predict(x, verbose=0), 1e-7, 1 - 1e-7)
  return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_an_ensemble_serves_the_mean_of_its_members_and_exports():
  members = [_train(NONE, epochs=1, seed=seed)[0] for seed in (1, 2)]
  assert model_lib.ensemble(members[:1], SPECS) is members[0]
  ensemble = model_lib.ensemble(members, SPECS)
  assert model_lib.input_keys(ensemble) == model_lib.input_keys(members[0])
  x, _ = _data(32, 9)
  mean = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
  np.testing.assert_allclose(ensemble.predict(x, verbose=0), mean, rtol=1e-5)
  with tempfile.TemporaryDirectory() as path:
    ensemble.save(path, save_format='tf')
    serve = tf.saved_model.load(path).signatures['serving_default']
    outputs = serve(**{k: tf.constant(v) for k, v in x.items()})
  np.testing.assert_allclose(list(outputs.values())[0].numpy(), mean,
                             rtol=1e-4, atol=1e-6)


def test_an_ensemble_of_overfit_networks_beats_each_of_them_held_out():
  """Five oversized networks on 256 rows, seeds apart: each memorises its
  own way, so their average's held-out log loss is below every member's
  (not just below their mean, which averaging probabilities guarantees)."""
  members = [_train(NONE, epochs=20, hidden=BIG, n_train=256, seed=seed)[0]
             for seed in range(5)]
  x, y = _data(2048, 11)
  each = [_log_loss(m, x, y) for m in members]
  together = _log_loss(model_lib.ensemble(members, SPECS), x, y)
  assert together < min(each) - 0.05, (together, each)


def test_the_ensemble_is_for_small_train_splits_only():
  m = config_lib.ModelConfig()
  assert (m.ensemble_size, m.ensemble_max_rows) == (5, 5000)
  assert m.ensemble_members(5000) == 5 and m.ensemble_members(5001) == 1
  assert config_lib.ModelConfig(ensemble_size=1).ensemble_members(10) == 1
  for override, message in (('model.ensemble_size=0', 'must be > 0'),
                            ('model.ensemble_max_rows=-1', 'must be >= 0')):
    with pytest.raises(config_lib.ConfigError, match=message):
      config_lib.load_config(overrides=[override])
