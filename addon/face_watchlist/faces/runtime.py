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
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
