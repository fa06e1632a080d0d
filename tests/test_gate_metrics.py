"""The gate's log-loss metric: Keras' definition, computed by TFMA natively."""

import numpy as np
import pytest
import tf_keras as keras
from tensorflow_model_analysis.metrics import metric_types

from components.gate import metrics


def _combine(labels, predictions):
  [computation] = metrics.ClippedBinaryCrossEntropy().computations()
  combiner = computation.combiner
  accumulator = combiner.create_accumulator()
  for label, prediction in zip(labels, predictions):
    accumulator = combiner.add_input(
        accumulator, metric_types.StandardMetricInputs(
            labels=np.array([label]), predictions=np.array([prediction]),
            example_weights=np.array([1.0])))
  [value] = combiner.extract_output(accumulator).values()
  return value


def test_equals_keras_binary_crossentropy_even_when_saturated():
  labels = [0.0, 1.0, 1.0, 0.0, 1.0]
  # 0 and 1 exactly: what an overfit network in float32 outputs.
  predictions = [0.0, 1.0, 0.7, 1.0, 0.2]
  value = _combine(labels, predictions)
  expected = float(keras.losses.BinaryCrossentropy()(
      np.array(labels)[:, None], np.array(predictions)[:, None]))
  assert np.isfinite(value)
  assert value == pytest.approx(expected, rel=1e-5)
