"""Create N tenant rows and their empty schemas, to be migrated by `migrate_schemas --tenant`."""

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from customers.models import Client


class Command(BaseCommand):
    help = "Create tenants bench_0000 to bench_{N-1}, each with an empty schema of its own."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int)

    def handle(self, *args, count, **options):
        with transaction.atomic():
            Client.objects.get_or_create(schema_name="public", defaults={"name": "public"})
            tenants = Client.objects.bulk_create(
                Client(schema_name=f"bench_{number:04d}", name=f"Bench {number}")
                for number in range(count)
            )
            # TenantMixin.create_schema() would migrate each schema in a run of its own, one
            # after another. `migrate_schemas --tenant` migrates them all in one run instead.
            with connection.cursor() as cursor:
                for tenant in tenants:
                    cursor.execute(f'CREATE SCHEMA "{tenant.schema_name}"')
        self.stdout.write(f"created {len(tenants)} tenants")
