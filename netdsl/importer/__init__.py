"""`netdsl import`: existing PyTorch, ONNX and Keras models as editable netdsl source."""
