"""`ReviewClassifierPredictor`: the SageMaker SDK (v2) Predictor for a review classifier endpoint,
with the JSON Lines serializer and deserializer set, and `classify(texts)` for plain strings.

The payloads follow container_code/inference.py: each request line is {"review_body": "text"},
each response line a prediction {"label", "label_id", "sentiment", "probability", "probabilities"}.
"""

from __future__ import annotations

from typing import Iterable

from sagemaker.deserializers import JSONLinesDeserializer
from sagemaker.predictor import Predictor
from sagemaker.serializers import JSONLinesSerializer

JSON_LINES = "application/jsonlines"
# The endpoint refuses larger requests (REVIEW_CLASSIFIER_MAX_REVIEWS, default 256): split them.
DEFAULT_MAX_REVIEWS_PER_REQUEST = 256


def review_requests(texts: Iterable[str]) -> list[dict]:
    """The request objects for `texts`, after checking each is a non-empty string."""
    requests = []
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"review {index} must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"review {index} is empty")
        requests.append({"review_body": text})
    return requests


class ReviewClassifierPredictor(Predictor):
    """Invokes the endpoint with application/jsonlines requests and answers."""

    def __init__(self, endpoint_name: str, sagemaker_session=None, **kwargs) -> None:
        super().__init__(
            endpoint_name,
            sagemaker_session=sagemaker_session,
            serializer=JSONLinesSerializer(content_type=JSON_LINES),
            deserializer=JSONLinesDeserializer(accept=JSON_LINES),
            **kwargs,
        )

    def classify(self, texts: Iterable[str], *, max_reviews_per_request: int = DEFAULT_MAX_REVIEWS_PER_REQUEST) -> list[dict]:
        """One prediction per text, in order; long lists go in several requests."""
        if max_reviews_per_request < 1:
            raise ValueError("max_reviews_per_request must be at least 1")
        requests = review_requests(texts)
        predictions: list[dict] = []
        for start in range(0, len(requests), max_reviews_per_request):
            batch = requests[start : start + max_reviews_per_request]
            answered = self.predict(batch)
            if len(answered) != len(batch):
                raise RuntimeError(f"the endpoint answered {len(answered)} predictions for {len(batch)} reviews")
            predictions.extend(answered)
        return predictions
