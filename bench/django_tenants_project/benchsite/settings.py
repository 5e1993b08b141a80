"""Settings of the django-tenants project that `bench/tenants.py` migrates against Strongroom.

The benchmark passes the database and the number of worker processes in
BENCH_* environment variables. The apps are the fewest django-tenants needs,
so that every migration run does only the work the comparison is about.
"""

import os

SECRET_KEY = "bench-only-never-served"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS: list[str] = []
ROOT_URLCONF = "benchsite.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        "HOST": os.environ["BENCH_PG_HOST"],
        "PORT": os.environ["BENCH_PG_PORT"],
        "USER": os.environ["BENCH_PG_USER"],
        "PASSWORD": os.environ["BENCH_PG_PASSWORD"],
        "NAME": os.environ["BENCH_PG_DATABASE"],
    }
}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)

# django-tenants imports the content types framework, so it must be installed.
SHARED_APPS = ["django_tenants", "django.contrib.contenttypes", "customers"]
TENANT_APPS = ["drive"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"

# Worker processes of `migrate_schemas --executor=multiprocessing`, like `strongroom migrate --jobs`.
TENANT_MULTIPROCESSING_MAX_PROCESSES = int(os.environ.get("BENCH_JOBS", "2"))
