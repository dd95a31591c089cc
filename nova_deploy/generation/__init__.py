"""The one generation loop and the executors it runs on (PyTorch model here; graphs in runtime/)."""
