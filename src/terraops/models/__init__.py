"""Neural network definitions (PyTorch).

- :mod:`.unet` — the compact U-Net of the segmentation service, with its
  input normalisation inside the network (one input path for training,
  PyTorch inference and the exported ONNX graph);
- :mod:`.pyfunc` — the MLflow ``pyfunc`` entry that lets a registered
  segmentation bundle load through MLflow's generic model API.

Importing this package imports nothing heavy; each module imports torch
(or MLflow) itself.
"""
