"""The Jobs panel: training runs started, watched, cancelled and resumed from the app."""
