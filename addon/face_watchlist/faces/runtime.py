"""onnxruntime sessions with the thread counts the user configured."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def session(model: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # the packs' graphs carry harmless unused-initializer warnings
    # Pool threads that spin after a run steal the cores from the next model's run (detector and
    # recogniser alternate): on 2 cores that cost SCRFD + SFace 70 % in `bench speed`.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
