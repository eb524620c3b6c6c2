"""terraops: MLOps for environmental and geospatial models.

Layers, inner to outer (an inner layer never imports an outer one):
``domain`` (pure numpy/pandas) → ``adapters`` (disk, MLflow, rasterio) →
``pipelines`` (compose both) → entry points (``api``, ``cli``).
``services`` holds the declarative service definitions (UHI, flood) that the
generic pipelines are parameterised by; it depends on ``domain`` only.
"""

__version__ = "0.1.0"
