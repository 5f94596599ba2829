"""The seed's Phase 3 serving design, the peer scripts/benchmark_infer.py measures the app against.

As the seed wrote it: one uvicorn process with its defaults, an `async` `POST /infer` taking `{"x": ...}`
through a pydantic model, a per-channel z-score in NumPy, ONNX Runtime on one intra-op thread, and `latent`
plus `motif_scores` returned through FastAPI's default JSON. It serves the bundle's own ONNX file (the one
the app serves), which z-scores again inside the graph: the same model work on both sides, plus the
seed's own z-score step. Not part of the app; run by the benchmark as

  python -m uvicorn seed_peer:app --app-dir scripts --host 127.0.0.1 --port PORT
  (HP_PEER_BUNDLE=<bundle folder>)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel


class Window(BaseModel):
    x: list[list[float]]


def create_peer(bundle: Path) -> FastAPI:
    metadata = json.loads((bundle / "model_metadata.json").read_text())
    normalization = metadata["normalization"]
    mean = np.asarray(normalization["mean"], dtype=np.float32)
    std = np.asarray(normalization["std"], dtype=np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(bundle / metadata["model"]["onnx"]), sess_options=options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name

    peer = FastAPI()

    @peer.post("/infer")
    async def infer(window: Window) -> dict[str, list[float]]:
        x = (np.asarray(window.x, dtype=np.float32) - mean) / std
        latent, motif_scores = session.run(None, {input_name: x[np.newaxis]})
        return {"latent": latent[0].tolist(), "motif_scores": motif_scores[0].tolist()}

    return peer


app = create_peer(Path(os.environ["HP_PEER_BUNDLE"])) if "HP_PEER_BUNDLE" in os.environ else None
