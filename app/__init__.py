"""EdgeInfer model backend: Flask under gunicorn with HailoRT and ONNX Runtime backends."""
