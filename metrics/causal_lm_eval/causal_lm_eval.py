"""Loss, perplexity and bits per character of a causal language model on a corpus.

    metric = evaluate.load("metrics/causal_lm_eval")          # a local module: no network
    metric.compute(predictions=texts, model_id="runs/demo/model")   # or a Hub id

What is scored: every token of every text, each text on its own. A text is
encoded (no special tokens added) and preceded by one end-of-sequence token, as
an article follows an article boundary in training; its first token is
predicted after that token alone, every later token after the tokens before it.
A text longer than the window (block_size tokens in a forward pass, by default
the model's context) is scored in windows that start `stride` tokens apart, each
scoring only the tokens the previous one did not, with the rest of the window as
their context; the last window ends where the text ends and is full, its earlier
tokens context only. The default stride, block_size, gives exactly lm-eval's
loglikelihood_rolling windows (context_len 1); a smaller stride gives more
context and costs more forward passes. So the total
negative log-likelihood (NLL) is each text's own: it does not depend on the
order of the texts, on their neighbours, or on where blocks happen to start.

loss is the mean NLL per scored token (nats), perplexity is exp(loss), and
bits_per_character is the total NLL / ln 2 / the number of characters of the
texts: a figure that does not depend on the tokenizer, so models with different
vocabularies compare. unk_share is the share of scored tokens that are the
tokenizer's unknown token: text the vocabulary cannot spell, cheap to predict,
which flatters the other figures where it is large.
"""

import math

import datasets
import evaluate
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

_CITATION = ""
_KWARGS = """
Args:
    predictions (list of str): the texts to score, none empty.
    model_id (str): a model folder or Hub id loadable by AutoModelForCausalLM.
    batch_size (int): windows per forward pass. Default 8.
    block_size (int): tokens per forward pass, 1 to the model's context. Default: the model's context.
    stride (int): tokens between window starts, 1 to block_size. Default: block_size.
    device (str): "cpu", "cuda", ... Default: cuda if available.
Returns:
    loss, perplexity, bits_per_character, unk_share, tokens (scored), characters.
"""


class CausalLmEval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, model_id, batch_size=8, block_size=None, stride=None, device=None):
        if not predictions:
            raise ValueError("There is no text to score: predictions is empty.")
        empty = [i for i, text in enumerate(predictions) if not text]
        if empty:
            raise ValueError(f"{len(empty)} of the texts are empty (the first at index {empty[0]}); an empty text "
                             "has nothing to score: leave it out.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be 1 or more, not {batch_size}.")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_id)
            model = AutoModelForCausalLM.from_pretrained(model_id).to(device).eval()
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{model_id} is not a causal language model with a tokenizer that transformers can "
                             f"load ({type(error).__name__}: {str(error).splitlines()[0]}).") from None
        context = model.config.max_position_embeddings
        block_size = context if block_size is None else block_size
        if not 1 <= block_size <= context:
            raise ValueError(f"block_size must be from 1 to the model's context ({context}), not {block_size}.")
        stride = block_size if stride is None else stride
        if not 1 <= stride <= block_size:
            raise ValueError(f"stride must be from 1 to block_size ({block_size}), not {stride}.")
        if tokenizer.eos_token_id is None:
            raise ValueError(f"{model_id}'s tokenizer has no end-of-sequence token to start each text with.")

        windows = []  # (token ids, index of the first scored position): the same whatever the order of the texts
        for text in predictions:
            ids = [tokenizer.eos_token_id] + tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
            if len(ids) < 2:
                raise ValueError(f"The text {text[:30]!r} encodes to no token; leave it out.")
            scored_to = 1  # position 0, the end-of-sequence token, is context only
            for step_start in range(0, len(ids) - 1, stride):
                # block_size tokens in, and the token the last of them predicts; the last window moves back
                # to end where the text ends, with a full context
                end = min(step_start + block_size + 1, len(ids))
                begin = max(0, end - block_size - 1)
                windows.append((tuple(ids[begin:end]), scored_to - begin))
                scored_to = end
                if end == len(ids):
                    break
        windows.sort(key=lambda window: (len(window[0]), window))  # batches of like lengths, in a fixed order

        nlls = []
        with torch.no_grad():
            for start in range(0, len(windows), batch_size):
                batch = windows[start:start + batch_size]
                length = max(len(ids) for ids, _ in batch)
                input_ids = torch.full((len(batch), length), tokenizer.eos_token_id, device=device)
                labels = torch.full((len(batch), length), -100, device=device)
                for row, (ids, first_scored) in enumerate(batch):
                    input_ids[row, :len(ids)] = torch.tensor(ids, device=device)
                    labels[row, first_scored:len(ids)] = input_ids[row, first_scored:len(ids)]
                logits = model(input_ids[:, :-1]).logits.float()
                nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction="none",
                                                        ignore_index=-100)
                nlls.extend(nll.sum(dim=1).double().tolist())
        total_nll = math.fsum(nlls)
        scored = sum(len(ids) - first for ids, first in windows)
        unknown = sum(ids[first:].count(tokenizer.unk_token_id) for ids, first in windows
                      if tokenizer.unk_token_id is not None)
        characters = sum(len(text) for text in predictions)
        loss = total_nll / scored
        return {
            "loss": loss,
            "perplexity": math.exp(loss),
            "bits_per_character": total_nll / math.log(2) / characters,
            "unk_share": unknown / scored,
            "tokens": scored,
            "characters": characters,
        }
