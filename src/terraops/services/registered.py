"""Every service that has a registered model: the tabular ones and segmentation.

Kept apart from the lifecycle so that commands which only read a service's
declaration (``models list``) import neither MLflow nor the model stack.
"""

from __future__ import annotations

from terraops.services import get_service
from terraops.services.base import ServiceDefinition
from terraops.services.segmentation import SEGMENTATION, SegmentationService

ModelService = ServiceDefinition | SegmentationService


def model_service(name: str) -> ModelService:
    """The service whose registered model is ``name``: a tabular one or segmentation.

    Segmentation is looked up here, not in :func:`terraops.services.all_services`,
    which drives the tabular code paths (API routes, feedback, drift).
    """
    return SEGMENTATION if name == SEGMENTATION.name else get_service(name)
