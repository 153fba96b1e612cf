"""Conversation exports as sources: claude.ai / Anthropic API (:mod:`.claude`) and ChatGPT (:mod:`.chatgpt`).

Both follow IMPORT_CONTRACT.md: a streamed file (:mod:`.stream`) becomes conversations of turns
(:mod:`.common`), which the chunk modes turn into records (:mod:`.chunking`); :mod:`.source` holds the
shared config, batching and resume.
"""
