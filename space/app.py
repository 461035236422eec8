"""A live demo of a Japanese GPT-2: a Gradio app that continues a prompt, streaming token by token.

    python space/app.py --model runs/demo/model          # any model folder or Hub id, on 127.0.0.1:7860
    python app.py                                         # on a Hugging Face Space: the model its README names

Self-contained: it needs gradio, torch and transformers (and sentencepiece for
the tokenizer), not the training code. On a ZeroGPU Space the generation runs
under the `spaces.GPU` decorator; elsewhere on the GPU if there is one, or the CPU.
"""

import argparse
import os
import threading
from pathlib import Path

try:
    import spaces  # present on ZeroGPU Spaces
    on_gpu = spaces.GPU
except ImportError:
    def on_gpu(function):
        return function

EXAMPLES = ["近年の機械学習は", "日本の首都は", "吾輩は猫である。", "富士山は"]
MAX_NEW_TOKENS = 200
MAX_SEED = 2**32 - 1  # what numpy's and torch's seeding take


def space_card(readme=Path(__file__).with_name("README.md")):
    """The metadata of the Space's README ({} where it has none, as this repository's space/README.md)."""
    import yaml
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if not text.startswith("---\n"):
        return {}
    return yaml.safe_load(text.split("---\n", 2)[1]) or {}


def model_from_space_card(readme=Path(__file__).with_name("README.md")):
    """The first model the Space's README names (`models:` in its YAML), the one the Space runs."""
    models = space_card(readme).get("models")
    return models[0] if models else None


def display_name(model_id):
    """The model as the page names it: a Hub id as it is, a local folder by its name, never by the path
    it was given (an absolute path would show this machine's folders)."""
    path = Path(model_id).expanduser()
    if not path.is_dir():
        return model_id
    path = path.resolve()
    return f"{path.parent.name}/{path.name}" if path.name == "model" else path.name


def header(model_id, code_url):
    name = display_name(model_id)
    model = name if Path(model_id).expanduser().is_dir() else f"[{name}](https://huggingface.co/{model_id})"
    code = f" made by the [gpt2-small-ja training code]({code_url})" if code_url else ""
    return (f"# Japanese GPT-2: {name}\n\n{model} continues your Japanese text (日本語の文章の続きを書きます). "
            f"It is a small language model{code}, and its card says what it was trained on. What it writes is "
            "often fluent and false.")


def build_app(model_id, code_url=None):
    import gradio as gr
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    tokenizer = AutoTokenizer.from_pretrained(model_id)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_id).to(device).eval()
    context = model.config.max_position_embeddings
    sampling = model.generation_config  # the model's generation_config.json, as from_pretrained read it

    hidden = [token for token in tokenizer.all_special_tokens if token != tokenizer.unk_token]

    def shown(continuation):
        """The continuation without the special tokens but the unknown one: what the tokenizer cannot spell
        (a rare character, an emoji) is seen as <unk>, not dropped."""
        for token in hidden:
            continuation = continuation.replace(token, "")
        return continuation

    @on_gpu
    def generate(prompt, max_new_tokens, top_k, top_p, temperature, seed):
        """Yield the prompt and its continuation so far, once for each new piece of text, and at the end a note
        on the unknown tokens in it."""
        prompt = (prompt or "").strip()
        if not prompt:
            raise gr.Error("Write a prompt to continue (for example 近年の機械学習は). / "
                           "続きを書く文章を入力してください（例: 近年の機械学習は）。")
        if seed is None or not 0 <= seed <= MAX_SEED:
            raise gr.Error(f"The seed must be a whole number from 0 to {MAX_SEED}. / "
                           f"シードは 0 から {MAX_SEED} までの整数にしてください。")
        max_new_tokens = int(max_new_tokens)
        input_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids.to(model.device)
        if input_ids.shape[1] + max_new_tokens > context:
            raise gr.Error(f"The prompt is {input_ids.shape[1]} tokens long; with {max_new_tokens} new tokens "
                           f"that passes the model's context of {context}. Shorten the prompt or ask for fewer "
                           f"new tokens. / プロンプトは {input_ids.shape[1]} トークンあり、新しい {max_new_tokens} "
                           f"トークンを足すとモデルの文脈長 {context} を超えます。プロンプトを短くするか、"
                           "トークン数を減らしてください。")
        torch.manual_seed(int(seed))
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=False)
        options = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer,
                       max_new_tokens=max_new_tokens, do_sample=True, top_k=int(top_k), top_p=float(top_p),
                       temperature=float(temperature), pad_token_id=tokenizer.pad_token_id)
        failures = []

        def run():
            try:
                model.generate(**options)
            except Exception as error:  # the page must hear of it, not wait on the stream forever
                failures.append(error)
                streamer.end()

        thread = threading.Thread(target=run)
        thread.start()
        continuation, text = "", prompt
        for piece in streamer:
            continuation += piece
            if prompt + shown(continuation) != text:  # (a piece may be a special token alone, which is not shown)
                text = prompt + shown(continuation)
                yield text, ""
        thread.join()
        if failures:
            raise gr.Error(f"Generation failed: {failures[0]} / 生成に失敗しました: {failures[0]}")
        unknown = shown(continuation).count(tokenizer.unk_token)
        if unknown:
            yield text, (f"{unknown} × `{tokenizer.unk_token}`: text the tokenizer has no piece for (a rare "
                         f"character, an emoji). / `{tokenizer.unk_token}` はトークナイザーにない文字です"
                         f"（{unknown} 個）。")

    with gr.Blocks(title=f"{display_name(model_id)}: Japanese GPT-2") as app:
        gr.Markdown(header(model_id, code_url))
        prompt = gr.Textbox(label="Prompt / プロンプト", value=EXAMPLES[0], lines=3, elem_id="prompt")
        gr.Examples(EXAMPLES, inputs=prompt, label="Examples / 例")
        with gr.Row():
            button = gr.Button("Generate / 生成", variant="primary", elem_id="generate")
            stop = gr.Button("Stop / 停止", variant="stop", elem_id="stop")
        output = gr.Textbox(label="Prompt and continuation / 続き", lines=8, elem_id="output")
        note = gr.Markdown(elem_id="note")
        with gr.Accordion("Sampling / サンプリング", open=True):
            with gr.Row():
                max_new_tokens = gr.Slider(1, min(MAX_NEW_TOKENS, context - 1), value=min(50, context - 1), step=1,
                                           label="Max new tokens / 最大トークン数")
                top_k = gr.Slider(0, 200, value=sampling.top_k or 50, step=1, label="Top-k (0: off)")
                top_p = gr.Slider(0.05, 1.0, value=sampling.top_p or 1.0, step=0.05, label="Top-p")
                temperature = gr.Slider(0.1, 2.0, value=sampling.temperature or 1.0, step=0.05,
                                        label="Temperature / 温度")
                seed = gr.Number(value=0, precision=0, label="Seed / シード")
        inputs = [prompt, max_new_tokens, top_k, top_p, temperature, seed]
        # one public endpoint for the button and the Enter key; Stop cancels what runs
        generation = gr.on([button.click, prompt.submit], generate, inputs=inputs, outputs=[output, note],
                           api_name="generate")
        stop.click(None, cancels=[generation], api_visibility="private")
    return app


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="A model folder or Hub id (default: MODEL_ID, or the model the Space's "
                                         "README names).")
    parser.add_argument("--host", default="127.0.0.1", help="Use 0.0.0.0 to serve other machines.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args(argv)
    args.model = args.model or os.environ.get("MODEL_ID") or model_from_space_card()
    if not args.model:
        parser.error("no model: pass --model (a model folder or Hub id) or set MODEL_ID.")
    a_path = args.model.startswith((".", "/", "~")) or args.model.count("/") > 1  # a Hub id is NAME or USER/NAME
    if a_path and not Path(args.model).expanduser().is_dir():
        parser.error(f"--model {args.model}: no such folder; pass a model folder (runs/demo/model after make demo) "
                     "or a Hub id (USER/NAME).")
    try:
        app = build_app(args.model, space_card().get("code_url"))
    except (OSError, ValueError) as error:  # a Hub id that does not exist, or no network to reach it
        parser.exit(1, f"error: --model {args.model} did not load ({str(error).splitlines()[0]}); pass a model "
                       "folder or a Hub id (USER/NAME).\n")
    on_space = "SPACE_ID" in os.environ
    app.queue().launch(server_name="0.0.0.0" if on_space else args.host, server_port=args.port)


if __name__ == "__main__":
    main()
