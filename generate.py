"""Generate Japanese text from a model folder or Hub id, without writing code.

    python generate.py --model runs/demo/model --prompt 近年の機械学習は
    python generate.py --model USER/gpt2-small-ja --prompt 日本の首都は --num_return_sequences 3 --seed 0
"""

import gpt2ja.interrupts  # noqa: F401  (first: Ctrl-C while the libraries below load ends in one line)
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from gpt2ja.cli import parse_args, run_main
from gpt2ja.errors import UserError
from gpt2ja.run_folder import RunFolder
from gpt2ja.settings import DEFAULT_RUN_DIR, PROMPT, SAMPLING
from gpt2ja.tokenizer_folder import room_after


@dataclass
class GenerateArguments:
    model: str = field(default=str(RunFolder(DEFAULT_RUN_DIR).model), metadata={"help": "A model folder or Hub id."})
    prompt: str = field(default=PROMPT, metadata={"help": "The text to continue."})
    max_new_tokens: int = field(default=50, metadata={"help": "Tokens to add to the prompt."})
    num_return_sequences: int = field(default=1, metadata={"help": "How many continuations to sample."})
    do_sample: bool = field(default=True, metadata={"help": "Sample (--no_do_sample: greedy decoding)."})
    top_k: Optional[int] = field(default=None, metadata={
        "help": f"Default: the model's generation_config.json ({SAMPLING['top_k']} in models of train.py)."})
    top_p: Optional[float] = field(default=None, metadata={
        "help": f"Default: the model's generation_config.json ({SAMPLING['top_p']} in models of train.py)."})
    temperature: Optional[float] = field(default=None, metadata={"help": "Default: the model's (1.0)."})
    seed: Optional[int] = field(default=None, metadata={"help": "Seed, for the same continuations every time."})

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.num_return_sequences < 1:
            raise ValueError("--max_new_tokens and --num_return_sequences must be 1 or more")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"--top_k must be 0 (off) or more, not {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"--top_p must be in (0, 1], not {self.top_p}")
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"--temperature must be more than 0, not {self.temperature}")


def check_model(model):
    """A local --model must be a model folder with its tokenizer, such as train.py's model/."""
    folder = Path(model)
    if not folder.exists():
        return  # a Hub id, then
    if not (folder / "config.json").is_file():
        raise UserError(f"--model {model} holds no model (config.json); pass the model/ folder of a train.py run.")
    if not (folder / "spiece.model").is_file():
        raise UserError(f"--model {model} holds no tokenizer (spiece.model); pass the model/ folder of a train.py "
                        "run, or one of its checkpoints.")


def generate(args):
    import torch  # here, not above: --help and a refused flag answer at once
    from transformers import pipeline, set_seed

    check_model(args.model)
    if args.seed is not None:
        set_seed(args.seed)
    try:
        generator = pipeline("text-generation", model=args.model, device=0 if torch.cuda.is_available() else -1)
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0]
        if Path(args.model).exists():  # a folder whose files do not load: damaged, or cut short by a copy
            raise UserError(f"--model {args.model} does not load ({reason}); copy the model/ folder of a "
                            "train.py run again.") from None
        # a Hub id that does not exist, or no network to reach it
        raise UserError(f"--model {args.model} is neither a folder here nor a model the Hub gave ({reason}); "
                        "pass the model/ folder of a train.py run or a Hub id.") from None
    context = generator.model.config.max_position_embeddings
    room, used = room_after(generator.tokenizer, args.prompt, context, args.max_new_tokens)
    if room < args.max_new_tokens:
        fix = f"pass --max_new_tokens {room} or fewer, or shorten the prompt" if room else "shorten the prompt"
        raise UserError(f"The prompt is {used} tokens long; with {args.max_new_tokens} new tokens that passes the "
                        f"model's context of {context} tokens: {fix}.")
    options = {k: v for k, v in (("top_k", args.top_k), ("top_p", args.top_p), ("temperature", args.temperature))
               if v is not None}
    outputs = generator(args.prompt, max_new_tokens=args.max_new_tokens, do_sample=args.do_sample,
                        num_return_sequences=args.num_return_sequences, add_special_tokens=False,
                        skip_special_tokens=False, **options)
    continuations = [shown_unknowns(generator.tokenizer, output["generated_text"][len(args.prompt):])
                     for output in outputs]
    unknown = sum(text.count(generator.tokenizer.unk_token) for text in continuations)
    if unknown:
        print(f"{unknown} of the new tokens are {generator.tokenizer.unk_token}: text the tokenizer has no piece "
              "for (a rare character, an emoji), shown as that marker.", file=sys.stderr)
    return [args.prompt + text for text in continuations]


def shown_unknowns(tokenizer, continuation):
    """A continuation decoded with its special tokens, without them but the unknown token's: what the tokenizer
    cannot spell is seen as <unk>, not silently dropped."""
    for token in tokenizer.all_special_tokens:
        if token != tokenizer.unk_token:
            continuation = continuation.replace(token, "")
    return continuation


def main(argv=None):
    (args,) = parse_args([GenerateArguments], argv, description=__doc__)
    texts = generate(args)
    for i, text in enumerate(texts, 1):
        print(f"--- {i}\n{text}" if len(texts) > 1 else text)
    return texts


if __name__ == "__main__":
    run_main(main)
