"""Each task's head, loss and metrics train under MirroredStrategy too.

Two logical CPUs, the Trainer's own model and fit loop, synthetic data: the
custom Keras objects (macro F1's confusion matrix, the regression target
scale and standardized loss) must aggregate across replicas as they do on
one device. Logical devices can only be set before TensorFlow initialises,
so the two-replica test runs this module again in a child process.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.trainer import fit, model as model_lib
from core import config as config_lib
from core import tasks

import two_cpus

SPECS = [model_lib.InputSpec('x0'), model_lib.InputSpec('x1')]


def _data(task_name, n=512, seed=0):
  rng = np.random.default_rng(seed)
  x = {f'x{i}': rng.normal(size=(n, 1)).astype('float32') for i in range(2)}
  if task_name == 'multiclass':
    y = (np.digitize(x['x0'] + 0.3 * x['x1'], [-0.5, 0.5])).astype('int64')
    info = {'classes': ['lo', 'mid', 'hi'],
            'frequencies': list(np.bincount(y.ravel(), minlength=3) / n)}
  else:
    y = np.exp(0.5 * x['x0'] - 0.3 * x['x1'] + 1.0).astype('float32')
    info = tasks.get('regression').label_info(
        y, config_lib.LabelConfig(name='y', target_transform='log'))
  return x, y, info


def _fit(task_name, strategy):
  task = tasks.get(task_name)
  x, y, info = _data(task_name)
  keras.utils.set_random_seed(3)
  with strategy.scope():
    model = model_lib.build_model(SPECS, (16,), task=task, label_info=info,
                                  seed=3)
    fit.compile_model(model, config_lib.ModelConfig(learning_rate=1e-2),
                      config_lib.RegularizationConfig(), task, info)
  data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
  result = fit.fit(model, data, data, data.take(2), epochs=3,
                   steps_per_epoch=None, reg=config_lib.RegularizationConfig(),
                   task=task, log_dir=None)
  return model, result, info


_CHILD = 'TASK_HEADS_TWO_CPUS'
TWO_REPLICAS = two_cpus.strategy(_CHILD)


@two_cpus.only_in_child(_CHILD)
@pytest.mark.parametrize('task_name', ['multiclass', 'regression'])
def test_in_child_head_trains_the_same_on_two_replicas(task_name):
  _, one, _ = _fit(task_name, tf.distribute.get_strategy())
  _, two, _ = _fit(task_name, TWO_REPLICAS)
  assert two['epochs'][-1]['eval']  # Two replicas ran the fit loop.
  task = tasks.get(task_name)
  for metric in task.metrics:
    first, second = one['epochs'][-1]['eval'][metric], two['epochs'][-1][
        'eval'][metric]
    assert second == pytest.approx(first, rel=0.05, abs=0.02), metric
  # And it learnt: better than the trivial predictor on its own data.
  last = two['epochs'][-1]['eval']
  if task_name == 'multiclass':
    assert last['accuracy'] > 0.6 and last['macro_f1'] > 0.5
  else:
    assert last['r2'] > 0.5


@pytest.mark.slow
def test_heads_train_the_same_on_two_replicas():
  two_cpus.run_children(__file__, _CHILD, '2 passed')


def test_regression_predicts_in_original_units():
  task = tasks.get('regression')
  model, result, info = _fit('regression', tf.distribute.get_strategy())
  x, y, _ = _data('regression', seed=1)
  prediction = model.predict(x, verbose=0)
  # The log target is inverted by the model's last layer: same units as y.
  assert np.median(prediction / y) == pytest.approx(1.0, abs=0.3)
  assert prediction.min() > 0
  outputs = task.serving_outputs(tf.constant(prediction), info)
  task.check_serving({k: v.numpy() for k, v in outputs.items()}, len(y), info)


def test_inputs_are_keyed_by_any_column_name():
  """'x0 (mm)' or 'city, name' are feature keys but not Keras layer names:
  the model builds, takes its inputs by those keys, and keeps two names
  that differ only in such characters apart."""
  specs = [model_lib.InputSpec('x0 (mm)_xf'), model_lib.InputSpec('x0 [mm]_xf'),
           model_lib.InputSpec('city, name_xf', num_tokens=5),
           model_lib.InputSpec('shop name_xf', num_tokens=70, embedding_dim=4,
                               embedding_dropout=0.1),
           model_lib.InputSpec('x1')]
  model = model_lib.build_model(specs, (4,), task=tasks.get('binary'),
                                label_info={}, seed=0)
  assert model_lib.input_keys(model) == sorted(s.name for s in specs)
  names = [layer.name for layer in model.layers]
  assert len(set(names)) == len(names)
  assert model_lib.layer_name('x1') == 'x1'  # Valid names stay.
  features = {'x0 (mm)_xf': [[1.0]], 'x0 [mm]_xf': [[2.0]],
              'city, name_xf': [[3]], 'shop name_xf': [[60]], 'x1': [[0.5]]}
  assert model({k: tf.constant(v) for k, v in features.items()}).shape == (1, 1)
