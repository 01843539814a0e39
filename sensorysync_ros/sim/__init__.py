"""MuJoCo simulated multimodal robot arm."""
