"""Model architecture: a feed-forward network over Transform's features.

The output layer is the task's (``core/tasks``). Regularization enters as
explicit parameters: L1/L2 (elastic net when both)
kernel penalties, dropout after each hidden layer and a max-norm constraint.
Decoupled weight decay and label smoothing belong to the optimizer and loss
(see ``fit.py``), early stopping to the fit loop.
"""

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components import preprocessing
from core import config as config_lib
from core import tasks


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """One model input: a transformed feature of shape [batch, 1]."""
  name: str
  num_tokens: Optional[int] = None  # Categorical index when set.


def input_specs(tf_transform_output: tft.TFTransformOutput,
                features: config_lib.FeaturesConfig) -> List[InputSpec]:
  """The model's inputs, read from what Transform actually produced."""
  produced = tf_transform_output.transformed_feature_spec()
  specs = []
  for name in features.numeric:
    specs.append(InputSpec(preprocessing.transformed_name(name)))
    if preprocessing.missing_name(name) in produced:
      specs.append(InputSpec(preprocessing.missing_name(name)))
  for name in features.categorical:
    specs.append(InputSpec(
        preprocessing.transformed_name(name),
        num_tokens=tf_transform_output.vocabulary_size_by_name(name) +
        features.oov_buckets))
  return specs


def kernel_regularizer(l1: float, l2: float) -> Optional[keras.regularizers.Regularizer]:
  """L1, L2, or both (elastic net); None when both strengths are zero."""
  if l1 and l2:
    return keras.regularizers.L1L2(l1=l1, l2=l2)
  if l1:
    return keras.regularizers.L1(l1)
  if l2:
    return keras.regularizers.L2(l2)
  return None


def build_model(specs: Sequence[InputSpec],
                hidden_units: Tuple[int, ...],
                *,
                task: tasks.Task,
                label_info: Mapping[str, Any],
                l1: float = 0.0,
                l2: float = 0.0,
                dropout: float = 0.0,
                max_norm: Optional[float] = None,
                seed: int = 0) -> keras.Model:
  """An uncompiled network with the task's head; call inside
  ``strategy.scope()``."""
  inputs = {
      spec.name: keras.Input(shape=(1,), name=spec.name,
                             dtype=tf.int64 if spec.num_tokens else tf.float32)
      for spec in specs
  }
  encoded = []
  for spec in specs:
    if spec.num_tokens:
      encoded.append(keras.layers.CategoryEncoding(
          num_tokens=spec.num_tokens, output_mode='one_hot',
          name=f'{spec.name}_onehot')(inputs[spec.name]))
    else:
      encoded.append(inputs[spec.name])
  x = keras.layers.Concatenate(name='features')(encoded)
  constraint = keras.constraints.MaxNorm(max_norm) if max_norm else None
  for i, units in enumerate(hidden_units):
    x = keras.layers.Dense(
        units, activation='relu', name=f'hidden_{i}',
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i),
        kernel_regularizer=kernel_regularizer(l1, l2),
        kernel_constraint=constraint)(x)
    if dropout:
      x = keras.layers.Dropout(dropout, seed=seed + i, name=f'dropout_{i}')(x)
  output = task.head(
      x, label_info,
      kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 100),
      kernel_regularizer=kernel_regularizer(l1, l2),
      kernel_constraint=constraint)
  return keras.Model(inputs=inputs, outputs=output)


def kernels(model: keras.Model) -> Dict[str, np.ndarray]:
  """The Dense layers' kernels, by layer name."""
  return {layer.name: layer.kernel.numpy() for layer in model.layers
          if isinstance(layer, keras.layers.Dense)}


def weight_summary(model: keras.Model, zero_tolerance: float = 1e-3) -> dict:
  """Kernel norm and sparsity: how regularization shaped the weights."""
  flat = np.concatenate([k.ravel() for k in kernels(model).values()])
  return {
      'kernel_l2_norm': float((flat ** 2).sum() ** 0.5),
      'kernel_l1_norm': float(abs(flat).sum()),
      'kernel_count': int(flat.size),
      'near_zero_fraction': float((abs(flat) < zero_tolerance).mean()),
      'zero_tolerance': zero_tolerance,
  }
