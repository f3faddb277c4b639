"""The pipeline: claimed `received` messages → documents, verdicts, policy, deliveries."""

from gateway.pipeline.runner import Pipeline

__all__ = ["Pipeline"]
