import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

# HMA's GET lookups (the hot route of an HMA client) are answered before Django's handler;
# everything else, and every refusal, goes to it unchanged (hma/wsgi.py, benchmarks/HMA.md).
from hma.wsgi import HmaLookupWsgi  # noqa: E402  (needs the apps loaded above)

application = HmaLookupWsgi(django_application)
