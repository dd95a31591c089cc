"""NOVA: training-free acceleration of VAR by pruning low-entropy tokens.

The decision math only (no model code): `entropy` measures, `activation` decides when pruning
starts, `schedule` decides how much each layer prunes, `selection` decides which tokens remain.
"""
from nova_deploy.nova.activation import ActivationTracker, find_activation_scale
from nova_deploy.nova.config import FastVARConfig, FixedConfig, NovaConfig
from nova_deploy.nova.entropy import scale_entropy, token_entropy
from nova_deploy.nova.schedule import batch_kept_counts, kept_counts, layer_ratios, scale_ratio, scale_ratio_B
from nova_deploy.nova.selection import fastvar_importance, importance_from_entropy, nested_kept, select_kept

__all__ = [
    "ActivationTracker", "find_activation_scale",
    "FastVARConfig", "FixedConfig", "NovaConfig",
    "scale_entropy", "token_entropy",
    "batch_kept_counts", "kept_counts", "layer_ratios", "scale_ratio", "scale_ratio_B",
    "fastvar_importance", "importance_from_entropy", "nested_kept", "select_kept",
]
