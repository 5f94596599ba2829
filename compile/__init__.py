"""Build, verify and package the TCN-VAE encoder for Hailo-8 (control host).

``python -m compile build --out DIR`` runs the pipeline of ``compile.build`` (``STAGES``: inputs -> motif_head
-> served_onnx -> figures -> quantized -> bundle) and prints ``DIR/<version>/`` last; ``export``, ``verify``
and ``hef`` stop after served_onnx, quantized (int8 proxy) and quantized (the DFC's .hef). Without
``--source`` the model is the seeded, untrained default.
"""
