"""The WSGI entry gunicorn imports in each worker (app.wsgi:application); configured from the environment."""

from app.config import AppConfig
from app.factory import create_app
from app.handover import taking_over

# A worker taking over from another release loads before it accepts (gunicorn.conf.py, post_worker_init);
# otherwise in the background, so /healthz names the loading stage.
application = create_app(AppConfig.from_env(), start_loading=not taking_over())
