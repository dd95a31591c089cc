"""The shipped reference model's training recipe: one place for `train_reference` and `nova-deploy train`.

Measured in nova_deploy/assets/MODEL_CARD.md: 91 minutes on a 2-core CPU with these values.
"""
VQVAE_STEPS = 4500
VAR_STEPS = 2200
ENCODE_IMAGES = 30000
DECODER_STEPS = 600
THREADS = 2
