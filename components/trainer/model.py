"""Model architecture: a feed-forward network over Transform's features.

The output layer is the task's (``core/tasks``). Regularization enters as
explicit parameters: L1/L2 (elastic net when both)
kernel penalties, dropout after each hidden layer and a max-norm constraint,
batch normalization in the hidden layers, Gaussian noise on the encoded
features and mixup (``mixup.py``, a train step that mixes the encoded
features). Numeric features can enter through periodic embeddings
(``PeriodicEmbedding``, ``model.numeric_embedding``). Decoupled weight
decay, weight averaging, the learning-rate schedule and label smoothing
belong to the optimizer, loss and fit loop (see ``fit.py``), early stopping
to the fit loop.
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
  # A numeric column's encoded value (not its missing-value indicator or its
  # linear part): what a numeric embedding embeds.
  continuous: bool = False
  num_tokens: Optional[int] = None  # Categorical index when set.
  # A categorical index with a learned embedding of this width (else one-hot),
  # with its own L2 penalty and dropout.
  embedding_dim: Optional[int] = None
  embedding_l2: float = 0.0
  embedding_dropout: float = 0.0


def embedding_dim(num_tokens: int, features: config_lib.FeaturesConfig
                  ) -> Optional[int]:
  """The embedding width for a column of ``num_tokens`` tokens, or None for
  a one-hot block: fast.ai's min(cap, round(1.6 * n^0.56))."""
  if not features.embedding_min_vocab or (
      num_tokens < features.embedding_min_vocab):
    return None
  return int(min(features.embedding_max_dim, round(1.6 * num_tokens ** 0.56)))


def input_specs(tf_transform_output: tft.TFTransformOutput,
                features: config_lib.FeaturesConfig,
                numeric_encodings: Optional[Dict[str, str]] = None
                ) -> List[InputSpec]:
  """The model's inputs, read from what Transform actually produced:
  ``numeric_encodings`` is preprocessing.numeric_encodings' answer (a
  column's all-zero ``linear_name`` output is left out), read here when the
  caller has not already."""
  if numeric_encodings is None:
    numeric_encodings = preprocessing.numeric_encodings(tf_transform_output,
                                                        features)
  produced = tf_transform_output.transformed_feature_spec()
  linear = preprocessing.with_linear(numeric_encodings)
  specs = []
  for name in features.numeric:
    specs.append(InputSpec(preprocessing.transformed_name(name),
                           continuous=True))
    if name in linear:
      specs.append(InputSpec(preprocessing.linear_name(name)))
    if preprocessing.missing_name(name) in produced:
      specs.append(InputSpec(preprocessing.missing_name(name)))
  for name in features.categorical:
    tokens = (tf_transform_output.vocabulary_size_by_name(
        preprocessing.vocabulary_name(name)) +
              features.oov_buckets)
    dim = embedding_dim(tokens, features)
    specs.append(InputSpec(
        preprocessing.transformed_name(name), num_tokens=tokens,
        embedding_dim=dim,
        embedding_l2=features.embedding_l2 if dim else 0.0,
        embedding_dropout=features.embedding_dropout if dim else 0.0))
  return specs


def input_encodings(specs: Sequence[InputSpec]) -> Dict[str, Dict[str, Any]]:
  """Categorical input -> how the model encodes it, for the run report."""
  return {spec.name: ({'encoding': 'embedding', 'tokens': spec.num_tokens,
                       'dim': spec.embedding_dim, 'l2': spec.embedding_l2,
                       'dropout': spec.embedding_dropout}
                      if spec.embedding_dim else
                      {'encoding': 'one-hot', 'tokens': spec.num_tokens})
          for spec in specs if spec.num_tokens}


def kernel_regularizer(l1: float, l2: float) -> Optional[keras.regularizers.Regularizer]:
  """L1, L2, or both (elastic net); None when both strengths are zero."""
  if l1 and l2:
    return keras.regularizers.L1L2(l1=l1, l2=l2)
  if l1:
    return keras.regularizers.L1(l1)
  if l2:
    return keras.regularizers.L2(l2)
  return None


def layer_name(key: str) -> str:
  """``key`` (a transformed feature's) as a Keras layer name
  (``preprocessing.safe_name``); the model's inputs stay keyed by ``key``."""
  return preprocessing.safe_name(key)


def input_keys(model: keras.Model) -> List[str]:
  """The feature keys the model's inputs are keyed by."""
  return sorted(model.input)


def build_model(specs: Sequence[InputSpec],
                hidden_units: Tuple[int, ...],
                *,
                task: tasks.Task,
                label_info: Mapping[str, Any],
                l1: float = 0.0,
                l2: float = 0.0,
                dropout: float = 0.0,
                max_norm: Optional[float] = None,
                batch_norm: bool = False,
                input_noise: float = 0.0,
                mixup: float = 0.0,
                numeric_embedding: Optional[
                    config_lib.PeriodicEmbeddingConfig] = None,
                seed: int = 0) -> keras.Model:
  """An uncompiled network with the task's head; call inside
  ``strategy.scope()``.

  ``batch_norm``: Dense, BatchNormalization, ReLU in each hidden layer;
  ``input_noise``: the stddev of Gaussian noise on the encoded features
  (training only); ``mixup``: Beta(mixup, mixup) mixing of pairs of
  examples and their labels in the train step (``mixup.MixupModel``);
  ``numeric_embedding``: each continuous input through its own periodic
  embedding, its linear layer under the kernels' penalty.
  """
  inputs = _inputs(specs)
  encoded = []
  for spec in specs:
    if spec.continuous and numeric_embedding is not None:
      encoded.append(_periodic(inputs[spec.name], spec, numeric_embedding,
                               kernel_regularizer(l1, l2),
                               seed + len(encoded)))
    elif spec.embedding_dim:
      encoded.append(_embedded(inputs[spec.name], spec, seed + len(encoded)))
    elif spec.num_tokens:
      encoded.append(keras.layers.CategoryEncoding(
          num_tokens=spec.num_tokens, output_mode='one_hot',
          name=f'{layer_name(spec.name)}_onehot')(inputs[spec.name]))
    else:
      encoded.append(inputs[spec.name])
  x = keras.layers.Concatenate(name='features')(encoded)
  features = x  # Where mixup mixes (after any encoding, before the noise).
  if input_noise:
    x = keras.layers.GaussianNoise(input_noise, seed=seed + 400,
                                   name='input_noise')(x)
  constraint = keras.constraints.MaxNorm(max_norm) if max_norm else None
  for i, units in enumerate(hidden_units):
    # With batch normalization the Dense bias is redundant (BN's beta).
    x = keras.layers.Dense(
        units, activation=None if batch_norm else 'relu', name=f'hidden_{i}',
        use_bias=not batch_norm,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i),
        kernel_regularizer=kernel_regularizer(l1, l2),
        kernel_constraint=constraint)(x)
    if batch_norm:
      x = keras.layers.BatchNormalization(name=f'batch_norm_{i}')(x)
      x = keras.layers.Activation('relu', name=f'relu_{i}')(x)
    if dropout:
      x = keras.layers.Dropout(dropout, seed=seed + i, name=f'dropout_{i}')(x)
  output = task.head(
      x, label_info,
      kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 100),
      kernel_regularizer=kernel_regularizer(l1, l2),
      kernel_constraint=constraint)
  if mixup:
    from components.trainer import mixup as mixup_lib  # pylint: disable=g-import-not-at-top
    return mixup_lib.MixupModel.mixing(inputs, features, output, alpha=mixup,
                                       seed=seed + 500)
  return keras.Model(inputs=inputs, outputs=output)


def _inputs(specs: Sequence[InputSpec]) -> Dict[str, Any]:
  return {
      spec.name: keras.Input(shape=(1,), name=layer_name(spec.name),
                             dtype=tf.int64 if spec.num_tokens else tf.float32)
      for spec in specs
  }


def ensemble(members: Sequence[keras.Model],
             specs: Sequence[InputSpec]) -> keras.Model:
  """One model whose output is the mean of ``members``' outputs (their
  probabilities, or their predictions), keyed by the same inputs; a single
  member is returned as it is. Call inside the strategy scope the members
  were built in."""
  if len(members) == 1:
    return members[0]
  inputs = _inputs(specs)
  outputs = [member(inputs) for member in members]
  return keras.Model(inputs=inputs,
                     outputs=keras.layers.Average(name='ensemble')(outputs),
                     name='ensemble')


def regularization_kwargs(reg: config_lib.RegularizationConfig) -> Dict[str, Any]:
  """The model-side techniques of ``reg``, as ``build_model`` takes them
  (the optimizer, loss and fit loop take the rest, see ``fit.py``)."""
  return dict(l1=reg.l1, l2=reg.l2, dropout=reg.dropout,
              max_norm=reg.max_norm, batch_norm=reg.batch_norm,
              input_noise=reg.input_noise, mixup=reg.mixup)


@keras.utils.register_keras_serializable(package='generalize')
class PeriodicEmbedding(keras.layers.Layer):
  """[batch, 1] -> [batch, 2k]: [cos 2πcx, sin 2πcx] for ``k`` learned
  frequencies c, initialized from N(0, sigma^2) (Gorishniy et al., 2022)."""

  def __init__(self, frequencies: int, sigma: float, seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.frequencies, self.sigma, self.seed = frequencies, sigma, seed

  # Keras runs build through AutoGraph, which has nothing to convert here
  # and trips on the zero-argument super().
  @tf.autograph.experimental.do_not_convert
  def build(self, input_shape):
    self.coefficients = self.add_weight(
        name='coefficients', shape=(1, self.frequencies),
        initializer=keras.initializers.RandomNormal(0.0, self.sigma,
                                                    seed=self.seed))
    super().build(input_shape)

  def call(self, x):
    angles = 2 * np.pi * tf.matmul(tf.cast(x, self.coefficients.dtype),
                                   self.coefficients)
    return tf.concat([tf.cos(angles), tf.sin(angles)], axis=-1)

  def get_config(self):
    return {**super().get_config(), 'frequencies': self.frequencies,
            'sigma': self.sigma, 'seed': self.seed}


def _periodic(value, spec: InputSpec,
              embedding: config_lib.PeriodicEmbeddingConfig,
              regularizer: Optional[keras.regularizers.Regularizer],
              seed: int):
  """A [batch, 1] numeric value as ReLU(Dense(periodic features)), PLR."""
  name = layer_name(spec.name)
  x = PeriodicEmbedding(embedding.frequencies, embedding.sigma, seed=seed + 600,
                        name=f'{name}_periodic')(value)
  return keras.layers.Dense(
      embedding.dim, activation='relu', name=f'{name}_periodic_linear',
      kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 700),
      kernel_regularizer=regularizer)(x)


def _embedded(index, spec: InputSpec, seed: int):
  """A [batch, 1] index as a [batch, dim] learned embedding."""
  x = keras.layers.Embedding(
      spec.num_tokens, spec.embedding_dim, name=f'{layer_name(spec.name)}_embedding',
      embeddings_initializer=keras.initializers.RandomUniform(
          -0.05, 0.05, seed=seed + 200),
      embeddings_regularizer=(keras.regularizers.L2(spec.embedding_l2)
                              if spec.embedding_l2 else None))(index)
  x = keras.layers.Reshape((spec.embedding_dim,),
                           name=f'{layer_name(spec.name)}_embedded')(x)
  if spec.embedding_dropout:
    x = keras.layers.Dropout(spec.embedding_dropout, seed=seed + 300,
                             name=f'{layer_name(spec.name)}_embedding_dropout')(x)
  return x


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
