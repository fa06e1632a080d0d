"""``SafePusher``: the stock Pusher's blessing check, with a smoke test of the
serving signature on raw examples and an atomic, versioned publish.

The smoke test holds the model to its task's output contract (the task the
Trainer recorded inside the model, ``core.tasks.TASK_JSON``): a model that
records no task is not pushed."""

import os
from typing import Any, Dict, List

import tensorflow as tf
from absl import logging
from tfx import types
from tfx import v1 as tfx
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from components.pusher import push

MODEL_KEY = 'model'
MODEL_BLESSING_KEY = 'model_blessing'
EXAMPLES_KEY = 'examples'
PUSHED_MODEL_KEY = 'pushed_model'
SERVING_DIR_KEY = 'serving_dir'
SMOKE_SPLIT_KEY = 'smoke_split'
SMOKE_EXAMPLES = 8


def read_examples(examples: List[types.Artifact], split: str,
                  count: int) -> List[bytes]:
  """The first ``count`` serialized examples of a split."""
  uri = artifact_utils.get_split_uris(examples, split)[0]
  files = sorted(tf.io.gfile.glob(io_utils.all_files_pattern(uri)))
  dataset = tf.data.TFRecordDataset(files, compression_type='GZIP')
  return [r.numpy() for r in dataset.take(count)]


class Executor(pusher_executor.Executor):
  """Pushes only blessed models that serve raw examples within their task's
  output contract, atomically."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    pushed = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(pushed)
      return
    model_path = self.GetModelPath(input_dict)
    serving_dir = exec_properties[SERVING_DIR_KEY]
    model_uri = artifact_utils.get_single_uri(input_dict[MODEL_KEY])
    existing = push.find_pushed(serving_dir, model_uri)
    if existing:
      # Re-blessed (e.g. against itself as baseline): already being served.
      logging.info('Model %s is already pushed at %s', model_uri, existing)
      self._MarkPushed(pushed, pushed_destination=existing,
                       pushed_version=os.path.basename(existing))
      return
    raw = read_examples(input_dict[EXAMPLES_KEY],
                        exec_properties[SMOKE_SPLIT_KEY], SMOKE_EXAMPLES)
    # Raises PushError (the execution fails) unless the model serves the raw
    # examples within its task's output contract.
    outputs = push.verify_serving(model_path, raw)
    logging.info('Serving smoke test passed on %d raw examples: outputs %s',
                 len(raw), {k: list(v.shape) for k, v in outputs.items()})
    target = push.atomic_push(model_path, serving_dir, source_uri=model_uri)
    logging.info('Model pushed to %s', target)
    self._MarkPushed(pushed, pushed_destination=target,
                     pushed_version=os.path.basename(target))


class SafePusherSpec(types.ComponentSpec):
  PARAMETERS = {
      SERVING_DIR_KEY: ExecutionParameter(type=str),
      SMOKE_SPLIT_KEY: ExecutionParameter(type=str),
  }
  INPUTS = {
      MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
      MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
  }
  OUTPUTS = {
      PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
  }


class SafePusher(base_component.BaseComponent):
  """Pusher that smoke-tests the serving signature and publishes atomically."""

  SPEC_CLASS = SafePusherSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

  def __init__(self, model: types.BaseChannel,
               model_blessing: types.BaseChannel,
               examples: types.BaseChannel, serving_dir,
               smoke_split: str = 'test'):
    super().__init__(spec=SafePusherSpec(
        model=model, model_blessing=model_blessing, examples=examples,
        serving_dir=serving_dir, smoke_split=smoke_split,
        pushed_model=types.Channel(type=standard_artifacts.PushedModel)))
