"""gpt2ja: what the scripts share, each in one module; scripts import these, never each other.

The ground floor (standard library only):
    errors      the error types: UserError and the kinds of it
    interrupts  Ctrl-C before main() and with workers: one line, exit 130
    settings    the reference settings: special ids, sampling, prompt, default folders
    rerun       the rerun protocol of every step: records and their identity, reuse or refuse,
                the one-writer lock, building an output folder in scratch and moving it into place
    dump        reading (and re-writing) MediaWiki XML dumps, page by page
Data and tokens:
    wikitext    wiki markup -> prose, and which pages are articles
    prose_items which list and definition items are sentences (kept) and which are names (dropped)
    splits      the prepared DatasetDict: split assignment, its content fingerprint, preparation.json
    tokenizer_folder  the tokenizer folder and its report, what fits in a model's context
    sentencepiece_apart  SentencePiece's trainer in a process of its own
    tokens      the batch encoder, the token cache and its blocks
Training:
    cli         recipe + flags parsing, the one-sentence exit
    run_folder  the run folder: its sub-folders, the model folder's files, checkpoints, run_info.json
    resume      a training run's identity, and whether a rerun resumes, reuses, refuses or starts over
    preemption  stopping a run: on SIGTERM or Ctrl-C, or at a validation loss; the drill that signals
    speed       MFU: FLOPs a token and the device's peak
Publishing:
    hub         the Hub client: token, repo ids, tags, failures in one sentence, a folder mirrored to a repo
    cards       the checked model folder, and the model, Space and dataset cards
    eval_results  lm-eval result files on the model card: ours in its model-index, other models' beside
"""
