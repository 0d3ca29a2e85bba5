"""Teams: the API principal (API keys), licenses and the audit log."""

from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "teams"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The project's own system checks and signal receivers live on the ground floor
        # (``lukittu``), which is not an app; the lowest app registers them, at start-up: a
        # server's first request starts before anything else would import them.
        from lukittu import after_response, checks  # noqa: F401
