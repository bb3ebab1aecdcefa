"""K models of one architecture as one module, for population training: nets of linear layers
stacked on a leading member dimension (`stack_models`), conv nets folded into the channels of
one grouped net (`fold_models`), and one optimizer step for all members (`StackedStep`).

Pure model transformations: they know nothing of tasks, trials or budgets (`lrbench.training`
drives them).
"""

from lrbench.stacking._folded import (
    FoldedBatchNorm2d,
    FoldedConv2d,
    FoldedLinear,
    fold_input,
    fold_models,
    unfold_output,
)
from lrbench.stacking._stacked import (
    StackedLinear,
    keep_members,
    replace_module,
    stack_models,
    stacked_linear,
    stacked_parameter,
    stacked_weight_and_bias,
)
from lrbench.stacking._stacked_step import StackedStep

__all__ = [
    "FoldedBatchNorm2d",
    "FoldedConv2d",
    "FoldedLinear",
    "StackedLinear",
    "StackedStep",
    "fold_input",
    "fold_models",
    "keep_members",
    "replace_module",
    "stack_models",
    "stacked_linear",
    "stacked_parameter",
    "stacked_weight_and_bias",
    "unfold_output",
]
