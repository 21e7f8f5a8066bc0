"""The user-event contract shared by the simulator, the Spark parsers and the Flink sidecar."""
