"""The pipeline: claimed `received` messages → documents, verdicts, policy, deliveries.

`Pipeline` is imported on first use: `edocgw check` uses the verdict and policy rules of this
package, and must not import the runner (and with it prometheus-client, which `serve` has to
set up for several processes before its first import)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.pipeline.runner import Pipeline

__all__ = ["Pipeline"]


def __getattr__(name: str) -> Any:
    if name == "Pipeline":
        from gateway.pipeline.runner import Pipeline

        return Pipeline
    raise AttributeError(name)
