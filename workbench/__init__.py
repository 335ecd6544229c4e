"""whp-workbench: approximate unlearning in language models (reinforced model, anchored terms, generic labels)."""
