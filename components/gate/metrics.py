"""A TFMA log-loss metric that matches the Trainer's.

The gate compares train and held-out log loss with the same definition the
Trainer's curves use: Keras' ``BinaryCrossentropy``, which clips
probabilities to [1e-7, 1 - 1e-7]. TFMA can compute that Keras metric only
through its TensorFlow wrapper, which runs a graph in every combiner (most of
the train side's extra cost in the gate, measured); TFMA's native
``BinaryCrossEntropy`` is plain numpy but does not clip, so a saturated
model (the overfit one the gate exists to block) gets NaN from 0 * log 0.
This is the native metric with Keras' formula (clip to [eps, 1 - eps], then
log(p + eps) and log(1 - p + eps), eps = 1e-7).
"""

from typing import Optional

import numpy as np
from tensorflow_model_analysis.metrics import cross_entropy_metrics
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util

# Keras' backend epsilon, which its BinaryCrossentropy clips with.
EPSILON = 1e-7
NAME = 'binary_crossentropy'


class _ClippedCombiner(cross_entropy_metrics._BinaryCrossEntropyCombiner):  # pylint: disable=protected-access
  """TFMA's combiner with Keras' formula: clip, then epsilon in the logs."""

  def _cross_entropy(self, label: np.ndarray, prediction: np.ndarray) -> float:
    p = np.clip(prediction, EPSILON, 1.0 - EPSILON)
    loss = -(label * np.log(p + EPSILON)
             + (1.0 - label) * np.log(1.0 - p + EPSILON))
    return metric_util.safe_to_scalar(np.mean(loss))


def _computations(name: Optional[str] = None, eval_config=None,
                  model_name: Optional[str] = None,
                  output_name: Optional[str] = None,
                  example_weighted: bool = False, sub_key=None,
                  aggregation_type=None, class_weights=None
                  ) -> metric_types.MetricComputations:
  key = metric_types.MetricKey(name=name, model_name=model_name,
                               output_name=output_name, sub_key=sub_key,
                               example_weighted=example_weighted)
  return [metric_types.MetricComputation(
      keys=[key], preprocessors=None,
      combiner=_ClippedCombiner(
          from_logits=False, label_smoothing=0.0, eval_config=eval_config,
          model_name=model_name, output_name=output_name, metric_key=key,
          example_weighted=example_weighted,
          aggregation_type=aggregation_type, class_weights=class_weights))]


class ClippedBinaryCrossEntropy(metric_types.Metric):
  """Binary cross-entropy of probabilities clipped as Keras clips them."""

  def __init__(self, name: str = NAME):
    super().__init__(metric_util.merge_per_key_computations(_computations),
                     name=name)


metric_types.register_metric(ClippedBinaryCrossEntropy)
