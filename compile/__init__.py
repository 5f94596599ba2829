"""Build, verify and package the TCN-VAE encoder for Hailo-8."""
