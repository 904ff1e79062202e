"""Django settings for the SensorThings test server; the test sets STA_DB and STA_URL."""
import os
from uuid import UUID

SECRET_KEY = "sen-test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.gateway.sta_server.urls"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "sensorthings.versions.v1_1",
    "sensorthings.versions.v1_1.backends.django",
]
if os.environ.get("STA_DATA_ARRAY", "1") == "1":  # the CreateObservations extension (0: a server without it)
    INSTALLED_APPS.append("sensorthings.versions.v1_1.extensions.dataarray")
MIDDLEWARE = ["tests.gateway.sta_server.slow.SlowAnswers", "django.middleware.common.CommonMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("STA_DB", "sta.db"),
                         "OPTIONS": {"timeout": 30}}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
SENSORTHINGS_V1_1_SERVICE_URL = os.environ.get("STA_URL", "http://127.0.0.1:8000/sensorthings")
SENSORTHINGS_V1_1_BACKEND_ADAPTER = "sensorthings.versions.v1_1.backends.django.adapter.DjangoBackendAdapter"
SENSORTHINGS_V1_1_ID_TYPE = UUID
SENSORTHINGS_V1_1_ID_DELIMITER = "'"
SENSORTHINGS_V1_1_MAX_TOP = 1000
# server errors go to the server's stderr (the test keeps it in a log file to show on failure)
LOGGING = {"version": 1, "handlers": {"err": {"class": "logging.StreamHandler"}},
           "loggers": {"django.request": {"handlers": ["err"], "level": "ERROR"}}}
