"""One typed error per domain, each carrying a sentence a clinician can read."""


class OsteoError(Exception):
    """Base of every error the engine raises on purpose."""


class RadiographError(OsteoError):
    """A file cannot be used as a hand radiograph."""


class AnnotationError(OsteoError):
    """An annotation project or label map is unusable."""


class CohortError(OsteoError):
    """A cohort manifest is invalid."""


class ConfigError(OsteoError):
    """A command's settings are inconsistent."""
