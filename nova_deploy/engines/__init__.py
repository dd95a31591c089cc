"""TensorRT engines from an export directory: build, cache, inspect.

    library = load_library("tensorrt-rtx")                  # library.py: one shim, both libraries
    targets = parse_targets(library, ["8.9"])               # targets.py: which GPUs the plans are for
    build_engines(export_dir, library, targets, options)    # build_dir.py: one plan per graph, cached
    inspect_path(plan_or_dir)                               # inspect.py

On disk, next to the export (store.py):

    DIR/engines/<library>-<target>/<graph>.plan   the serialized engine
    DIR/engines/<library>-<target>/<graph>.json   its sidecar: cache key, the fields hashed into it,
                                                  plan sha256, profile, network summary, build time

Nothing here is imported by the runtime unless the TensorRT backend is asked for.
"""
