"""Desktop workstation (PySide6 + pyqtgraph). Holds no science: it calls osteo_engine."""
