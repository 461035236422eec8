"""Drills for the GPU check and the tests, never for a real run."""

import os
import signal

from transformers import TrainerCallback


class SignalAtStep(TrainerCallback):
    """The preemption drill: sends this process a signal (SIGTERM) as step `step` begins, as a scheduler
    preempting the job would. gpt2ja.preemption.PreemptionCallback then stops the run with checkpoint-`step`,
    whatever the order of the callbacks."""

    def __init__(self, step, signum=signal.SIGTERM):
        self.step, self.signum = step, signum

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step - 1:
            os.kill(os.getpid(), self.signum)
