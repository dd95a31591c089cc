"""The shipped reference model's training recipe: one place for `train_reference` and `nova-deploy train`.

Model v10 (tools/model_card_notes.md): v9's recipe sized for a 2-core CPU that ran its stages' steps
3-5x faster than v8's machine, cut to fit 100 minutes on the 2-core Intel Xeon of 2026-12-02, whose
steps cost 1.4-2.2x v9's machine's (v9's run was lost with its session): joint VQVAE 5000 steps,
40000 encoded pyramids, the decoder refinement 6000 steps beside the encoding and the first VAR
steps (one thread each), the VAR compiled, 8000 steps, on every thread from VAR_ALL_THREADS_FROM on.
"""
VQVAE_STEPS = 5000
VAR_STEPS = 8000
# 2.5x the 6e-4 of model v2: at equal wall time it reached a lower held-out loss (probe in MODEL_CARD)
VAR_LR = 1.5e-3
# the VAR step from which it runs on all threads: sized so that the decoder refinement beside it
# has ended by then; fixed (not "when the decoder ends") so that every step's thread count, and
# with it the model, is the same in every run
VAR_ALL_THREADS_FROM = 2100
VAR_COMPILE = True
# deterministic kernels make the compiled VAR stage reproduce bit for bit, at no measurable cost a
# step (0.295 s against 0.293 s, v9 probe)
VAR_DETERMINISTIC = True
# 8000 steps of 32 pyramids see 40000 pyramids 6.4 times (v8: 30000 pyramids, 4.3 times)
ENCODE_IMAGES = 40000
# the decoder-only stage is what lowers FID_feat (v6.1: 4800 steps took reconstructions 9.30 -> 4.81;
# v7: 6400 steps at 1e-3, 3.01; v8: 4000 steps, 4.60; v10: 6000 steps, 2.56)
DECODER_STEPS = 6000
DECODER_LR = 1e-3
THREADS = 2
