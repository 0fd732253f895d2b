"""Client for the review classifier endpoint: a SageMaker SDK Predictor speaking JSON Lines."""

from serving_client.predictor import ReviewClassifierPredictor, review_requests

__all__ = ["ReviewClassifierPredictor", "review_requests"]
