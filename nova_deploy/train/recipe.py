"""The shipped reference model's training recipe: one place for `train_reference` and `nova-deploy train`.

Model v8 (tools/model_card_notes.md): the decoder refinement runs beside the encoding and the first
VAR steps, one thread each (two one-thread jobs do about 1.3x the work of one two-thread job on
these 2-core CPUs); from VAR_ALL_THREADS_FROM on, the VAR has every thread. The VAR step is
compiled (torch.compile: 1.3x a step here, after about 2.5 minutes of compiling). Measured in
nova_deploy/assets/MODEL_CARD.md: 93.4 minutes on the 2-core CPU of 2026-12-01.
"""
VQVAE_STEPS = 3200
VAR_STEPS = 4000
# 2.5x the 6e-4 of model v2: at equal wall time it reached a lower held-out loss (probe in MODEL_CARD)
VAR_LR = 1.5e-3
# the VAR step from which it runs on all threads: sized so that the decoder refinement beside it
# has ended by then; fixed (not "when the decoder ends") so that every step's thread count, and
# with it the model, is the same in every run
VAR_ALL_THREADS_FROM = 1200
VAR_COMPILE = True
ENCODE_IMAGES = 30000
# the decoder-only stage is what lowers FID_feat (v6.1: 4800 steps took reconstructions 9.30 -> 4.81;
# v7: 6400 steps at 1e-3, 3.01)
DECODER_STEPS = 4000
DECODER_LR = 1e-3
THREADS = 2
