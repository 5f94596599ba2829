"""Simulated Raspberry Pi fleet for tests: docker engine, systemd "Pi" image, EdgeInfer stand-in, N Pis."""
