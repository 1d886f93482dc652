"""The backbone's runtimes besides torch: ONNX Runtime and OpenVINO, which run one exported graph,
the check of a --runtime against the device and precision, and the graphs cached on disk."""
