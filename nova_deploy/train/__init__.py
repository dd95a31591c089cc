"""Training of the shipped reference model: VQVAE first, then VAR on pre-encoded tokens."""
