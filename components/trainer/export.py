"""Export signatures: ``serving_default`` and ``transform_features``.

``serving_default`` takes serialized raw ``tf.Example``s (without the label's
source columns) and returns the task's outputs (``core/tasks``): the
positive-class probability, the class probabilities and names, or the
prediction in the label's units, with the probabilities' temperature
applied when the Trainer fitted one. The task, the label and its train-split
information are recorded inside the model (``core.tasks.TASK_JSON``).
``transform_features`` applies Transform's graph to raw examples (label
included); TFMA calls it through ``preprocessing_function_names`` so that the
gate evaluates on exactly the features and label the model trained on.
"""

from typing import Any, Mapping, Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.trainer import model as model_lib
from core import tasks

SERVING_SIGNATURE = 'serving_default'
TRANSFORM_SIGNATURE = 'transform_features'


def _serving_fn(model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                label_columns: Sequence[str], task: tasks.Task,
                label_info: Mapping[str, Any], temperature: float):
  model.tft_layer = tf_transform_output.transform_features_layer()
  feature_spec = tf_transform_output.raw_feature_spec()
  for column in label_columns:
    feature_spec.pop(column, None)
  input_names = model_lib.input_keys(model)

  @tf.function(input_signature=[
      tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')])
  def serve(serialized):
    parsed = tf.io.parse_example(serialized, feature_spec)
    transformed = model.tft_layer(parsed)
    features = {name: transformed[name] for name in input_names}
    output = model(features, training=False)
    if temperature != 1.0:
      output = task.with_temperature(output, temperature)
    return task.serving_outputs(output, label_info)

  return serve


def _transform_fn(model: keras.Model,
                  tf_transform_output: tft.TFTransformOutput):
  model.tft_layer_eval = tf_transform_output.transform_features_layer()
  feature_spec = tf_transform_output.raw_feature_spec()

  @tf.function(input_signature=[
      tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')])
  def transform(serialized):
    parsed = tf.io.parse_example(serialized, feature_spec)
    return model.tft_layer_eval(parsed)

  return transform


def export(model: keras.Model, tf_transform_output: tft.TFTransformOutput,
           serving_dir: str, label_columns: Sequence[str], *, task: tasks.Task,
           label: str, label_info: Mapping[str, Any],
           features: Mapping[str, Sequence[str]],
           temperature: float = 1.0) -> None:
  """Saves the model with both signatures to ``serving_dir``;
  ``features``: the raw feature names by kind, recorded beside the task so
  that the gate compares only baselines fed the same features;
  ``temperature``: the serving outputs' (calibration.py)."""
  signatures = {
      SERVING_SIGNATURE: _serving_fn(model, tf_transform_output,
                                     label_columns, task, label_info,
                                     temperature),
      TRANSFORM_SIGNATURE: _transform_fn(model, tf_transform_output),
  }
  model.save(serving_dir, save_format='tf', signatures=signatures)
  tasks.write_model_task(serving_dir, task, label, dict(label_info), features)
