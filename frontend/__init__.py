"""kfchain's frontend: the model now serving, a predict page, the live event timeline and a JSON API.

Imports nothing of the project but ``events`` (../shared/DESIGN.md, dependency direction).
"""

from frontend.app import create_app
from frontend.settings import Settings

__all__ = ["Settings", "create_app"]
