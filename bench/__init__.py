"""Benchmarks of the pipeline's stages and the synthetic data they run on."""
