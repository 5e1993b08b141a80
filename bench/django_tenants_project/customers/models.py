"""The tenant and domain models that django-tenants keeps in the public schema."""

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)

    # The benchmark creates the schemas itself and migrates them all in one run.
    auto_create_schema = False


class Domain(DomainMixin):
    pass
