"""Model lifecycle: alias moves with their history, shared evaluation sets, model cards."""
