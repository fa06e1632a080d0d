"""``SafePusher``: the stock Pusher's blessing check, with a smoke test of the
serving signature on raw examples and an atomic, versioned publish.

The smoke test holds the model to its task's output contract (the task the
Trainer recorded inside the model, ``core.tasks.TASK_JSON``): a model that
records no task is not pushed."""

import os
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx import v1 as tfx
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.pusher import push
from core import records

MODEL_KEY = 'model'
MODEL_BLESSING_KEY = 'model_blessing'
EXAMPLES_KEY = 'examples'
PUSHED_MODEL_KEY = 'pushed_model'
SERVING_DIR_KEY = 'serving_dir'
SMOKE_SPLIT_KEY = 'smoke_split'
SMOKE_EXAMPLES = 8
# The gate records on its blessing the model it judged (the stock
# Evaluator's property names).
BLESSED_MODEL_ID = 'current_model_id'
BLESSED_MODEL_URI = 'current_model'


def read_examples(examples: List[types.Artifact], split: str,
                  count: int) -> List[bytes]:
  """The first ``count`` serialized examples of a split."""
  # TFX's lookup checks that the split exists (and knows older layouts).
  uri = artifact_utils.get_split_uris(examples, split)[0]
  return records.read_all(records.files_in(uri), limit=count)


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
    model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
    blessing = artifact_utils.get_single_instance(
        input_dict[MODEL_BLESSING_KEY])
    check_blessing_is_for(blessing, model)
    model_path = self.GetModelPath(input_dict)
    serving_dir = exec_properties[SERVING_DIR_KEY]

    def smoke_test() -> None:
      raw = read_examples(input_dict[EXAMPLES_KEY],
                          exec_properties[SMOKE_SPLIT_KEY], SMOKE_EXAMPLES)
      # Raises PushError (the execution fails) unless the model serves the
      # raw examples within its task's output contract.
      outputs = push.verify_serving(model_path, raw)
      logging.info('Serving smoke test passed on %d raw examples: outputs %s',
                   len(raw), {k: list(v.shape) for k, v in outputs.items()})

    target, new = push.publish(model_path, serving_dir, model.uri,
                               verify=smoke_test)
    # Re-blessed (e.g. against itself as baseline): already being served.
    logging.info('Model %s %s %s', model.uri,
                 'pushed to' if new else 'is already served at', target)
    self._MarkPushed(pushed, pushed_destination=target,
                     pushed_version=os.path.basename(target))


def check_blessing_is_for(blessing: types.Artifact,
                          model: types.Artifact) -> None:
  """A blessing belongs to the model the gate judged: pushing another model
  with it (a wiring mistake, a stale channel) is refused. Compared by MLMD
  id where both have one (LocalDagRunner), else by URI (a Kubeflow launcher
  hands executors artifacts without ids)."""
  blessed_id = blessing.get_int_custom_property(BLESSED_MODEL_ID)
  blessed_uri = blessing.get_string_custom_property(BLESSED_MODEL_URI)
  same = (blessed_id == model.id if blessed_id and model.id
          else bool(blessed_uri) and blessed_uri == model.uri)
  if not same:
    raise push.PushError(
        f'the blessing {blessing.uri} is for model {blessed_uri or "(none)"} '
        f'(id {blessed_id or "unknown"}), not for model {model.uri} (id '
        f'{model.id or "unknown"}) that this pusher was given; nothing was '
        'pushed')


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
