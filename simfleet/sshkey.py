"""The throwaway SSH key the simulated Pis trust (baked into the image, used by the local inventory)."""

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simfleet.paths import state_dir


def private_key_path() -> Path:
    return state_dir() / "id_ed25519"


def ensure_ssh_key() -> Path:
    """Create the key pair once per checkout; return the private key's path."""
    key_path = private_key_path()
    pub_path = key_path.with_suffix(".pub")
    if key_path.is_file() and pub_path.is_file():
        return key_path
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    key_path.touch(mode=0o600)
    key_path.write_bytes(private)
    pub_path.write_bytes(public + b" simfleet-test-key\n")
    return key_path


def public_key() -> bytes:
    return ensure_ssh_key().with_suffix(".pub").read_bytes()
