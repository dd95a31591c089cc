"""Serving an export on NVIDIA Triton Inference Server: the model repository `nova-deploy triton-repo`
writes (config.py, repository.py) and the Python-backend model it holds (triton_model.py, requests.py)."""
