"""What every other part of affectflow shares and that depends on nothing else of it."""
