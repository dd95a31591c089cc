"""`nova-deploy bench`: speed, FLOPs, memory and quality of backends x pruning policies x batch sizes,
measured side by side in one run.

    configs   what is measured: (runner, policy, batch); runner = a runtime backend, the reference
              sampler, or the peer torch-compile (the reference sampler under torch.compile)
    schedule  warm-up, then timed runs interleaved round-robin across configurations
    runners   one timed generation -> a Sample (wall time, per-graph times, FLOPs)
    compiled_runner  torch-compile: compiler check, compile settings, compiling before the rounds
    runner_by_name   a runner from its name
    stats     samples -> median / min per configuration, speedups over the same runner's dense config
    memory    peak RSS of one configuration, measured in a fresh subprocess
    nova_ratios  the per-scale ratios NOVA's default config chooses on the reference model, as `fixed:`
    quality   eval's metrics on the reference model for each policy
    targets   the issue's targets, PASS / MISS from the measured ratios
    report    terminal table, JSON, Markdown, PNG plots
    run       all of the above in order
"""
