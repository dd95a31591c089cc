"""Quality metrics of generated samples: pixel metrics, token agreement, Fréchet distance, and a
small shipped classifier of the procedural shapes (class accuracy and its features for FID_feat).

Submodules load on use: `nova_deploy.eval.metrics` (scipy) and `nova_deploy.eval.classifier`.
"""
