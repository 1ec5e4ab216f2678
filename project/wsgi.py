"""The WSGI application that gunicorn serves (`gunicorn project.wsgi`, the `web` line of the Procfile).
Static files are served by whitenoise's middleware (project/settings.py)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

application = get_wsgi_application()
