"""Build, verify and package the TCN-VAE encoder for Hailo-8 (control host).

``python -m compile build --out DIR [--source MODEL] [--config model_config.json] [--reference-windows FILE]
[--hw-arch hailo8|hailo8l] [--require-hef]`` runs every stage and prints ``DIR/<version>/`` last:

load (``load``) -> reference windows (``reference_windows``) -> motif prototypes (``motifs``) -> ONNX
(``export``) -> numerical checks (``verify``, ``int8_check``) -> .hef when Hailo's DFC is installed
(``hailo_compile``) -> bundle folder with ``model_metadata.json`` (``bundle``). The subcommands ``export``,
``verify``, ``hef`` and ``inspect`` run single stages. Without ``--source`` the model is the seeded, untrained
default.
"""
