"""Numerical models of the recommender: item tokenizer (RQ-KMeans semantic IDs) and, later, the generator."""
