"""A recipe's precision against the machine it runs on: tf32 and bf16 need an Ampere or newer GPU, and
--use_cpu turns them off so that any recipe runs on a CPU."""

import logging
import os

from .errors import UserError

logger = logging.getLogger(__name__)

GPU_ONLY = ("tf32", "bf16", "bf16_full_eval")


def fit_to_the_machine(args):
    """Before TrainingArguments checks them: with --use_cpu, tf32 and bf16 off (a log line each); without it, a
    machine that cannot do what the recipe asks is refused in one sentence by rank 0, the other ranks ending
    without repeating it."""
    from transformers.utils import is_torch_bf16_gpu_available, is_torch_tf32_available
    if args.use_cpu:
        for name in GPU_ONLY:
            if getattr(args, name):
                logger.info("--%s turned off: with --use_cpu true the model trains in float32 on the CPU.", name)
            setattr(args, name, False)  # tf32's None (unset) too: recorded as off
        return
    can = {"tf32": is_torch_tf32_available, "bf16": is_torch_bf16_gpu_available}
    lacking = [f"--{name}" for name in can if getattr(args, name) and not can[name]()]
    if lacking:
        if int(os.environ.get("RANK", "0")):
            raise SystemExit(1)  # rank 0 says why, once
        raise UserError(f"The recipe asks for {' and '.join(lacking)}, which this machine cannot do (it takes an "
                        "Ampere or newer GPU); pass --use_cpu true to train on the CPU without them.")


def no_mixed_precision_on_the_cpu(args):
    """After TrainingArguments: with --use_cpu, no mixed precision either from an accelerate config (its
    mixed_precision: bf16 reaches the Trainer through ACCELERATE_MIXED_PRECISION)."""
    if args.use_cpu and args.mixed_precision != "no":
        logger.info("accelerate's mixed_precision %s turned off: with --use_cpu true the model trains in float32.",
                    args.mixed_precision)
        args.mixed_precision = "no"
