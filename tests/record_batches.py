"""Runs train.py with a recorder of what each process trains on, for the multi-process test.

    accelerate launch ... -m tests.record_batches RECORD_DIR [train.py arguments]   (from the repository root)

Each process writes RECORD_DIR/rank-N.json: the world size it saw and a digest of
the input ids of each forward pass during training.
"""

import hashlib
import json
import sys
from pathlib import Path

import torch.distributed as dist
from transformers import TrainerCallback

import train
from gpt2ja.cli import run_main


class BatchRecorder(TrainerCallback):
    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.digests = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def record(module, positional, keywords):
            ids = keywords.get("input_ids", positional[0] if positional else None)
            if module.training:
                self.digests.append(hashlib.sha256(ids.cpu().numpy().tobytes()).hexdigest())
        model.register_forward_pre_hook(record, with_kwargs=True)

    def on_train_end(self, args, state, control, **kwargs):
        rank = dist.get_rank() if dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_initialized() else 1
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank-{rank}.json").write_text(json.dumps({"world_size": world, "digests": self.digests}))


if __name__ == "__main__":
    record_dir, *argv = sys.argv[1:]
    run_main(lambda: train.main(argv, callbacks=[BatchRecorder(record_dir)]))
