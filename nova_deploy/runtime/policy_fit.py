"""Whether a pruning policy's decisions can run on an export's graphs, checked before generating.

An export accepts pruned token counts only at its prunable scales (--prune-from on) and down to its
minimum kept count, and fills pruned tokens with one resampling mode; a policy that could ask for
anything else is refused up front with the option that would make it fit.
"""
from nova_deploy.errors import InvalidArgument
from nova_deploy.export.spec import ExportSpec
from nova_deploy.nova.config import resolve_scale_index
from nova_deploy.nova.policy import Policy


def check_policy_fits(policy: Policy, spec: ExportSpec) -> None:
    K = spec.num_scales
    policy.validate_for(K, spec.var.depth)
    first = policy.earliest_pruned_scale(K)
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
