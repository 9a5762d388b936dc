"""Where things live: the models shipped with the app and the user's own data.

WORKBENCH_HOME overrides the user data directory (tests point it at a temp folder).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "WORKBENCH_HOME"


def shipped_models_dir() -> Path:
    """The catalog and the embedded model: `models/` in a checkout, `workbench/shipped_models` in a wheel."""
    package = Path(__file__).resolve().parent
    checkout = package.parent / "models"
    if checkout.is_dir():
        return checkout
    return package / "shipped_models"


def workbench_home() -> Path:
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("reasoning-workbench", appauthor=False))


def user_models_dir() -> Path:
    """Pulled, imported and trained models."""
    return workbench_home() / "models"
