"""Loss, perplexity and bits per character of a causal language model on a corpus.

    metric = evaluate.load("metrics/causal_lm_eval")          # a local module: no network
    metric.compute(predictions=texts, model_id="runs/demo/model")   # or a Hub id

The texts are encoded (no special tokens added), each followed by the model's
end-of-sequence token, concatenated, and cut into blocks of the model's context
length, as train.py packs its training data; every token after the first of a
block is predicted. loss is the mean negative log-likelihood per predicted token
(nats), perplexity is exp(loss), and bits_per_character is the total NLL / ln 2 /
the number of characters of the texts: a figure that does not depend on the
tokenizer, so models with different vocabularies compare.
"""

import math

import datasets
import evaluate
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

_CITATION = ""
_KWARGS = """
Args:
    predictions (list of str): the texts to score.
    model_id (str): a model folder or Hub id loadable by AutoModelForCausalLM.
    batch_size (int): blocks per forward pass. Default 8.
    block_size (int): tokens per block. Default: the model's context length.
    device (str): "cpu", "cuda", ... Default: cuda if available.
Returns:
    loss, perplexity, bits_per_character, tokens (predicted), characters.
"""


class CausalLmEval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, model_id, batch_size=8, block_size=None, device=None):
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = AutoTokenizer.from_pretrained(model_id)
        model = AutoModelForCausalLM.from_pretrained(model_id).to(device).eval()
        block_size = block_size or model.config.max_position_embeddings
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        ids = [token for text in predictions
               for token in tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"] + eos]
        blocks = [ids[i:i + block_size] for i in range(0, len(ids), block_size)]
        blocks = [b for b in blocks if len(b) > 1]
        total_nll, predicted = 0.0, 0
        with torch.no_grad():
            # same-length blocks share a batch; only the last block can be shorter
            for length in sorted({len(b) for b in blocks}, reverse=True):
                group = [b for b in blocks if len(b) == length]
                for start in range(0, len(group), batch_size):
                    batch = torch.tensor(group[start:start + batch_size], device=device)
                    logits = model(batch).logits[:, :-1].float()
                    nll = torch.nn.functional.cross_entropy(
                        logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum")
                    total_nll += nll.item()
                    predicted += batch[:, 1:].numel()
        characters = sum(len(text) for text in predictions)
        loss = total_nll / max(predicted, 1)
        return {
            "loss": loss,
            "perplexity": math.exp(loss),
            "bits_per_character": total_nll / math.log(2) / max(characters, 1),
            "tokens": predicted,
            "characters": characters,
        }
