"""Export: VAR + VQVAE -> one validated ONNX graph per scale, sharing one weights file.

spec (what every graph takes and returns, with dim ranges) -> graphs (the traced modules) ->
onnx_io (torch.onnx export, shared external weights) -> validate (checker, names, ONNX Runtime
against PyTorch) -> manifest. `exporter.export_model` runs the chain; `exporter.validate_dir`
re-runs the validation. Nothing heavy is imported here.
"""
