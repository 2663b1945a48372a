"""Science of the osteoporosis screening workstation. Never imports Qt, never prints."""

from .errors import AnnotationError, CohortError, ConfigError, OsteoError, RadiographError
from .io import Radiograph, load_radiograph

__all__ = [
    "AnnotationError",
    "CohortError",
    "ConfigError",
    "OsteoError",
    "Radiograph",
    "RadiographError",
    "load_radiograph",
]
__version__ = "0.1.0"
