"""The export artefact: what an export directory holds, and the one loader every reader uses.

names.py (file names) and hashing.py (sha256, sizes) -> manifest.py (read, write atomically, schema)
-> export_dir.py (ExportDir.open: schema, paths kept inside the directory, sizes and hashes checked
before use, an optional expected manifest digest). Below export, engines and runtime; imports
neither onnx nor onnxruntime.
"""
