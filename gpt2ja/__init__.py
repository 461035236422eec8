"""The contracts the scripts share, each in one module; scripts import these, never each other.

    settings    the reference settings: special ids, sampling, prompt, default folders
    cli         recipe + flags parsing, UserError and the one-sentence exit
    dump        reading (and re-writing) MediaWiki XML dumps, page by page
    wikitext    wiki markup -> prose, and which pages are articles
    prose_items which list and definition items are sentences (kept) and which are names (dropped)
    splits      the prepared DatasetDict: split names, split assignment, preparation.json
    fingerprints  what a run is made of, by content: dump, prepared articles, tokenizer
    tokens      the tokenizer folder, the fast encoder, the token cache and its blocks
    run_folder  the run folder: its sub-folders, the model folder's files, run_info.json,
                which folders a step may replace, the one-writer lock, out-of-space errors
"""
