"""The rank-vs-accuracy study (``edge-str compare``): learned rank against fixed rank and SVD."""

from edge_str.compare.svd import truncated_model_config, truncated_svd_factors, truncated_svd_state

__all__ = ["truncated_model_config", "truncated_svd_factors", "truncated_svd_state"]
