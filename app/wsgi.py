"""The WSGI entry gunicorn imports in each worker (app.wsgi:application); configured from the environment."""

from app.config import AppConfig
from app.factory import create_app

application = create_app(AppConfig.from_env())
