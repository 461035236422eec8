"""gpt2ja: what the scripts share, each thing in one module; scripts import it, never each other.

The map of its modules, floor by floor (the ground floor first: what every other floor may import), is
docs/layout.md; tests/test_structure.py keeps the imports pointing down and the map whole.
"""
