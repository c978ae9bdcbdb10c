"""The running service: its wiring, its web side, its health and metrics, and the watchers that tell people."""
