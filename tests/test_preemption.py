"""gpt2ja.preemption: a signal stops the run at the end of its step with a checkpoint; the drill sends it."""

import os
import signal
from types import SimpleNamespace

import pytest
from transformers import TrainerControl

from benchmarks.drills import SignalAtStep
from gpt2ja.preemption import PreemptionCallback, StopAtEvalLoss


def step_end(callback):
    control = TrainerControl()
    callback.on_step_end(SimpleNamespace(device="cpu"), None, control)
    return control


def test_a_sigterm_saves_and_stops_at_the_end_of_the_step_and_the_handlers_go_back():
    before = {number: signal.getsignal(number) for number in PreemptionCallback.SIGNALS}
    callback = PreemptionCallback()
    with callback:
        control = step_end(callback)
        assert not (control.should_save or control.should_training_stop)
        os.kill(os.getpid(), signal.SIGTERM)  # handled: the test process goes on
        control = step_end(callback)
        assert control.should_save and control.should_training_stop and callback.received == signal.SIGTERM
    assert {number: signal.getsignal(number) for number in PreemptionCallback.SIGNALS} == before


def test_a_second_ctrl_c_interrupts_at_once():
    with PreemptionCallback() as callback:
        os.kill(os.getpid(), signal.SIGINT)
        assert callback.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_the_drill_signals_as_its_step_begins():
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda number, frame: received.append(number))
    try:
        drill = SignalAtStep(3, signal.SIGUSR1)
        for step in range(5):
            drill.on_step_begin(None, SimpleNamespace(global_step=step), None)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert received == [signal.SIGUSR1]  # once: as step 3 (global_step 2) begins


def test_an_evaluation_at_or_below_the_threshold_saves_and_stops():
    callback = StopAtEvalLoss(3.5)
    state = SimpleNamespace(global_step=7)
    for loss, stops in ((3.6, False), (3.5, True)):
        control = callback.on_evaluate(None, state, TrainerControl(), metrics={"eval_loss": loss})
        assert (control.should_save, control.should_training_stop) == (stops, stops)
    assert not StopAtEvalLoss(None).on_evaluate(None, state, TrainerControl(), metrics={"eval_loss": 0.1}
                                                ).should_training_stop
