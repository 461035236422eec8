"""Stopping a training run cleanly: on SIGTERM or Ctrl-C, or at a validation loss, with every step recorded; and
noting a loss that is not finite without making the host wait for the device."""

import logging
import signal

import torch
import torch.distributed as dist
from transformers import ProgressCallback, TrainerCallback

from .errors import NonFiniteLoss
from .run_folder import last_complete_checkpoint

logger = logging.getLogger(__name__)

NO_STEP = 2**62  # NonFiniteWatch's "no bad step yet"


class PreemptionCallback(TrainerCallback):
    """Inside `with`: on SIGTERM (a preempted job) or SIGINT (Ctrl-C), save a checkpoint at the end of the
    current step and stop; `received` is the signal's number.

    Leaving the block puts the previous handlers back: a process that goes on to fork workers (datasets'
    num_proc pools stop theirs with SIGTERM) must not hand them a handler that ignores it, or the pool
    waits for them forever."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = 0
        self._previous_handlers = {}

    def __enter__(self):
        self._previous_handlers = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for number, handler in self._previous_handlers.items():
            signal.signal(number, handler)

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.received == signal.SIGINT:  # a second Ctrl-C: a step may be stuck
            signal.signal(signal.SIGINT, self._previous_handlers[signal.SIGINT])
            raise KeyboardInterrupt
        self.received = max(self.received, signum)

    def on_step_end(self, args, state, control, **kwargs):
        stop = self.received
        if dist.is_available() and dist.is_initialized():
            # every process must agree, or one would wait forever for the others at the next step
            flag = torch.tensor([float(stop)], device=args.device if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = int(flag.item())
        if stop:
            self.received = stop
            control.should_save = True
            control.should_training_stop = True
        return control


class StopAtEvalLoss(TrainerCallback):
    """--stop_at_eval_loss: the first evaluation at or below the threshold ends the run with a checkpoint."""

    def __init__(self, threshold):
        self.threshold = threshold

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.threshold is not None and metrics and metrics.get("eval_loss", float("inf")) <= self.threshold:
            logger.info("Validation loss %.4f reached --stop_at_eval_loss %s at step %d: the run ends here.",
                        metrics["eval_loss"], self.threshold, state.global_step)
            control.should_save = control.should_training_stop = control.should_log = True
        return control


class RecordEveryCheckpoint(TrainerCallback):
    """Log the loss at every checkpoint and checkpoint the last step, whatever the recipe's intervals: the
    log history then covers every step exactly (train_loss over all steps, across resumes), and the final
    weights are on disk before the export, so a kill during export or evaluation loses nothing."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = True
        if control.should_save:
            control.should_log = True
        return control


class NonFiniteWatch:
    """The first optimizer step whose training loss was not finite, noted on the loss's device at every micro-batch
    with no host read (a host read waits for every kernel queued before it: the GPU then idles while the host
    queues the next ones). `first_bad` reads it: call it where the host waits anyway (a logged loss) and before
    every checkpoint, so that no checkpoint holds the weights a non-finite loss made."""

    def __init__(self):
        self._step = self._loss = None  # tensors on the loss's device, made at the first note

    def note(self, loss, step):
        loss = loss.detach().float()
        if self._step is None:
            self._step = torch.full((), NO_STEP, dtype=torch.int64, device=loss.device)
            self._loss = torch.zeros((), device=loss.device)
        first = ~torch.isfinite(loss) & (self._step == NO_STEP)
        self._step = torch.where(first, step, self._step)
        self._loss = torch.where(first, loss, self._loss)

    def first_bad(self):
        """(step, loss as a string) of the first non-finite loss of any process, or None. One host read (and,
        over several processes, one all-reduce: they must all call it at the same points)."""
        if self._step is None:
            return None
        step = self._step.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(step, op=dist.ReduceOp.MIN)  # any process's bad loss has reached every weight
        first, mine = torch.stack([step, self._step]).tolist()
        if first == NO_STEP:
            return None
        return first, str(self._loss.item()) if mine == first else "not finite (on another process)"

    def stop_if_seen(self, checkpoints, callbacks):
        """NonFiniteLoss naming the step and the last complete checkpoint in `checkpoints` if a loss was not
        finite (the progress bar among `callbacks` closed first, so that the message stands on its own line)."""
        bad = self.first_bad()
        if not bad:
            return
        for callback in callbacks:
            if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
                callback.training_bar.close()
        raise NonFiniteLoss(
            f"The training loss became {bad[1]} at step {bad[0]}; stopped without saving. The last good checkpoint "
            f"is {last_complete_checkpoint(checkpoints) or 'none'}: lower --learning_rate or raise --warmup_steps, "
            "then rerun to resume from it.")
