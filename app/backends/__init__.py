"""Inference backends behind one interface: HailoRT (Hailo-8) and ONNX Runtime (CPU)."""
