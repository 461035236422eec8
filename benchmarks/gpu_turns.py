"""Several Trainers, each in a thread of its own, training in turns of a few steps, one at a time: the rows of
benchmarks/gpu_compare.py, timed turn by turn between two device syncs, and a step's time split by kind."""

import re
import threading
import time

import torch
from transformers import TrainerCallback


class Baton:
    """Who trains now: "main" (the comparison) or one row."""

    def __init__(self):
        self.holder, self.order, self._changed = "main", None, threading.Condition()

    def hand(self, to, order=None):
        with self._changed:
            self.holder, self.order = to, order
            self._changed.notify_all()

    def wait_for(self, who):
        with self._changed:
            self._changed.wait_for(lambda: self.holder == who)
            return self.order


def sync(on_gpu):
    if on_gpu:
        torch.cuda.synchronize()


class Turns(TrainerCallback):
    """One row's side of the turns: waits for the baton, trains `order` steps ("steps", n), one profiled step
    ("profile", 1) or stops ("stop"), timing the turn between two device syncs, then hands the baton back."""

    def __init__(self, row, baton, on_gpu):
        self.row, self.baton, self.on_gpu = row, baton, on_gpu
        self.order, self.done, self.turns, self.profiles, self.extra = None, 0, [], [], []
        self.started = self.base = self.profiler = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.take(self.baton.wait_for(self.row["name"]))

    def take(self, order):
        self.order, self.done = order, 0
        if self.on_gpu:
            self.base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        if order[0] == "profile":
            self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]
                                                   + ([torch.profiler.ProfilerActivity.CUDA] if self.on_gpu else []))
            try:
                self.profiler.start()
            except Exception as error:  # a profile is a help; its failure is reported, the row's figures stand
                self.profiles.append({"error": f"{type(error).__name__}: {error}"})
                self.profiler = None
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.done += 1
        if self.done < self.order[1]:
            return control
        sync(self.on_gpu)
        seconds = time.perf_counter() - self.started
        if self.profiler is not None:
            try:
                self.profiler.stop()
                self.profiles.append(profile_split(self.profiler, seconds, self.on_gpu))
            except Exception as error:
                self.profiles.append({"error": f"{type(error).__name__}: {error}"})
            self.profiler = None
        elif self.order[0] == "steps":
            self.turns.append((seconds, self.done))
        if self.on_gpu:
            self.extra.append(torch.cuda.max_memory_allocated() - self.base)
        if state.global_step >= state.max_steps:
            return control  # the thread hands the baton back once train() has returned
        self.baton.hand("main")
        order = self.baton.wait_for(self.row["name"])
        if order[0] == "stop":
            control.should_training_stop = True
        else:
            self.take(order)
        return control


# By kernel (GPU) or operator (CPU) name, first match; compiled kernels are named after the operators they fuse
CATEGORIES = [("attention", r"flash|fmha|attention|sdpa|attn"),
              ("loss", r"cross_entropy|nll_loss|log_?softmax|softmaxforward|softmaxbackward"),
              ("optimizer", r"adam|foreach|multi_tensor"),  # and the gradient clipping's norms
              ("matmuls", r"gemm|matmul|aten::mm|aten::addmm|aten::bmm|cutlass|xmma|nvjet|cublas|triton_tem|fused_mm")]


def profile_split(profiler, seconds, on_gpu):
    """Seconds of one step by kind: the device's kernels on a GPU, the operators' own CPU time on the CPU; idle is
    the rest of the step's time (on the CPU: Python and the Trainer's bookkeeping)."""
    split = {name: 0.0 for name, _ in CATEGORIES} | {"other": 0.0}
    for event in profiler.key_averages():
        if on_gpu:
            if event.device_type != torch.autograd.DeviceType.CUDA:
                continue
            micros = event.self_device_time_total
        else:
            micros = event.self_cpu_time_total if event.key.startswith("aten::") else 0
        kind = next((name for name, pattern in CATEGORIES if re.search(pattern, event.key.lower())), "other")
        split[kind] += micros / 1e6
    busy = sum(split.values())
    return {"step_s": round(seconds, 4), **{k: round(v, 4) for k, v in split.items()},
            "idle": round(max(0.0, seconds - busy), 4)}
