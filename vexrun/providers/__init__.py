"""Providers: embedders (and, later, LLMs) behind one interface each."""
