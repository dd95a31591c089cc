"""The shipped reference model's training recipe: one place for `train_reference` and `nova-deploy train`.

Measured in nova_deploy/assets/MODEL_CARD.md: 93-117 minutes on 2-core CPUs of this project (their speed varies) with these values.
"""
VQVAE_STEPS = 4500
VAR_STEPS = 4100
# 2.5x the 6e-4 of model v2: at equal wall time it reached a lower held-out loss (probe in MODEL_CARD)
VAR_LR = 1.5e-3
ENCODE_IMAGES = 30000
DECODER_STEPS = 600
THREADS = 2
