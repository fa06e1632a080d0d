"""Export signatures: ``serving_default`` and ``transform_features``.

``serving_default`` takes serialized raw ``tf.Example``s (without the label's
source columns) and returns the probability of the positive class.
``transform_features`` applies Transform's graph to raw examples (label
included); TFMA calls it through ``preprocessing_function_names`` so that the
gate evaluates on exactly the features and label the model trained on.
"""

from typing import Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

SERVING_SIGNATURE = 'serving_default'
TRANSFORM_SIGNATURE = 'transform_features'
OUTPUT_KEY = 'probability'


def _serving_fn(model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                label_columns: Sequence[str]):
  model.tft_layer = tf_transform_output.transform_features_layer()
  feature_spec = tf_transform_output.raw_feature_spec()
  for column in label_columns:
    feature_spec.pop(column, None)
  input_names = [spec.name for spec in model.inputs]

  @tf.function(input_signature=[
      tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')])
  def serve(serialized):
    parsed = tf.io.parse_example(serialized, feature_spec)
    transformed = model.tft_layer(parsed)
    features = {name: transformed[name] for name in input_names}
    return {OUTPUT_KEY: model(features, training=False)}

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
           serving_dir: str, label_columns: Sequence[str]) -> None:
  """Saves the model with both signatures to ``serving_dir``."""
  signatures = {
      SERVING_SIGNATURE: _serving_fn(model, tf_transform_output,
                                     label_columns),
      TRANSFORM_SIGNATURE: _transform_fn(model, tf_transform_output),
  }
  model.save(serving_dir, save_format='tf', signatures=signatures)
