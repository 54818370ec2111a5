"""Offline evaluation of the request path against held-out purchases."""

from peakrec.evaluation.storefront import StorefrontEval, evaluate_storefront

__all__ = ["StorefrontEval", "evaluate_storefront"]
