"""The gate's artifact and parameter keys and the name of its record.

Plain constants without TFX, so that the run history (pipeline/history.py,
which imports neither TFX nor TensorFlow) reads ``gate.json`` by the same
name the executor writes it under.
"""

# Artifact keys.
EXAMPLES_KEY = 'examples'
MODEL_KEY = 'model'
BASELINE_MODEL_KEY = 'baseline_model'
SCHEMA_KEY = 'schema'
EVALUATION_KEY = 'evaluation'
BLESSING_KEY = 'blessing'
# Execution parameter keys.
GATE_CONFIG_KEY = 'gate_config'
LABEL_KEY = 'label_key'
HELD_OUT_SPLIT_KEY = 'held_out_split'
TRAIN_SPLIT_KEY = 'train_split'
TASK_KEY = 'task'

# Every check with its numbers, in the evaluation and blessing artifacts.
GATE_JSON = 'gate.json'
