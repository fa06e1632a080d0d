"""The ``GeneralizationGate`` component: spec and component class.

It replaces the stock Evaluator in this pipeline and is the only producer of
the ``ModelBlessing`` that the Pusher and the latest-blessed-model resolver
read, so a model that failed the gap check can never become a baseline.
"""

from typing import Optional

from tfx import types
from tfx import v1 as tfx
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import json_utils

from components.gate import executor, keys
from core import config as config_lib


class GeneralizationGateSpec(types.ComponentSpec):
  """Inputs, outputs and parameters of the gate."""
  PARAMETERS = {
      keys.GATE_CONFIG_KEY: ExecutionParameter(type=str),
      keys.LABEL_KEY: ExecutionParameter(type=str),
      keys.HELD_OUT_SPLIT_KEY: ExecutionParameter(type=str),
      keys.TRAIN_SPLIT_KEY: ExecutionParameter(type=str),
      # The pipeline's task (core/tasks); the candidate's task.json must
      # record the same.
      keys.TASK_KEY: ExecutionParameter(type=str),
  }
  INPUTS = {
      keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      keys.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
      keys.BASELINE_MODEL_KEY: ChannelParameter(
          type=standard_artifacts.Model, optional=True),
      keys.SCHEMA_KEY: ChannelParameter(
          type=standard_artifacts.Schema, optional=True),
  }
  OUTPUTS = {
      keys.EVALUATION_KEY: ChannelParameter(
          type=standard_artifacts.ModelEvaluation),
      keys.BLESSING_KEY: ChannelParameter(
          type=standard_artifacts.ModelBlessing),
  }


class GeneralizationGate(base_beam_component.BaseBeamComponent):
  """Blesses the candidate only if it is good, no worse, and generalizes.

  ``task``: the pipeline's task name (``config.task``); ``gate``: the gate
  section, validated for that task.
  """

  SPEC_CLASS = GeneralizationGateSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self,
               examples: types.BaseChannel,
               model: types.BaseChannel,
               gate: config_lib.GateConfig,
               label_key: str,
               task: str,
               baseline_model: Optional[types.BaseChannel] = None,
               schema: Optional[types.BaseChannel] = None,
               held_out_split: str = 'test',
               train_split: str = 'train'):
    spec = GeneralizationGateSpec(
        examples=examples, model=model, baseline_model=baseline_model,
        schema=schema,
        gate_config=json_utils.dumps(config_lib.to_plain(gate)),
        label_key=label_key, task=task, held_out_split=held_out_split,
        train_split=train_split,
        evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
        blessing=types.Channel(type=standard_artifacts.ModelBlessing))
    super().__init__(spec=spec)
