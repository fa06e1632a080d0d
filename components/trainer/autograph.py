"""Keeps AutoGraph out of tf_keras, as it always stayed out of Keras.

TensorFlow's AutoGraph never converts the ``keras`` package (its conversion
rules list ``DoNotConvert('keras')``): Keras code is written for graph mode.
Since Keras 2 moved to the separate ``tf_keras`` package, which TF 2.16 does
not list, every layer's ``call`` is transpiled again at each trace. Measured
on the taxi model: AutoGraph conversion was most of the Trainer's first epoch
(see docs/performance.md). Adding the same rule for ``tf_keras`` restores the
Keras 2 behaviour; our own tf.functions are still converted.
"""

from tensorflow.python.autograph.core import config as _autograph_config
from tensorflow.python.autograph.core import config_lib as _config_lib

RULE = _config_lib.DoNotConvert('tf_keras')


def skip_tf_keras() -> None:
  """Idempotently adds the rule (before the catch-all rules that follow)."""
  rules = _autograph_config.CONVERSION_RULES
  if not any(isinstance(r, _config_lib.DoNotConvert) and
             r._prefix == RULE._prefix for r in rules):  # pylint: disable=protected-access
    _autograph_config.CONVERSION_RULES = (RULE,) + tuple(rules)
