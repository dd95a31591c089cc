"""Whether a pruning policy's decisions can run on an export's graphs, checked before generating.

An export accepts pruned token counts only at its prunable scales (--prune-from on) and down to its
minimum kept count, and fills pruned tokens with one resampling mode; a policy that could ask for
anything else is refused up front with the option that would make it fit.
"""
from nova_deploy.errors import InvalidArgument
from nova_deploy.export.spec import ExportSpec
from nova_deploy.nova.config import resolve_scale_index
from nova_deploy.nova.policy import Policy


def earliest_pruned_scale(policy: Policy, num_scales: int):
    """The first scale the policy may prune, or None if it never prunes."""
    cfg = policy.config
    if policy.name == "none":
        return None
    if policy.name == "nova":
        return max(1, cfg.min_activation_scale)  # scale 0 has no previous scale to fill from
    if policy.name == "fastvar":
        return next((si for si in range(1, num_scales) if cfg.ratio_at(si, num_scales) > 0), None)
    if policy.name == "fixed":
        layer = cfg.layer_ratios
        return next((si for si in range(1, num_scales)
                     if cfg.scale_ratios[si] > 0 or (layer is not None and any(r > 0 for r in layer[si]))), None)
    raise InvalidArgument(f"unknown policy {policy.name!r}")


def check_policy_fits(policy: Policy, spec: ExportSpec) -> None:
    K = spec.num_scales
    policy.validate_for(K, spec.var.depth)
    first = earliest_pruned_scale(policy, K)
    if first is None:
        return
    first = resolve_scale_index("first pruned scale", first, K)
    if not spec.prune.prunable(first):
        raise InvalidArgument(
            f"policy {policy.name} may prune scale {first}, but this export prunes only from scale "
            f"{spec.prune.first_scale} on; re-export with --prune-from {first} (or use a policy that starts later)")
    if policy.upsample_mode != spec.prune.fill_mode:
        raise InvalidArgument(f"policy {policy.name} fills pruned tokens with {policy.upsample_mode} resampling; "
                              f"the exported graphs fill with {spec.prune.fill_mode}")
